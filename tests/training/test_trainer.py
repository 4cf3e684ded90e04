"""The one training loop: early stopping, resume after a kill mid-save, resume that starts over and says why."""

from __future__ import annotations

import os

import pytest

from egmf.config import config_from_dict
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



def _valid_log(run_dir) -> list[dict]:
    """Every evaluation of the run, from the trainer state in ``last``: step, selection value, valid metrics."""
    import json

    return json.loads((run_dir / "seed_1111" / "checkpoints" / "last" / ckpt.STATE).read_text())["history"]


def test_early_stopping_counts_evaluations_of_a_num_evals_plan(tiny_data, tmp_path):
    # 20 steps, 5 evaluations planned (4, 8, 12, 16, 20); nothing improves after the first: patience 2 stops
    # training right after the third evaluation, and the first one's weights are the result.
    result = run(make_config(tiny_data, tmp_path, epochs=50, max_steps=20, num_evals=5, patience=2,
                             lr_fusion=1e-12, warmup_ratio=0.0))
    assert [e["step"] for e in _valid_log(tmp_path / "t")] == [4, 8, 12]
    assert result.seeds[1111].steps == 12 and result.seeds[1111].training["best_step"] == 4


@pytest.mark.parametrize("main_metric,key", [("", "weighted_f1"), ("macro_f1", "macro_f1")])
def test_the_best_checkpoint_is_the_best_valid_main_metric(tiny_data, tmp_path, main_metric, key):
    cfg = run_config_dict(tiny_data, tmp_path, epochs=50, max_steps=24, num_evals=6, patience=0)
    cfg["data"]["datasets"] = cfg["data"]["datasets"][:1]  # MELD only: one main metric, no mean over datasets
    cfg["eval"]["main_metric"] = main_metric
    result = run(config_from_dict(cfg))
    log = _valid_log(tmp_path / "t")
    assert [e["valid_selection"] for e in log] == [e["valid"]["meld"][key] for e in log]
    best = max(log, key=lambda e: e["valid_selection"])  # the first of equal values wins: improvement is strict
    assert result.seeds[1111].training["best_step"] == best["step"]
    assert result.seeds[1111].valid["meld"][key] == pytest.approx(best["valid_selection"])


def test_one_process_can_build_accelerators_of_different_mixed_precision(tiny_data, tmp_path):
    """A sweep (or a test session) trains runs one after another in one process; Accelerate keeps one state per
    process and refuses a second mixed precision, so the trainer resets it between single-process runs."""
    from accelerate.state import AcceleratorState

    from egmf.training.trainer import make_accelerator

    first = make_accelerator(make_config(tiny_data, tmp_path, mixed_precision="no"))
    assert str(first.state.mixed_precision) == "no"
    second = make_accelerator(make_config(tiny_data, tmp_path, mixed_precision="bf16"))
    assert str(second.state.mixed_precision) == "bf16"
    assert str(AcceleratorState().mixed_precision) == "bf16"
    AcceleratorState._reset_state(reset_partial_state=False)  # leave the default for the other tests
