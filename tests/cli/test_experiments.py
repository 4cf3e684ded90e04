"""``egmf ablate`` and ``egmf transfer`` as users call them: one-step smoke runs with the fast late-fusion model."""

from __future__ import annotations

import re

import pytest
import yaml
from typer.testing import CliRunner

from egmf.cli.main import app
from egmf.data.synth import write_synthetic

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny models, one thread


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    meld = write_synthetic("meld", root / "meld", size="tiny", seed=11, dims={"text": 8, "audio": 6, "vision": 5})
    cherma = write_synthetic("cherma", root / "cherma", size="tiny", seed=12,
                             shapes={"text": (4, 8), "audio": (5, 6), "vision": (3, 5)})
    config = root / "meld.yaml"
    config.write_text(yaml.safe_dump({
        "name": "smoke", "output_dir": str(root / "runs"),
        "data": {"datasets": [{"name": "meld", "path": str(meld)}], "limit": {"valid": 6, "test": 6}},
        "model": {"name": "late_fusion", "baseline": {"hidden": 8, "layers": 1, "n_heads": 2, "max_frames": 8}},
        "train": {"epochs": 1, "max_steps": 1, "batch_size": 8, "mixed_precision": "no"},
        "eval": {"batch_size": 16, "plots": False},
    }))
    return root, config, cherma


def test_ablate_list_prints_every_variant():
    result = runner.invoke(app, ["ablate", "--list"])
    assert result.exit_code == 0
    assert "no_semantic" in result.output and "model.fusion.use_semantic=false" in result.output
    assert "k16" in result.output and "mult" in result.output


def test_ablate_runs_the_chosen_variants_into_one_table(setup):
    root, config, _ = setup
    result = runner.invoke(app, ["ablate", "--config", str(config), "--only", "full,mult", "--name", "abl"])
    assert result.exit_code == 0, result.output
    table = root / "runs" / "abl" / "ablation.md"
    assert table.is_file() and re.search(r"\| mult +\| model\.name=mult +\|", result.output)
    assert (root / "runs" / "abl" / "ablation_full" / "seed_1111" / "metrics.json").is_file()
    again = runner.invoke(app, ["ablate", "--config", str(config), "--only", "full", "--name", "abl"])
    assert again.exit_code == 0 and "[full] finished before: results read from" in again.output


def test_ablate_unknown_variant_is_a_clean_error(setup):
    _, config, _ = setup
    result = runner.invoke(app, ["ablate", "--config", str(config), "--only", "no_experts"])
    assert result.exit_code == 2
    assert "unknown variant 'no_experts'; valid choices: full, no_local" in result.output


def test_transfer_writes_the_table_both_ways(setup):
    root, config, cherma = setup
    result = runner.invoke(app, ["transfer", "--config", str(config), "--target-dataset", "cherma",
                                 "--target-path", str(cherma), "--target-option", "valid_fraction=0.2", "--reverse",
                                 "--input-statistics", "source,target", "--label-prior", "as_trained,em"])
    assert result.exit_code == 0, result.output
    out = root / "runs" / "smoke_transfer"
    assert (out / "transfer.csv").is_file()
    fed = r"text \(8-d\), audio \(6-d\), vision \(5-d\)"
    for statistics in ("as trained", "target's train split"):
        for prior in ("as trained", "EM on the scored inputs"):
            assert re.search(rf"\| meld -> cherma +\| cross-lingual +\| {fed} +\| {statistics} +\| {prior} +\| test +\| "
                             r"+6 +\|", result.output)
    assert re.search(r"\| cherma -> meld +\| cross-lingual +\|", result.output)


@pytest.mark.parametrize("flag, value, message", [
    ("--input-statistics", "both", "input statistics: invalid value 'both'; valid choices: source, target"),
    ("--label-prior", "bayes", "label prior: invalid value 'bayes'; valid choices: as_trained, em"),
])
def test_transfer_unknown_choice_is_a_clean_error(setup, flag, value, message):
    root, config, cherma = setup
    result = runner.invoke(app, ["transfer", "--config", str(config), "--target-dataset", "cherma",
                                 "--target-path", str(cherma), flag, value, "--name", f"bad_{value}"])
    assert result.exit_code == 2
    assert message in result.output
    assert not (root / "runs" / f"bad_{value}").exists(), "refused before any training"


def test_transfer_between_kinds_is_a_clean_error(setup, tmp_path):
    root, config, _ = setup
    sims = write_synthetic("mmsa", tmp_path / "sims", size="tiny", seed=1, flavour="simsv2",
                           dims={"text": 8, "audio": 5, "vision": 6}, seq_lens={"text": 6, "audio": 8, "vision": 8})
    result = runner.invoke(app, ["transfer", "--config", str(config), "--target-dataset", "simsv2",
                                 "--target-path", str(sims), "--name", "bad"])
    assert result.exit_code == 2
    assert "meld is ERC and simsv2 is MSA" in result.output
    assert not (root / "runs" / "bad").exists(), "refused before any training"
