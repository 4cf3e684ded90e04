"""Training and evaluation speed of EGMF with the embedded SmolLM2, constrained against free decoding, and the
peak resident memory of the training process (not a test).

    nohup .venv/bin/python benchmarks/throughput.py > /tmp/throughput.log 2>&1 &
    .venv/bin/python benchmarks/throughput.py --smoke        (tiny LLM, a few steps: checks the script)

On generated MELD-format data (``egmf data synth``; text + audio + vision features, dialogue context):

1. training: ``--steps`` optimiser steps of EGMF (SmolLM2-135M, LoRA r=8 on its default targets, K=4,
   bf16 autocast, batch 8) through the trainer's own step (``egmf.training.step.train_step``: forward,
   backward, clip, AdamW), on the trainer's accelerator (``make_accelerator``); samples/s from the median
   step time after ``--warmup`` steps;
2. evaluation: the trained model predicts ``--eval-n`` test utterances with constrained decoding (one LLM
   pass scores every label) and with free generation + parsing; samples/s and accuracy of each, and the
   speed ratio (on a trained checkpoint and real data: ``benchmarks/decoding.py``);
3. memory: ``ru_maxrss`` of this process after training and evaluation (LLM loaded, optimiser state,
   activations): the target is under 4 GB.

Writes ``benchmarks/results/throughput.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import Section, peak_rss_mb  # noqa: E402


@dataclass
class Bench:
    """What the trainer builds for a config: its accelerator, the prepared model and optimiser, the data."""

    cfg: object
    accelerator: object
    model: object
    optimizer: object
    data: object


def build(backend: str, k: int, data_dir: Path, n_train: int, smoke: bool) -> Bench:
    """The model, optimiser and data of a training config, built and prepared as the trainer does."""
    from egmf.config import config_from_dict
    from egmf.data.synth import write_synthetic
    from egmf.model.registry import build_model
    from egmf.training.data import load_training_data
    from egmf.training.trainer import build_optimizer, make_accelerator

    if not data_dir.exists():
        write_synthetic("meld", data_dir, size=n_train, seed=0)
    cfg = config_from_dict({
        "data": {"datasets": [{"name": "meld", "path": str(data_dir)}]},
        "model": {"name": "egmf", "text_source": "dataset",
                  "llm": {"backend": backend, "autocast": "none" if smoke else "bf16"},
                  "fusion": {"d_model": 16 if smoke else 128, "n_heads": 2 if smoke else 4, "num_pseudo_tokens": k},
                  "lora": {"r": 8}, "prompt": {"max_context_turns": 3, "max_prompt_tokens": 768 if smoke else 256}},
        "train": {"batch_size": 8},
    })
    data = load_training_data(cfg.data, cfg.model.text_source)
    accelerator = make_accelerator(cfg)
    model = build_model(cfg.model, data.infos, data.feature_dims)
    model, opt = accelerator.prepare(model, build_optimizer(model, cfg.train))
    return Bench(cfg, accelerator, model, opt, data)


def train_steps(bench: Bench, samples, batch_size: int, steps: int) -> list[float]:
    """Seconds of each optimiser step of the trainer's own ``train_step`` (forward, backward, clip, AdamW)
    over consecutive batches."""
    from egmf.data.collate import collate
    from egmf.training.step import train_step

    times, i = [], 0
    bench.model.train()
    for _ in range(steps):
        batch = [samples[(i + j) % len(samples)] for j in range(batch_size)]
        i += batch_size
        t = time.perf_counter()
        train_step(bench.model, collate(batch).to(bench.accelerator.device), bench.optimizer, bench.accelerator,
                   max_grad_norm=bench.cfg.train.max_grad_norm)
        times.append(time.perf_counter() - t)
    return times


def decode(model, samples, mode: str, batch_size: int) -> tuple[float, float, int]:
    """``(seconds, accuracy, unparsed answers)`` of predicting ``samples`` with ``mode`` decoding."""
    from egmf.evaluation.evaluate import predict_samples

    t = time.perf_counter()
    preds = predict_samples(model, samples, batch_size, mode)
    secs = time.perf_counter() - t
    acc = sum(p.prediction == s.label for p, s in zip(preds, samples)) / len(samples)
    return secs, acc, sum(not p.parsed for p in preds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60, help="training steps (the first --warmup are not timed)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--eval-n", type=int, default=96, help="test utterances decoded each way")
    ap.add_argument("--eval-batch", type=int, default=16)
    ap.add_argument("--smoke", action="store_true", help="tiny LLM, 3 steps, 8 utterances")
    args = ap.parse_args()
    backend = "tiny" if args.smoke else "smollm2-135m"
    steps, warmup, eval_n = (3, 1, 8) if args.smoke else (args.steps, args.warmup, args.eval_n)
    section = Section("throughput" + ("_smoke" if args.smoke else ""), "Training and evaluation speed, peak memory")
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        bench = build(backend, 4, Path(tmp) / "meld", 240, args.smoke)
        cfg, data, model = bench.cfg, bench.data, bench.accelerator.unwrap_model(bench.model)
        load_s = time.perf_counter() - t0
        train = data.split("train")
        times = train_steps(bench, train, 8, steps)
        timed = times[warmup:] or times
        med = statistics.median(timed)
        rss_train = peak_rss_mb()
        test = data.split("test")[:eval_n]
        rows = {}
        for mode in ("constrained", "free"):
            rows[mode] = decode(model, test, mode, args.eval_batch)
        rss_all = peak_rss_mb()
    c_s, c_acc, _ = rows["constrained"]
    f_s, f_acc, f_unparsed = rows["free"]
    speedup = f_s / c_s
    section.add(
        "| measure | value |", "|---|---:|",
        f"| training step (median of {len(timed)}, batch 8) | {med:.2f} s |",
        f"| training throughput | {8 / med:.2f} samples/s |",
        f"| training throughput (mean step {statistics.mean(timed):.2f} s) | {8 / statistics.mean(timed):.2f} samples/s |",
        f"| evaluation, constrained decoding | {len(test) / c_s:.2f} samples/s (accuracy {c_acc:.4f}) |",
        f"| evaluation, free generation + parsing | {len(test) / f_s:.2f} samples/s (accuracy {f_acc:.4f}, "
        f"{f_unparsed} unparsed) |",
        f"| constrained speed-up over free generation | {speedup:.2f}x |",
        f"| peak resident memory after training | {rss_train:.0f} MiB ({rss_train / 1024:.2f} GiB) |",
        f"| peak resident memory after evaluation | {rss_all:.0f} MiB (target < 4 GB: "
        f"{'met' if rss_all * 2**20 < 4e9 else 'NOT met'}) |",
        f"| model load (LLM from cache + fusion) and data | {load_s:.1f} s |",
        "",
        "Accuracy is on generated data after only the timed training steps; it is there to show that the two "
        "decodings answer alike, not as a quality figure (see the quality sections for real data). How much "
        "faster constrained decoding is depends on how many tokens free generation writes, so the verdict on the "
        "3x target is taken on a trained checkpoint and real data (`benchmarks/decoding.py`).",
    )
    section.write([
        f"model: EGMF, LLM {backend}{' (bf16 autocast)' if not args.smoke else ''}, LoRA r=8, K=4, fusion d_model "
        f"{cfg.model.fusion.d_model}, prompt with up to 3 context turns; {torch.get_num_threads()} torch threads",
        f"data: generated MELD-format (egmf.data.synth, 240 train utterances, text 48-d / audio 32-d / "
        f"vision 24-d features), {steps} training steps ({warmup} warm-up), {len(test)} test utterances decoded, "
        f"eval batch {args.eval_batch}",
        "memory: resource.getrusage(RUSAGE_SELF).ru_maxrss of the one process doing all of it",
    ])


if __name__ == "__main__":
    main()
