"""A run (egmf.experiments.run): its folder holds every artefact, is never overwritten, refuses a resume
with a changed config, and several seeds give mean and std rows."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import yaml

from egmf.errors import RunFolderExistsError
from egmf.training import checkpoint as ckpt
from egmf.experiments.run import run

from .conftest import make_config


def test_a_run_writes_every_artefact_and_learns(tiny_data, tmp_path):
    cfg = make_config(tiny_data, tmp_path, epochs=6, patience=0)
    result = run(cfg)
    seed_dir = tmp_path / "t" / "seed_1111"
    for name in ("config.yaml", "results_meld.csv", "results_mosei.csv"):
        assert (tmp_path / "t" / name).is_file(), name
    for name in ("metrics.json", "predictions_valid.jsonl", "predictions_test.jsonl", "train_log.jsonl"):
        assert (seed_dir / name).is_file(), name
    assert (seed_dir / "tensorboard").is_dir()
    for which in ("best", "last"):
        assert (seed_dir / "checkpoints" / which / ckpt.WEIGHTS).is_file()
    test = result.seeds[1111].test
    assert 0 <= test["meld"]["weighted_f1"] <= 1 and test["meld"]["baseline"]["weighted_f1"] > 0
    assert 0 < test["mosei"]["mae"] < 3 and -1 <= test["mosei"]["corr"] <= 1
    losses = [json.loads(x)["loss"] for x in (seed_dir / "train_log.jsonl").read_text().splitlines() if '"loss"' in x]
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10, "training lowers the loss"
    lines = (seed_dir / "predictions_test.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert {"id", "dataset", "task", "prediction"} <= set(first)
    # Selection happened on valid: the log records valid evaluations only, one per epoch.
    evals = [json.loads(x) for x in (seed_dir / "train_log.jsonl").read_text().splitlines() if "valid_selection" in x]
    assert len(evals) == 6


def test_an_existing_run_folder_is_never_overwritten(tiny_data, tmp_path):
    cfg = make_config(tiny_data, tmp_path, epochs=1)
    run(cfg)
    before = (tmp_path / "t" / "seed_1111" / "metrics.json").read_bytes()
    with pytest.raises(RunFolderExistsError, match="pass --resume"):
        run(cfg)
    assert (tmp_path / "t" / "seed_1111" / "metrics.json").read_bytes() == before


def test_resume_with_a_changed_config_is_refused(tiny_data, tmp_path):
    run(make_config(tiny_data, tmp_path, epochs=1))
    with pytest.raises(RunFolderExistsError, match=r"changed: train\.lr_fusion"):
        run(make_config(tiny_data, tmp_path, epochs=1, lr_fusion=0.5), resume=True)


def test_resume_reads_a_field_missing_from_a_saved_config_as_the_run_was_made(tiny_data, tmp_path):
    """A field added to the config since the run was made is no change when the new config keeps the old
    behaviour: model.fusion_head_weight was absent while the head was off, so a folder without it is a run
    without the head, and resuming it with today's default (the head on) is refused, naming the field."""
    from egmf.typed_config import read_yaml

    made = make_config(tiny_data, tmp_path, epochs=1)
    cfg = dataclasses.replace(made, model=dataclasses.replace(made.model, fusion_head_weight=0.0))
    run(cfg)
    saved = tmp_path / "t" / "config.yaml"
    old = read_yaml(saved)
    del old["model"]["fusion_head_weight"]
    saved.write_text(yaml.safe_dump(old), encoding="utf-8")
    run(cfg, resume=True)  # the finished seed is read back
    saved.write_text(yaml.safe_dump(old), encoding="utf-8")
    today = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, fusion_head_weight=0.5))
    with pytest.raises(RunFolderExistsError, match=r"changed: model\.fusion_head_weight"):
        run(today, resume=True)


def test_several_seeds_give_mean_and_std_rows(tiny_data, tmp_path):
    result = run(make_config(tiny_data, tmp_path, epochs=1), seeds=[1111, 1112])
    assert set(result.seeds) == {1111, 1112}
    # One accelerator trains both seeds: the second seed's resume state holds its own optimizer only.
    state = tmp_path / "t" / "seed_1112" / "checkpoints" / "last" / ckpt.ACCELERATE_STATE
    assert sorted(p.name for p in state.iterdir()) == ["optimizer.bin", "random_states_0.pkl", "scheduler.bin"]
    with open(tmp_path / "t" / "results_meld.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["seed"] for r in rows] == ["1111", "1112", "mean", "std"]
    f1 = [float(r["weighted_f1"]) for r in rows]
    assert f1[2] == pytest.approx((f1[0] + f1[1]) / 2)
    assert result.summary["meld"]["weighted_f1"]["mean"] == pytest.approx(f1[2])
