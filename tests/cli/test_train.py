"""``egmf train / evaluate / predict / config`` as users call them: one-step smoke runs over a tiny LLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from egmf.cli.main import app
from egmf.data.synth import write_synthetic

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One optimiser step of EGMF (tiny LLM) on generated MELD + MOSEI, through ``egmf train``."""
    root = tmp_path_factory.mktemp("cli")
    write_synthetic("meld", root / "meld", size="tiny", seed=1)
    write_synthetic(
        "mmsa", root / "mosei", size="tiny", seed=2, flavour="mosei",
        dims={"text": 16, "audio": 8, "vision": 6}, seq_lens={"text": 8, "audio": 12, "vision": 10},
    )
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump({
        "name": "smoke",
        "output_dir": str(root / "runs"),
        "data": {"datasets": [{"name": "meld", "path": str(root / "meld")}, {"name": "mosei", "path": str(root / "mosei")}],
                 "limit": {"valid": 6, "test": 6}},
        "model": {"name": "egmf", "llm": {"backend": "tiny"}, "fusion": {"d_model": 16, "n_heads": 2, "num_pseudo_tokens": 2}},
        "train": {"epochs": 1, "max_steps": 1, "batch_size": 4, "mixed_precision": "no"},
        "eval": {"batch_size": 8, "plots": True},
    }))
    result = runner.invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 0, result.output
    return root, config, result.output


def test_train_writes_a_run_folder_with_checkpoint_metrics_and_plots(trained):
    root, _, output = trained
    seed_dir = root / "runs" / "smoke" / "seed_1111"
    assert "run folder" in output and "meld: test" in output
    metrics = json.loads((seed_dir / "metrics.json").read_text())
    assert set(metrics["test"]) == {"meld", "mosei"}
    assert metrics["training"]["steps"] == 1
    plots = sorted(p.name for p in (seed_dir / "plots").glob("*.png"))
    assert "test_meld_confusion.png" in plots and "test_mosei_scores.png" in plots
    assert any(name.endswith("_gates.png") for name in plots)
    saved = yaml.safe_load((root / "runs" / "smoke" / "config.yaml").read_text())
    assert saved["model"]["llm"]["backend"] == "tiny", "the resolved config is saved with the run"


def test_train_refuses_to_overwrite_a_run(trained):
    _, config, _ = trained
    result = runner.invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 2
    assert "run folder exists" in result.output and "--resume" in result.output


def test_train_refuses_a_bad_key_with_the_valid_keys(trained):
    _, config, _ = trained
    result = runner.invoke(app, ["train", "--config", str(config), "--set", "train.learning_rate=1"])
    assert result.exit_code == 2
    assert "train.learning_rate: unknown key; valid keys:" in result.output and "lr_lora" in result.output


def test_predict_writes_json_lines_with_gates(trained, tmp_path):
    root, _, _ = trained
    best = root / "runs" / "smoke" / "seed_1111" / "checkpoints" / "best"
    out = tmp_path / "preds.jsonl"
    result = runner.invoke(
        app, ["predict", "--checkpoint", str(best), "--dataset", "meld", "--path", str(root / "meld"), "--limit", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert row["prediction"] in row["probabilities"]
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-4
        assert set(row["gates"]) >= {"expert"}
    again = runner.invoke(
        app, ["predict", "--checkpoint", str(best), "--dataset", "meld", "--path", str(root / "meld"), "--out", str(out)]
    )
    assert again.exit_code == 2 and "never overwritten" in again.output


def test_evaluate_scores_a_checkpoint_into_a_new_folder(trained):
    root, _, _ = trained
    best = root / "runs" / "smoke" / "seed_1111" / "checkpoints" / "best"
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(best), "--split", "valid"])
    assert result.exit_code == 0, result.output
    folder = root / "runs" / "smoke" / "seed_1111" / "evaluations" / "eval_001"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics["valid"]) == {"meld", "mosei"}
    assert "weighted_f1" in metrics["valid"]["meld"] and "mae" in metrics["valid"]["mosei"]


def test_logit_adjust_rechooses_the_emotion_answers_of_a_finished_run(trained):
    root, _, _ = trained
    seed_dir = root / "runs" / "smoke" / "seed_1111"
    before = (seed_dir / "predictions_test.jsonl").read_text(encoding="utf-8")
    result = runner.invoke(app, ["logit-adjust", "--run", str(seed_dir)])
    assert result.exit_code == 0, result.output
    assert "meld: tau" in result.output and "chosen on valid weighted_f1" in result.output
    metrics = json.loads((seed_dir / "evaluations" / "logit_adjusted_001" / "metrics.json").read_text())
    assert set(metrics["logit_adjustment"]) == {"meld"}, "sentiment scores (MOSEI) are not adjusted"
    assert metrics["test"]["mosei"] == metrics["as_trained"]["test"]["mosei"]
    tau = metrics["logit_adjustment"]["meld"]["tau"]
    assert metrics["valid"]["meld"]["weighted_f1"] == metrics["logit_adjustment"]["meld"]["valid_curve"][str(tau)]
    assert (seed_dir / "predictions_test.jsonl").read_text(encoding="utf-8") == before, "the run's own are kept"
    again = runner.invoke(app, ["logit-adjust", "--run", str(seed_dir)])
    assert again.exit_code == 0 and (seed_dir / "evaluations" / "logit_adjusted_002").is_dir()
    bad = runner.invoke(app, ["logit-adjust", "--run", str(root)])
    assert bad.exit_code == 2 and "checkpoint: expected a folder holding trainable.safetensors" in bad.output


def test_predict_on_a_folder_that_is_not_a_checkpoint_is_a_clean_error(tmp_path):
    result = runner.invoke(app, ["predict", "--checkpoint", str(tmp_path), "--dataset", "meld", "--path", str(tmp_path)])
    assert result.exit_code == 2
    assert "checkpoint: expected a folder holding trainable.safetensors" in result.output


def test_config_validate_and_keys():
    config = Path(__file__).parents[2] / "configs" / "meld.yaml"
    ok = runner.invoke(app, ["config", "validate", str(config)])
    assert ok.exit_code == 0 and "valid" in ok.output
    bad = runner.invoke(app, ["config", "validate", str(config), "--set", "model.fusion.gate_temperature=-1"])
    assert bad.exit_code == 2 and "gate_temperature" in bad.output
    keys = runner.invoke(app, ["config", "keys"])
    assert keys.exit_code == 0 and "model.fusion.num_pseudo_tokens" in keys.output


def test_predict_on_a_dataset_normalises_per_speaker_as_training_did(tmp_path):
    """A model trained with data.speaker_normalization: ``egmf predict --dataset`` gives exactly the run's own test
    predictions (the split normalised per speaker as a whole, then --limit); predicting the inputs as given, without
    the normalisation, gives other scores (checked by hand: this test fails then)."""
    write_synthetic("mmsa", tmp_path / "mosei", size="tiny", seed=2, flavour="mosei",
                    dims={"text": 16, "audio": 8, "vision": 6}, seq_lens={"text": 8, "audio": 12, "vision": 10})
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "name": "spk", "output_dir": str(tmp_path / "runs"),
        "data": {"datasets": [{"name": "mosei", "path": str(tmp_path / "mosei")}], "speaker_normalization": True},
        "model": {"name": "late_fusion", "text_source": "dataset", "baseline": {"hidden": 16, "layers": 1}},
        "train": {"epochs": 1, "max_steps": 2, "batch_size": 8, "mixed_precision": "no"},
        "eval": {"plots": False},
    }))
    assert runner.invoke(app, ["train", "--config", str(config)]).exit_code == 0
    seed = tmp_path / "runs" / "spk" / "seed_1111"

    def scores(path):
        return [json.loads(x)["prediction"] for x in path.read_text(encoding="utf-8").splitlines()]

    own = scores(seed / "predictions_test.jsonl")
    out = tmp_path / "preds.jsonl"
    args = ["predict", "--checkpoint", str(seed / "checkpoints" / "best"), "--dataset", "mosei", "--path",
            str(tmp_path / "mosei"), "--limit", "4", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(own) > 4 and scores(out) == pytest.approx(own[:4], abs=1e-6)
    saved = yaml.safe_load((tmp_path / "runs" / "spk" / "config.yaml").read_text())
    assert saved["data"]["speaker_normalization"] is True
