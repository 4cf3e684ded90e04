"""The one training loop: early stopping, checkpoints saved and recovered, resume."""

from __future__ import annotations

import os

import pytest
import torch

from egmf.atomic import recover_folder
from egmf.config import config_from_dict
from egmf.errors import DataFormatError
from egmf.training import checkpoint as ckpt
from egmf.experiments.run import run

from .conftest import make_config, run_config_dict


def test_early_stopping_stops_when_valid_stops_improving(tiny_data, tmp_path):
    # A learning rate this small cannot move the valid metric: the second evaluation is no better.
    cfg = make_config(tiny_data, tmp_path, epochs=10, patience=1, lr_fusion=1e-12, warmup_ratio=0.0)
    result = run(cfg)
    steps_per_epoch = result.seeds[1111].steps // 2
    assert result.seeds[1111].steps == 2 * steps_per_epoch
    assert result.seeds[1111].training["best_step"] == steps_per_epoch


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
