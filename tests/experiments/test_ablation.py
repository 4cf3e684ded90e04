"""``egmf.experiments.ablation``: the variants table, the runner's folders, its one table, and reuse of finished runs."""

from __future__ import annotations

import csv

import pytest

from egmf.config import config_from_dict
from egmf.errors import ConfigError
from egmf.experiments import ablation
from egmf.experiments.ablation import VARIANTS, run_ablations, variant_config
from egmf.experiments.result import RunResult, SeedResult
from egmf.experiments.run import run


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny models, one thread


def tiny_base(data, out, **model) -> dict:
    """A one-step EGMF config on the tiny LLM over generated MELD (4 valid and test utterances)."""
    return {
        "name": "abl",
        "output_dir": str(out),
        "data": {"datasets": [{"name": "meld", "path": str(data)}], "limit": {"train": 8, "valid": 4, "test": 4}},
        "model": {
            "name": "egmf", "text_source": "llm",
            "llm": {"backend": "tiny", "tiny_hidden_size": 32},
            "fusion": {"d_model": 16, "n_heads": 2, "num_pseudo_tokens": 2, "gate_hidden": 8, "global_layers": 1},
            "lora": {"r": 4},
            "prompt": {"template": "minimal", "use_chat_template": False, "max_context_turns": 1},
            **model,
        },
        "train": {"epochs": 1, "max_steps": 1, "batch_size": 4, "mixed_precision": "no"},
        "eval": {"batch_size": 8, "plots": False},
    }


@pytest.fixture(scope="module")
def meld(tmp_path_factory):
    from egmf.data.synth import write_synthetic

    return write_synthetic("meld", tmp_path_factory.mktemp("meld") / "meld", size="tiny", seed=5,
                           dims={"text": 8, "audio": 6, "vision": 5})


# Each variant's expected effect, written out independently of VARIANTS: (attribute path, value).
EXPECTED = {
    "full": None,
    "no_local": ("model.fusion.use_local", False),
    "no_semantic": ("model.fusion.use_semantic", False),
    "no_global": ("model.fusion.use_global", False),
    "no_modality_gate": ("model.fusion.modality_gating", False),
    "no_expert_gate": ("model.fusion.expert_gating", False),
    "no_fusion_head": ("model.fusion_head_weight", 0.0),
    "k1": ("model.fusion.num_pseudo_tokens", 1),
    "k4": ("model.fusion.num_pseudo_tokens", 4),
    "k8": ("model.fusion.num_pseudo_tokens", 8),
    "k16": ("model.fusion.num_pseudo_tokens", 16),
    "lora_r4": ("model.lora.r", 4),
    "lora_r8": ("model.lora.r", 8),
    "lora_r16": ("model.lora.r", 16),
    "llm_text": ("model.name", "llm_text"),
    "egmf_mean_gate": ("model.name", "egmf_mean_gate"),
    "late_fusion": ("model.name", "late_fusion"),
    "mult": ("model.name", "mult"),
}


def _get(cfg, path: str):
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_the_table_holds_the_papers_ablations():
    assert list(VARIANTS) == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_variant_validates_and_changes_only_its_switch(name, tmp_path):
    base = config_from_dict(tiny_base(tmp_path / "data", tmp_path / "runs"))
    cfg = variant_config(base, name, tmp_path / "runs" / "abl")
    assert cfg.run_dir == tmp_path / "runs" / "abl" / f"ablation_{name}"
    changed = EXPECTED[name]
    if changed:
        assert _get(cfg, changed[0]) == changed[1]
    # Everything else is the base config.
    for path in ("model.fusion.use_local", "model.fusion.expert_gating", "model.fusion.num_pseudo_tokens", "model.lora.r",
                 "model.name", "train.max_steps", "model.text_source"):
        if not changed or path != changed[0]:
            assert _get(cfg, path) == _get(base, path), path


def test_unknown_variant_is_refused_with_the_valid_names():
    with pytest.raises(ConfigError, match=r"--only: unknown variant 'k3'; valid choices: full, no_local, .*mult"):
        ablation.variant_names(["full", "k3"])


def test_a_variant_that_breaks_the_base_config_is_named(tmp_path):
    base = config_from_dict(tiny_base(tmp_path, tmp_path, fusion={"use_semantic": False, "use_global": False}))
    with pytest.raises(ConfigError, match=r"variant 'no_local' \(model.fusion.use_local=false\).*every expert is turned off"):
        run_ablations(base, only=["full", "no_local"], runner=lambda *a, **k: pytest.fail("trained before validating"))


def test_table_reports_mean_and_population_std_over_seeds(tmp_path, md_cells):
    """A fake runner with known per-seed metrics: the table's cells are computed from them, not copied."""
    values = {1: (0.5, 0.4, 10.0), 2: (0.7, 0.6, 20.0)}  # seed: weighted F1, accuracy, train seconds

    def runner(cfg, seeds, resume):
        per_seed = {s: SeedResult(s, {"test": {"meld": {"accuracy": values[s][1], "weighted_f1": values[s][0],
                                                        "macro_f1": 0.1}},
                                      "training": {"train_seconds": values[s][2]}}) for s in seeds}
        return RunResult(cfg.run_dir, per_seed)

    base = config_from_dict(tiny_base(tmp_path, tmp_path / "runs"))
    results, out = run_ablations(base, seeds=[1, 2], only=["full", "k1"], runner=runner, log=lambda _: None)
    table = md_cells((out / "ablation.md").read_text(encoding="utf-8"))
    assert table[0] == ["variant", "overrides", "Acc", "w-F1", "macro-F1", "expert gate (test mean)", "train s"]
    assert table[2] == ["full", "-", "50.00 ± 10.00", "60.00 ± 10.00", "10.00 ± 0.00", "-", "15.0"]
    assert table[3][:2] == ["k1", "model.fusion.num_pseudo_tokens=1"]
    rows = list(csv.DictReader((out / "ablation.csv").open(encoding="utf-8")))
    assert [r["variant"] for r in rows] == ["full", "k1"]
    assert float(rows[0]["weighted_f1_mean"]) == pytest.approx(0.6)
    assert float(rows[0]["weighted_f1_std"]) == pytest.approx(0.1)  # population std of (0.5, 0.7)
    assert float(rows[0]["train_seconds"]) == pytest.approx(15.0)


@pytest.fixture(scope="module")
def ablated(meld, tmp_path_factory):
    """Two real one-step variants and a third equal to the base (lora_r4 when the base has r=4)."""
    out = tmp_path_factory.mktemp("ablate")
    base = config_from_dict(tiny_base(meld, out))
    results, folder = run_ablations(base, only=["full", "no_expert_gate", "lora_r4"], log=lambda _: None)
    return base, results, folder


def test_runner_writes_one_run_folder_per_variant_and_one_table(ablated, md_cells):
    base, results, folder = ablated
    assert [r.name for r in results] == ["full", "no_expert_gate", "lora_r4"]
    for name in ("full", "no_expert_gate"):
        seed_dir = folder / f"ablation_{name}" / "seed_1111"
        assert (seed_dir / "metrics.json").is_file() and (seed_dir / "checkpoints" / "best").is_dir()
    assert not (folder / "ablation_lora_r4").exists(), "a variant equal to an earlier one is not trained again"
    assert results[2].same_as == "full" and results[2].run == results[0].run
    md = (folder / "ablation.md").read_text(encoding="utf-8")
    assert "## meld" in md
    assert [row[:2] for row in md_cells(md)[2:]] == [
        ["full", "-"], ["no_expert_gate", "model.fusion.expert_gating=false"], ["lora_r4 (= full)", "model.lora.r=4"]]
    # The expert gate's test mean: one weight per expert, summing to 1 (the test predictions of the run).
    gate = md_cells(md)[2][-2]
    weights = {name: float(w) for name, w in (part.split() for part in gate.split(", "))}
    assert set(weights) == set(base.model.fusion.active_experts) and sum(weights.values()) == pytest.approx(1, abs=0.02)
    rows = list(csv.DictReader((folder / "ablation.csv").open(encoding="utf-8")))
    assert [r["variant"] for r in rows] == ["full", "no_expert_gate", "lora_r4"]
    assert rows[0]["expert_gate"] == gate
    assert all(0.0 <= float(r["weighted_f1_mean"]) <= 1.0 and float(r["train_seconds"]) >= 0 for r in rows)


def test_finished_variants_are_reused_not_retrained(ablated):
    base, first, folder = ablated
    weights = folder / "ablation_full" / "seed_1111" / "checkpoints" / "best" / "trainable.safetensors"
    stamp = weights.stat().st_mtime_ns
    calls = []

    def counting(cfg, seeds, resume):
        calls.append((cfg.name, resume))
        return run(cfg, seeds, resume=resume)

    results, _ = run_ablations(base, only=["full", "no_expert_gate"], runner=counting, log=lambda _: None)
    assert calls == [("ablation_full", True), ("ablation_no_expert_gate", True)]
    assert all(r.reused for r in results)
    assert weights.stat().st_mtime_ns == stamp, "a finished variant's checkpoint was rewritten"
    assert results[0].run.seeds[1111].test == first[0].run.seeds[1111].test


def test_a_finished_variant_saved_with_another_config_is_refused_not_reused(ablated):
    base, _, folder = ablated
    from egmf.errors import RunFolderExistsError

    changed = config_from_dict({**tiny_base(base.data.datasets[0].path, base.output_dir), "eval": {"batch_size": 4,
                                                                                                    "plots": False}})
    with pytest.raises(RunFolderExistsError, match=r"changed: eval.batch_size.*delete .*ablation_full or choose another --name"):
        run_ablations(changed, only=["full"], log=lambda _: None)
