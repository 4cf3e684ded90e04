"""How EGMF's cost grows with the number of pseudo tokens K and with the dataset size (not a test).

    nohup .venv/bin/python benchmarks/scaling.py > /tmp/scaling.log 2>&1 &
    .venv/bin/python benchmarks/scaling.py --smoke        (tiny LLM: checks the script)

1. K in {1, 4, 8, 16}: median seconds of one training step (batch 8; the trainer's own ``train_step``:
   forward, backward, clip, AdamW) and of constrained prediction of 32 utterances, with the embedded
   SmolLM2 (bf16 autocast where the CPU computes bf16 natively, LoRA r=8), on generated MELD-format data. Each K is a fresh model; the first ``--warmup`` steps are not timed.
2. dataset size N in {64, 128, 256, 512} train utterances: one epoch through ``egmf.experiments.run.run``
   (the trainer as ``egmf train`` runs it, K=4), with a fixed 32-utterance valid and test split; the
   training seconds (the epoch, its valid evaluation and checkpoint saves) and seconds per train utterance.

Writes ``benchmarks/results/scaling.md``.
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
from bench_common import Section, llm_autocast  # noqa: E402


@dataclass
class Bench:
    """What the trainer builds for a config: its accelerator, the prepared model and optimiser, the data."""

    cfg: object
    accelerator: object
    model: object
    optimizer: object
    data: object


def build(backend: str, k: int, data_dir: Path, n_train: int, smoke: bool) -> Bench:
    """The model, optimiser and data of a training config on generated MELD-format data, built and prepared
    as the trainer does."""
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
                  "llm": {"backend": backend, "autocast": llm_autocast(backend)},
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


def k_sweep(ks, backend, data_dir, steps, warmup, smoke) -> list[str]:
    rows = ["| K | training step (median, s) | samples/s | constrained prediction of 32 (s) | samples/s |",
            "|---:|---:|---:|---:|---:|"]
    for k in ks:
        bench = build(backend, k, data_dir, 240, smoke)
        times = train_steps(bench, bench.data.split("train"), 8, steps)[warmup:]
        med = statistics.median(times)
        test = bench.data.split("test")[:32]
        secs, _, _ = decode(bench.accelerator.unwrap_model(bench.model), test, "constrained", 16)
        rows.append(f"| {k} | {med:.3f} | {8 / med:.2f} | {secs:.2f} | {len(test) / secs:.2f} |")
        print(rows[-1], flush=True)
        bench.accelerator.free_memory()  # the accelerator holds the prepared model: let this K's model go
        del bench
    return rows


def size_sweep(sizes, backend, data_dir, out, smoke) -> list[str]:
    from egmf.config import config_from_dict
    from egmf.experiments.run import run

    rows = ["| train utterances | steps (1 epoch) | training s | s per utterance | wall s (incl. test eval) |",
            "|---:|---:|---:|---:|---:|"]
    for n in sizes:
        cfg = config_from_dict({
            "name": f"n{n}", "output_dir": str(out),
            "data": {"datasets": [{"name": "meld", "path": str(data_dir)}], "limit": {"train": n, "valid": 32, "test": 32}},
            "model": {"name": "egmf", "text_source": "dataset",
                      "llm": {"backend": backend, "autocast": llm_autocast(backend)},
                      "fusion": {"d_model": 16 if smoke else 128, "n_heads": 2 if smoke else 4, "num_pseudo_tokens": 4},
                      "prompt": {"max_context_turns": 3, "max_prompt_tokens": 768 if smoke else 256}},
            "train": {"epochs": 1, "batch_size": 8, "patience": 0, "save_every": 10_000},
            "eval": {"batch_size": 16, "plots": False},
        })
        t = time.perf_counter()
        result = run(cfg)
        wall = time.perf_counter() - t
        info = next(iter(result.seeds.values())).training
        rows.append(f"| {n} | {info['steps']} | {info['train_seconds']:.1f} | {info['train_seconds'] / n:.3f} | {wall:.1f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ks", default="1,4,8,16")
    ap.add_argument("--sizes", default="64,128,256,512")
    ap.add_argument("--steps", type=int, default=8, help="training steps per K (the first --warmup not timed)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    backend = "tiny" if args.smoke else "smollm2-135m"
    ks = [1, 4] if args.smoke else [int(k) for k in args.ks.split(",")]
    sizes = [16, 32] if args.smoke else [int(n) for n in args.sizes.split(",")]
    steps, warmup = (3, 1) if args.smoke else (args.steps, args.warmup)
    section = Section("scaling" + ("_smoke" if args.smoke else ""), "How time grows with K and with dataset size")
    with tempfile.TemporaryDirectory() as tmp:
        from egmf.data.synth import write_synthetic

        data_dir = Path(tmp) / "meld"
        write_synthetic("meld", data_dir, size=max(max(sizes), 240), seed=0)
        section.add("## Pseudo tokens K", "", *k_sweep(ks, backend, data_dir, steps, warmup, args.smoke), "")
        section.add("## Dataset size (one epoch, K=4)", "", *size_sweep(sizes, backend, data_dir, Path(tmp) / "runs",
                                                                          args.smoke), "")
    section.write([
        f"model: EGMF, LLM {backend} (autocast {llm_autocast(backend)}), LoRA r=8, batch 8, prompt with up "
        "to 3 context turns; generated MELD-format data (text 48-d / audio 32-d / vision 24-d features)",
        f"K sweep: {steps} steps per K, the first {warmup} untimed; size sweep: one epoch each, valid/test 32",
    ])


if __name__ == "__main__":
    main()
