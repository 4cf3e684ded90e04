"""What the expert fusion adds to one training step of the embedded SmolLM2 (issue 3, item 10).

Measures the trainer's own step (``egmf.training.step.train_step``: forward, backward, clipping, AdamW with
the trainer's parameter groups), batch 8 x about 64 prompt tokens, LoRA r=8 on q/v, on 2 CPU threads:
the full EGMF (three experts, both gating levels, K pseudo tokens, text/audio/vision features) against
the LLM alone on the same prompts (``use_fusion=False``: the same text without the K pseudo tokens).
Both models run interleaved step by step, so machine load hits them alike; the median of ``--steps`` steps
after ``--warmup`` is reported, once in fp32 and once under bf16 autocast (logits are always computed only
where the loss is, via ``logits_to_keep``). The fusion must add less than 10%.

Run (about 2-4 minutes; the first run also caches SmolLM2 as safetensors)::

    .venv/bin/python benchmarks/fusion_overhead.py
    .venv/bin/python benchmarks/fusion_overhead.py --steps 7 --threads 2 --out benchmarks/results/fusion_overhead.md
    .venv/bin/python benchmarks/fusion_overhead.py --smoke      (tiny LLM, a few steps: checks the script)

Prints a table and appends it, with the command, machine, date and load average, to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import statistics
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine as describe_machine  # noqa: E402

import numpy as np
import torch
from accelerate import Accelerator

from egmf.config import TrainConfig
from egmf.data.collate import collate
from egmf.data.schema import MELD_EMOTIONS, DatasetInfo, Sample
from egmf.model.config import ModelConfig
from egmf.model.llm.config import LLMConfig, LoraSettings, PromptConfig
from egmf.training.step import train_step

INFOS = {"meld": DatasetInfo("meld", "erc", "en", labels=MELD_EMOTIONS, metric_family="erc")}
# MELD-like feature sizes: BERT-size text features, Whisper-tiny audio frames, OpenFace-size visual frames.
DIMS = {"meld": {"text": 768, "audio": 384, "vision": 342}}
FRAMES = {"text": 24, "audio": 150, "vision": 48}
LINES = ["Oh my God, I can't believe you did that to me after everything we talked about!",
         "We were on a break! Everybody knows we were on a break, so stop it.",
         "Could this BE any more awkward? Seriously, could it, right now, in here?",
         "How you doin'? I was just walking by and thought I'd come say hello.",
         "I'm fine. Totally fine. Everything is completely and utterly fine, okay?",
         "Pivot! Pivot! PIVOT! Come on, just lift it up higher over the rail!",
         "No, no, no, that is not okay, and you know that it is not okay at all.",
         "Okay, that's actually really sweet of you. Thank you so much, I mean it."]


def make_batch(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        feats = {m: rng.normal(size=(FRAMES[m] - i, DIMS["meld"][m])).astype(np.float32) for m in FRAMES}
        samples.append(Sample(f"dia0_utt{i}", LINES[i % len(LINES)], MELD_EMOTIONS[i % 7], "meld", "erc", "en",
                              speaker="Rachel", text_feats=feats["text"], audio=feats["audio"], vision=feats["vision"]))
    return collate(samples)


def build(use_fusion: bool, autocast: str, accelerator, backend: str = "smollm2-135m"):
    from egmf.model.egmf import EGMF
    from egmf.training.trainer import build_optimizer

    torch.manual_seed(0)
    # The "minimal" template keeps the prompt near 64 tokens (SmolLM2's chat wrapper included).
    cfg = ModelConfig(use_fusion=use_fusion, llm=LLMConfig(backend=backend, autocast=autocast),
                      lora=LoraSettings(r=8, alpha=16, target_modules=("q_proj", "v_proj")),
                      prompt=PromptConfig(template="minimal"))
    model = EGMF(cfg, INFOS, DIMS).train()
    # The trainer's optimiser (AdamW, its learning rates per parameter group), prepared as the trainer does.
    return accelerator.prepare(model, build_optimizer(model, TrainConfig()))


def step(model, opt, batch, accelerator, max_grad_norm: float) -> float:
    """Seconds of one step of the trainer's own ``train_step`` (forward, backward, clip, AdamW)."""
    start = time.perf_counter()
    train_step(model, batch, opt, accelerator, max_grad_norm=max_grad_norm)
    return time.perf_counter() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=7, help="measured steps per model and precision (>= 5)")
    ap.add_argument("--warmup", type=int, default=2, help="unmeasured steps first")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--precision", choices=("both", "fp32", "bf16"), default="both",
                    help="fp32, bf16 autocast, or both (on a loaded 2-core machine fp32 with 2 threads can stall)")
    ap.add_argument("--out", default="benchmarks/results/fusion_overhead.md")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny LLM, 5 steps, fp32, to benchmarks/results/fusion_overhead_smoke.md: checks the script")
    args = ap.parse_args(argv)
    backend = "smollm2-135m"
    if args.smoke:
        backend, args.steps, args.warmup, args.precision = "tiny", 5, 1, "fp32"
        args.out = "benchmarks/results/fusion_overhead_smoke.md"
    if args.steps < 5:
        ap.error("--steps: at least 5")
    torch.set_num_threads(args.threads)
    batch = make_batch(args.batch)
    rows = []
    modes = {"both": ("none", "bf16"), "fp32": ("none",), "bf16": ("bf16",)}[args.precision]
    max_grad_norm = TrainConfig().max_grad_norm
    for autocast in modes:
        # Precision is the LLM's own autocast setting (the column of the table), not the accelerator's.
        accelerator = Accelerator(cpu=True, mixed_precision="no")
        llm_alone, opt_a = build(False, autocast, accelerator, backend)
        egmf, opt_e = build(True, autocast, accelerator, backend)
        tokens = egmf._encode(batch.samples, with_target=True).attention_mask.sum(1).float().mean().item()
        tokens_a = llm_alone._encode(batch.samples, with_target=True).attention_mask.sum(1).float().mean().item()
        times = {"llm": [], "egmf": []}
        for i in range(args.warmup + args.steps):  # interleaved: load drifts hit both alike
            t_a = step(llm_alone, opt_a, batch, accelerator, max_grad_norm)
            t_e = step(egmf, opt_e, batch, accelerator, max_grad_norm)
            if i >= args.warmup:
                times["llm"].append(t_a)
                times["egmf"].append(t_e)
        med_a, med_e = statistics.median(times["llm"]), statistics.median(times["egmf"])
        n_fusion = sum(p.numel() for p in egmf.param_groups()["fusion"])
        rows.append((autocast, tokens_a, tokens, med_a, med_e, 100 * (med_e / med_a - 1), n_fusion))
        print(f"{autocast}: LLM alone {med_a:.3f}s  EGMF {med_e:.3f}s  overhead {rows[-1][5]:+.1f}%", flush=True)
        accelerator.free_memory()  # it holds the prepared models
        del llm_alone, egmf, opt_a, opt_e, accelerator

    table = ["| precision | tokens/sample (LLM alone / EGMF) | LLM alone (s/step) | EGMF (s/step) | overhead | "
             "fusion params |", "|---|---|---|---|---|---|"]
    for autocast, ta, te, a, e, pct, n in rows:
        name = "fp32" if autocast == "none" else "bf16 autocast"
        table.append(f"| {name} | {ta:.0f} / {te:.0f} | {a:.3f} | {e:.3f} | {pct:+.1f}% | {n / 1e6:.2f} M |")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    text = "\n".join([
        f"# Fusion overhead on one training step ({'tiny LLM, smoke check' if args.smoke else 'SmolLM2-135M'}, "
        "LoRA r=8 q/v)",
        "",
        f"- command: `{shlex.join([Path(sys.executable).name and '.venv/bin/python'] + sys.argv)}`",
        f"- machine: {describe_machine()}; load average after the run: {load}",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- batch {args.batch} MELD-like samples (text {DIMS['meld']['text']}-d x {FRAMES['text']}, audio "
        f"{DIMS['meld']['audio']}-d x {FRAMES['audio']}, vision {DIMS['meld']['vision']}-d x {FRAMES['vision']} "
        f"frames), the trainer's train_step (forward, backward, clip, AdamW), median of {args.steps} steps after {args.warmup} warm-up, "
        "the two models interleaved step by step",
        "",
        *table,
        "",
    ])
    print("\n" + text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
