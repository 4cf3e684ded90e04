"""What the expert fusion adds to one training step of the embedded SmolLM2 (issue 3, item 10).

Measures forward + backward + AdamW step, batch 8 x about 64 prompt tokens, LoRA r=8 on q/v, on 2 CPU
threads: the full EGMF (three experts, both gating levels, K pseudo tokens, text/audio/vision features)
against the LLM alone on the same prompts (``use_fusion=False``: the same text without the K pseudo tokens).
Both models run interleaved step by step, so machine load hits them alike; the median of ``--steps`` steps
after ``--warmup`` is reported, once in fp32 and once under bf16 autocast (logits are always computed only
where the loss is, via ``logits_to_keep``). The fusion must add less than 10%.

Run (about 2-4 minutes; the first run also caches SmolLM2 as safetensors)::

    .venv/bin/python benchmarks/fusion_overhead.py
    .venv/bin/python benchmarks/fusion_overhead.py --steps 7 --threads 2 --out benchmarks/results/fusion_overhead.md

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

from egmf.data.collate import collate
from egmf.data.schema import MELD_EMOTIONS, DatasetInfo, Sample
from egmf.model.config import ModelConfig
from egmf.model.llm.config import LLMConfig, LoraSettings, PromptConfig

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


def build(use_fusion: bool, autocast: str):
    from egmf.model.egmf import EGMF

    torch.manual_seed(0)
    # The "minimal" template keeps the prompt near 64 tokens (SmolLM2's chat wrapper included).
    cfg = ModelConfig(use_fusion=use_fusion, llm=LLMConfig(autocast=autocast),
                      lora=LoraSettings(r=8, alpha=16, target_modules=("q_proj", "v_proj")),
                      prompt=PromptConfig(template="minimal"))
    model = EGMF(cfg, INFOS, DIMS).train()
    groups = model.param_groups()
    opt = torch.optim.AdamW([{"params": g} for g in groups.values() if g], lr=1e-4)
    return model, opt


def step(model, opt, batch) -> float:
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    model(batch).loss.backward()
    opt.step()
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
    args = ap.parse_args(argv)
    if args.steps < 5:
        ap.error("--steps: at least 5")
    torch.set_num_threads(args.threads)
    batch = make_batch(args.batch)
    rows = []
    modes = {"both": ("none", "bf16"), "fp32": ("none",), "bf16": ("bf16",)}[args.precision]
    for autocast in modes:
        llm_alone, opt_a = build(False, autocast)
        egmf, opt_e = build(True, autocast)
        tokens = egmf._encode(batch.samples, with_target=True).attention_mask.sum(1).float().mean().item()
        tokens_a = llm_alone._encode(batch.samples, with_target=True).attention_mask.sum(1).float().mean().item()
        times = {"llm": [], "egmf": []}
        for i in range(args.warmup + args.steps):  # interleaved: load drifts hit both alike
            t_a, t_e = step(llm_alone, opt_a, batch), step(egmf, opt_e, batch)
            if i >= args.warmup:
                times["llm"].append(t_a)
                times["egmf"].append(t_e)
        med_a, med_e = statistics.median(times["llm"]), statistics.median(times["egmf"])
        n_fusion = sum(p.numel() for p in egmf.param_groups()["fusion"])
        rows.append((autocast, tokens_a, tokens, med_a, med_e, 100 * (med_e / med_a - 1), n_fusion))
        print(f"{autocast}: LLM alone {med_a:.3f}s  EGMF {med_e:.3f}s  overhead {rows[-1][5]:+.1f}%", flush=True)
        del llm_alone, egmf, opt_a, opt_e

    table = ["| precision | tokens/sample (LLM alone / EGMF) | LLM alone (s/step) | EGMF (s/step) | overhead | "
             "fusion params |", "|---|---|---|---|---|---|"]
    for autocast, ta, te, a, e, pct, n in rows:
        name = "fp32" if autocast == "none" else "bf16 autocast"
        table.append(f"| {name} | {ta:.0f} / {te:.0f} | {a:.3f} | {e:.3f} | {pct:+.1f}% | {n / 1e6:.2f} M |")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    text = "\n".join([
        "# Fusion overhead on one training step (SmolLM2-135M, LoRA r=8 q/v)",
        "",
        f"- command: `{shlex.join([Path(sys.executable).name and '.venv/bin/python'] + sys.argv)}`",
        f"- machine: {describe_machine()}; load average after the run: {load}",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- batch {args.batch} MELD-like samples (text {DIMS['meld']['text']}-d x {FRAMES['text']}, audio "
        f"{DIMS['meld']['audio']}-d x {FRAMES['audio']}, vision {DIMS['meld']['vision']}-d x {FRAMES['vision']} "
        f"frames), forward + backward + AdamW, median of {args.steps} steps after {args.warmup} warm-up, "
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
