"""The one training loop: run folders, early stopping, checkpoints, seeds, and refusal to overwrite."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch

from egmf.atomic import recover_folder
from egmf.config import config_from_dict
from egmf.errors import DataFormatError, RunFolderExistsError
from egmf.training import checkpoint as ckpt
from egmf.experiments.run import run

from .conftest import make_config, run_config_dict


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


def test_early_stopping_stops_when_valid_stops_improving(tiny_data, tmp_path):
    # A learning rate this small cannot move the valid metric: the second evaluation is no better.
    cfg = make_config(tiny_data, tmp_path, epochs=10, patience=1, lr_fusion=1e-12, warmup_ratio=0.0)
    result = run(cfg)
    steps_per_epoch = result.seeds[1111].steps // 2
    assert result.seeds[1111].steps == 2 * steps_per_epoch
    assert result.seeds[1111].training["best_step"] == steps_per_epoch


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


def test_an_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from egmf.data.schema import DatasetInfo

    infos = {"d": DatasetInfo("d", "msa", "en", score_range=(-1.0, 1.0), metric_family="sims")}
    target = tmp_path / "best"
    ckpt.save_checkpoint(target, {"w": torch.ones(3)}, {"name": "x"}, infos, {"d": {"audio": 2}})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(ckpt, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(target, {"w": torch.zeros(3)}, {"name": "x"}, infos, {"d": {"audio": 2}})
    assert torch.equal(ckpt.load_weights(target)["w"], torch.ones(3))
    assert sorted(os.listdir(tmp_path)) == ["best"], "no temporary folder is left behind"
    meta, loaded, dims = ckpt.read_meta(target)
    assert loaded == infos and dims == {"d": {"audio": 2}}


def _kill_between_the_renames(monkeypatch):
    """Make the next save die after moving the previous checkpoint aside, before renaming the new one in."""
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the renames")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def test_a_save_killed_between_its_renames_is_recovered(tmp_path, monkeypatch):
    from egmf.data.schema import DatasetInfo

    infos = {"d": DatasetInfo("d", "msa", "en", score_range=(-1.0, 1.0), metric_family="sims")}
    target = tmp_path / "last"
    ckpt.save_checkpoint(target, {"w": torch.ones(3)}, {"name": "x"}, infos, {"d": {"audio": 2}})
    with monkeypatch.context() as m:
        _kill_between_the_renames(m)
        with pytest.raises(KeyboardInterrupt):
            ckpt.save_checkpoint(target, {"w": torch.zeros(3)}, {"name": "x"}, infos, {"d": {"audio": 2}})
    assert not target.exists() and [p.name for p in tmp_path.iterdir()][0].startswith(".last.old-")

    assert "restored" in recover_folder(target)
    assert torch.equal(ckpt.load_weights(target)["w"], torch.ones(3)), "the previous, complete checkpoint is back"
    assert sorted(os.listdir(tmp_path)) == ["last"]
    assert recover_folder(target) is None, "nothing to do the second time"
    assert recover_folder(tmp_path / "missing" / "last") is None


def test_resume_after_a_kill_between_the_renames_continues_from_the_previous_save(tiny_data, tmp_path, capsys):
    def config(name):
        return config_from_dict({**run_config_dict(tiny_data, tmp_path, epochs=2, patience=0), "name": name})

    straight = run(config("straight"))
    cfg = config("killed")
    run(cfg)
    seed_dir = tmp_path / "killed" / "seed_1111"
    # Replay the end of the run as if the kill came mid-save: the result is gone, `last` sits aside.
    (seed_dir / "metrics.json").unlink()
    last = seed_dir / "checkpoints" / "last"
    os.replace(last, last.with_name(".last.old-4242"))
    resumed = run(cfg, resume=True)
    out = capsys.readouterr().out
    assert "restored" in out and "resumed from" in out and "training from step 0" not in out
    assert resumed.seeds[1111].test == straight.seeds[1111].test


def test_resume_without_a_checkpoint_says_it_starts_over(tiny_data, tmp_path, capsys):
    run(make_config(tiny_data, tmp_path, epochs=1), resume=True)
    assert "no resumable checkpoint" in capsys.readouterr().out


def test_resume_from_a_checkpoint_without_accelerate_state_says_why_it_starts_over(tiny_data, tmp_path, capsys):
    cfg = make_config(tiny_data, tmp_path, epochs=1)
    run(cfg)
    seed_dir = tmp_path / "t" / "seed_1111"
    (seed_dir / "metrics.json").unlink()
    import shutil

    shutil.rmtree(seed_dir / "checkpoints" / "last" / ckpt.ACCELERATE_STATE)
    run(cfg, resume=True)
    out = capsys.readouterr().out
    assert "holds no accelerate_state/ (written by an older egmf)" in out and "training from step 0" in out


def test_a_folder_that_is_not_a_checkpoint_is_named_in_the_error(tmp_path):
    with pytest.raises(DataFormatError, match=rf"{tmp_path}: checkpoint: expected a folder holding trainable.safetensors"):
        ckpt.read_meta(tmp_path)
    (tmp_path / ckpt.META).write_text("{}")
    (tmp_path / ckpt.WEIGHTS).write_bytes(b"\x00\x01truncated")
    with pytest.raises(DataFormatError, match="trainable.safetensors: safetensors: expected a complete safetensors file"):
        ckpt.load_weights(tmp_path)
