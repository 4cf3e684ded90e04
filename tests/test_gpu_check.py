"""``benchmarks/gpu_check.py --cpu --smoke``: the GPU check's own path on a CPU (tiny LLM, two steps).

The GPU parts (CUDA timing sync, peak GPU memory, the SmolLM2 epoch on the shared MELD CSVs) cannot run here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # about 20 s: a subprocess that imports the stack, trains two tiny steps and evaluates
def test_gpu_check_smoke_writes_its_report_into_out(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--cpu", "--smoke", "--work", str(tmp_path / "work")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| optimiser steps (batch 8) | 2 |" in report
    for line in ("step time, median", "training samples/s", "peak resident memory", "slow tests: not run"):
        assert line in report, line


def test_gpu_check_refuses_a_machine_without_cuda_unless_told_cpu(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    env = {**os.environ, "OUT": str(tmp_path), "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--smoke", "--work", str(tmp_path / "work")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0 and "no CUDA device: pass --cpu" in proc.stderr
