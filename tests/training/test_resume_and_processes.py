"""Resume after a kill, and two processes, each against an uninterrupted single-process run.

Both run the real command line in subprocesses, as a user does: ``python -m egmf train`` killed with
SIGKILL in the middle of an epoch then ``--resume``d, and two processes over gloo. On a machine without a
GPU, ``accelerate launch --multi_gpu --num_processes 2`` starts them through torchrun and Accelerate picks
gloo; ``--cpu --num_processes 2`` starts only one process unless MPI is set up (accelerate 1.15).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from egmf.training import checkpoint as ckpt

from .conftest import write_config

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONHASHSEED": "0"}


def _train(config: Path, *extra: str, launcher: tuple[str, ...] = (sys.executable, "-m")) -> subprocess.Popen:
    return subprocess.Popen(
        [*launcher, "egmf", "train", "--config", str(config), *extra],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return out


def _meld_only(config: Path) -> Path:
    import yaml

    data = yaml.safe_load(config.read_text())
    data["data"]["datasets"] = data["data"]["datasets"][:1]
    config.write_text(yaml.safe_dump(data))
    return config


# EGMF on the tiny LLM measures its prompts, so its batches are length-bucketed (train.length_bucketing, on by
# default); the late-fusion baseline has no prompt and shuffles plainly: the resume test covers both samplers.
TINY_EGMF = {
    "name": "egmf", "text_source": "dataset",
    "llm": {"backend": "tiny", "tiny_hidden_size": 32, "tiny_layers": 2},
    "fusion": {"d_model": 16, "n_heads": 2, "num_pseudo_tokens": 2},
}


def _with_model(config: Path, model: str) -> Path:
    import yaml

    if model == "egmf":
        data = yaml.safe_load(config.read_text())
        data["model"] = TINY_EGMF
        config.write_text(yaml.safe_dump(data))
    return config


def _saved_state(state_file: Path) -> dict:
    """The state a resume will read: ``last``'s, or the one a kill between a save's two renames left aside."""
    if state_file.is_file():
        return json.loads(state_file.read_text())
    (aside,) = state_file.parent.parent.glob(".last.old-*")
    return json.loads((aside / state_file.name).read_text())


def _weights(seed_dir: Path, which: str) -> dict[str, torch.Tensor]:
    return ckpt.load_weights(seed_dir / "checkpoints" / which)


# EGMF has dropout (LoRA, fusion): its resume is exact only if the RNG streams continue where they stopped.
@pytest.mark.parametrize("model", ["late_fusion", "egmf"])
def test_a_run_killed_mid_epoch_resumes_to_the_same_result(tiny_data, tmp_path, model):
    config = _meld_only(write_config(tmp_path / "cfg.yaml", tiny_data, tmp_path / "runs", epochs=4, save_every=3))
    config = _with_model(config, model)
    out = _finish(_train(config, "--name", "straight"))
    assert ("LengthBucketSampler" if model == "egmf" else "EpochShuffle") in out

    proc = _train(config, "--name", "killed")
    state_file = tmp_path / "runs" / "killed" / "seed_1111" / "checkpoints" / "last" / ckpt.STATE
    deadline = time.monotonic() + 300
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        if state_file.is_file():
            try:
                state = json.loads(state_file.read_text())
            except (json.JSONDecodeError, OSError):
                state = {}
            if state.get("micro_in_epoch", 0) > 0 and state.get("epoch", 0) >= 1:
                # Freeze first, then read what is on disk: a save may land between the read above and the kill.
                proc.send_signal(signal.SIGSTOP)
                killed_at = _saved_state(state_file)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                break
        time.sleep(0.02)
    if killed_at is None:
        proc.kill()
        pytest.fail("the run ended before it could be killed mid-epoch; lower save_every or raise epochs")
    assert not (tmp_path / "runs" / "killed" / "seed_1111" / "metrics.json").exists()

    out = _finish(_train(config, "--name", "killed", "--resume"))
    assert "resumed from" in out and f"at step {killed_at['step']}" in out

    a, b = (tmp_path / "runs" / n / "seed_1111" for n in ("straight", "killed"))
    for which in ("last", "best"):
        wa, wb = _weights(a, which), _weights(b, which)
        assert wa.keys() == wb.keys()
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6, msg=f"{which}/{k}")
    ma = json.loads((a / "metrics.json").read_text())
    mb = json.loads((b / "metrics.json").read_text())
    assert ma["test"] == mb["test"] and ma["valid"] == mb["valid"]
    # The resumed run reports its whole training time: the killed process's saved seconds plus the resumed ones.
    assert killed_at["train_seconds"] > 0
    assert mb["training"]["train_seconds"] > killed_at["train_seconds"]


def test_two_processes_match_one_process(tiny_data, tmp_path):
    # One process with batch 8 against two processes with batch 4 each: the same 8 samples per step.
    config = _meld_only(write_config(tmp_path / "cfg.yaml", tiny_data, tmp_path / "runs", epochs=2, batch_size=8))
    _finish(_train(config, "--name", "one"))
    launcher = (
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "-m",
    )
    out = _finish(_train(config, "--name", "two", "--set", "train.batch_size=4", launcher=launcher))
    assert "2 process(es)" in out
    a, b = (tmp_path / "runs" / n / "seed_1111" for n in ("one", "two"))
    state = b / "checkpoints" / "last" / ckpt.ACCELERATE_STATE
    assert sorted(p.name for p in state.glob("random_states_*.pkl")) == ["random_states_0.pkl", "random_states_1.pkl"]
    wa, wb = _weights(a, "last"), _weights(b, "last")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5, msg=k)
    ma = json.loads((a / "metrics.json").read_text())["test"]["meld"]
    mb = json.loads((b / "metrics.json").read_text())["test"]["meld"]
    assert mb["accuracy"] == pytest.approx(ma["accuracy"], abs=1e-6)
    assert len(json.loads((b / "metrics.json").read_text())["test"]["meld"]["confusion_matrix"]) == 7
    lines = (b / "predictions_test.jsonl").read_text().splitlines()
    assert len(lines) == len((a / "predictions_test.jsonl").read_text().splitlines()), "no sample counted twice"
