"""One short check on a GPU machine: the slow tests, then one MELD epoch with SmolLM2, its speed and memory.

    bash benchmarks/gpu_check.sh                        (a fresh GPU machine: installs, then runs this file)
    .venv/bin/python benchmarks/gpu_check.py --cpu --smoke   (any machine: tiny LLM, generated MELD, 2 steps)

NOT YET RUN ON A GPU: written on a CPU-only machine, where only the ``--cpu --smoke`` path ran
(``tests/test_gpu_check.py``, a slow test). The figures it reports are its own measurements on whatever machine runs it.

The epoch: MELD train minus the held-out dialogues of `quality.py` (checkpoint selection), scored on MELD dev, text + 3 context
turns, batch 8, SmolLM2-135M with LoRA, bf16 where the GPU has it, selected exactly as
``benchmarks/quality.py meld`` does (its ``write_meld`` and ``base_config``), trained by the one trainer
(``egmf.experiments.run``), valid scored once at the end (``train.num_evals: 1``). Every call of the
trainer's own ``train_step`` is timed (synchronised with the GPU), and every valid evaluation.

Writes ``$OUT/gpu_check.md`` when ``OUT`` is set, else ``benchmarks/results/gpu_check.md``, with the slow
tests' log beside it (``gpu_check_slow_tests.log``). Under 10 minutes: the slow tests have ``--tests-timeout``
seconds (default 300), the epoch the rest; ``--max-steps`` cuts the epoch.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import REPO, RESULTS, SHARED, machine, peak_rss_mb  # noqa: E402


def out_dir() -> Path:
    return Path(os.environ["OUT"]) if os.environ.get("OUT") else RESULTS


def run_slow_tests(timeout: int, log: Path) -> str:
    """``pytest -m slow``: the summary line (or why there is none); the whole output goes to ``log``."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "slow", "-p", "no:cacheprovider", "tests"]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        output, summary = proc.stdout + proc.stderr, f"exit {proc.returncode}"
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        summary = f"stopped after {timeout} s"
    log.write_text(output, encoding="utf-8")
    last = next((ln for ln in reversed(output.splitlines()) if " passed" in ln or " failed" in ln), "no summary")
    return f"{last.strip('= ')} ({summary}, {time.perf_counter() - started:.0f} s; log: {log.name})"


class Timed:
    """Wraps a function of ``egmf.training.trainer`` and records each call's seconds (after a GPU sync)."""

    def __init__(self, module, name: str, sync):
        self.module, self.name, self.sync, self.seconds = module, name, sync, []
        self.original = getattr(module, name)

    def __enter__(self):
        def timed(*args, **kwargs):
            self.sync()
            start = time.perf_counter()
            out = self.original(*args, **kwargs)
            self.sync()
            self.seconds.append(time.perf_counter() - start)
            return out

        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc):
        setattr(self.module, self.name, self.original)


def epoch_config(work: Path, smoke: bool, max_steps: int) -> dict:
    from quality import base_config, write_meld

    from egmf.data.synth import write_synthetic

    if smoke:  # generated MELD-format data: the script's path without the shared CSVs
        path = work / "data" / "meld_smoke"
        if not path.exists():
            write_synthetic("meld", path, size="tiny", seed=0)
        cfg = base_config(path, 2, "tiny", "llm", smoke=True)
        cfg["data"]["datasets"] = [{"name": "meld", "path": str(path)}]
    else:
        path = write_meld(SHARED / "meld", work / "data" / "meld")
        cfg = base_config(path, max_steps, "smollm2-135m", "llm", smoke=False)
    cfg["name"], cfg["output_dir"] = f"gpu_check_{time.strftime('%Y%m%d_%H%M%S')}", str(work / "runs")
    # One epoch (or max_steps), valid scored once at its end.
    cfg["train"].update({"epochs": 1, "max_steps": 2 if smoke else max_steps, "eval_every": 0, "num_evals": 1,
                         "save_every": 10_000})
    return cfg


def train_one_epoch(work: Path, smoke: bool, max_steps: int, cpu: bool) -> list[str]:
    import torch

    gpu = torch.cuda.is_available() and not cpu
    if not gpu and not cpu:
        sys.exit("no CUDA device: pass --cpu to run this check on the CPU")
    from egmf.config import config_from_dict
    from egmf.experiments.run import run
    from egmf.training import trainer

    sync = torch.cuda.synchronize if gpu else (lambda: None)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    cfg = config_from_dict(epoch_config(work, smoke, max_steps))
    started = time.perf_counter()
    with Timed(trainer, "train_step", sync) as steps, Timed(trainer, "predict_samples", sync) as evals:
        result = run(cfg)
    wall = time.perf_counter() - started
    seed = next(iter(result.seeds.values()))
    t = np.asarray(steps.seconds)
    warm = t[min(5, len(t) - 1):] if len(t) else t  # the first steps include CUDA/autotune warm-up
    batch = cfg.train.batch_size
    lines = [
        "| measure | value |", "| --- | --- |",
        f"| device | {torch.cuda.get_device_name(0) if gpu else 'CPU'}; precision {trainer.resolve_precision(cfg.train.mixed_precision)} |",
        f"| optimiser steps (batch {batch}) | {len(t)} |",
        f"| step time, median (p10-p90) | {np.median(warm):.3f} s ({np.percentile(warm, 10):.3f}-{np.percentile(warm, 90):.3f}) |",
        f"| first step (warm-up) | {t[0]:.3f} s |" if len(t) else "| first step | none |",
        f"| training samples/s (batch / median step) | {batch / np.median(warm):.1f} |",
        f"| all steps together | {t.sum():.1f} s |",
        f"| valid evaluations | {len(evals.seconds)}, {sum(evals.seconds):.1f} s |",
        f"| run wall time (training, valid, test, saving) | {wall:.0f} s |",
        f"| peak GPU memory (max_memory_allocated) | {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB |" if gpu
        else f"| peak resident memory (CPU run) | {peak_rss_mb() / 1024:.2f} GiB |",
    ]
    test = seed.test.get("meld") or next(iter(seed.test.values()), {})
    if "weighted_f1" in test:
        lines.append(f"| test weighted F1 (MELD dev when not --smoke) | {test['weighted_f1']:.4f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu", action="store_true", help="run on the CPU (no CUDA needed)")
    ap.add_argument("--smoke", action="store_true", help="tiny LLM, generated MELD, 2 steps; no slow tests")
    ap.add_argument("--skip-tests", action="store_true", help="do not run the slow tests")
    ap.add_argument("--tests-timeout", type=int, default=300, help="seconds for the slow tests")
    ap.add_argument("--max-steps", type=int, default=0, help="cut the epoch after this many steps (0 = whole)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/egmf_gpu_check"), help="data and run folders")
    args = ap.parse_args()
    if args.cpu:  # before torch is imported: the trainer then sees no GPU and takes the CPU
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    out = out_dir()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    head = ["# GPU check", "", f"- command: `{' '.join(sys.argv)}` (from the repository root)"]
    if not args.cpu:
        import torch

        if not torch.cuda.is_available():
            sys.exit("no CUDA device: pass --cpu to run this check on the CPU")
    if args.smoke or args.skip_tests:
        head.append("- slow tests: not run (--smoke / --skip-tests)")
    else:
        head.append(f"- slow tests: {run_slow_tests(args.tests_timeout, out / 'gpu_check_slow_tests.log')}")
    lines = train_one_epoch(args.work, args.smoke, args.max_steps, args.cpu)
    head.insert(3, f"- machine: {machine()}")  # after training: the torch thread count the trainer set
    head.append(f"- wall time of this check: {time.perf_counter() - started:.0f} s")
    path = out / "gpu_check.md"
    path.write_text("\n".join([*head, "", *lines]) + "\n", encoding="utf-8")
    print(path.read_text(encoding="utf-8"))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
