"""Constrained classification against free generation, on a trained checkpoint and real data (not a test).

    .venv/bin/python benchmarks/decoding.py            (the EGMF run ``quality.py meld`` trained on MELD)
    .venv/bin/python benchmarks/decoding.py --checkpoint RUN/seed_1111/checkpoints/best --n 256
    .venv/bin/python benchmarks/decoding.py --smoke    (tiny random LLM on generated data: checks the script)

The checkpoint's saved config names its data; ``--n`` test samples (a seeded subset of its test split) are
predicted with each decoding at each ``--batch-sizes``, after one untimed warm-up batch, and (batches of
two or more) once more with the shared prompt prefix read per row instead of once. Reported per batch
size: samples/s of each decoding, the share of free generation's time spent on the prompt prefill (what
both decodings must pay), the free answers' mean length in tokens (before EOS), accuracy and weighted F1
of each, and how often the two agree. Constrained decoding reads the prompt and every label's tokens in one
pass; free generation reads the prompt, then writes one token per step until EOS, so its extra cost is
those steps and the speed-up is bounded by ``free time / prefill time``.

Writes ``benchmarks/results/decoding.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import Section  # noqa: E402

DEFAULT_CHECKPOINT = Path("/tmp/egmf_bench/runs/meld/egmf/seed_1111/checkpoints/best")


class PrefillTimer:
    """Adds up the seconds ``egmf.model.llm.decoding._prefill`` takes (free generation's prompt pass)."""

    def __init__(self):
        import egmf.model.llm.decoding as decoding

        self.module, self.original, self.seconds = decoding, decoding._prefill, 0.0

    def __enter__(self):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t

        self.module._prefill = timed
        return self

    def __exit__(self, *exc):
        self.module._prefill = self.original


def run(model, samples, mode: str, batch_size: int, share: bool = True):
    """``(predictions, seconds, prefill seconds)`` of one decoding over ``samples``; ``share=False`` reads
    every row's whole prompt (the shared-prefix cache off, by raising its threshold for this call)."""
    import egmf.model.llm.decoding as decoding
    from egmf.evaluation.evaluate import predict_samples

    threshold = decoding.MIN_SHARED_PREFIX
    decoding.MIN_SHARED_PREFIX = threshold if share else 10**9
    try:
        with PrefillTimer() as timer:
            t = time.perf_counter()
            preds = predict_samples(model, samples, batch_size, mode)
            secs = time.perf_counter() - t
    finally:
        decoding.MIN_SHARED_PREFIX = threshold
    return preds, secs, timer.seconds


def load(args, tmp: Path):
    """``(model, test samples, description)`` from a checkpoint, or a tiny untrained model for ``--smoke``."""
    from egmf.training.data import load_training_data

    if args.smoke:
        from scaling import build

        bench = build("tiny", 2, tmp / "meld", 48, smoke=True)
        model = bench.accelerator.unwrap_model(bench.model)
        model.eval()
        return model, bench.data.split("test"), "tiny random LLM, untrained, generated MELD-format data"
    from egmf.training.checkpoint import load_model

    if not (args.checkpoint / "trainable.safetensors").is_file():
        sys.exit(f"{args.checkpoint}: no trainable.safetensors; train one first (benchmarks/quality.py meld)")
    model, cfg, _ = load_model(args.checkpoint)
    data = load_training_data(cfg.data, cfg.model.text_source)
    what = (f"checkpoint `{args.checkpoint}` ({cfg.model.name}, LLM {cfg.model.llm.backend}, autocast "
            f"{cfg.model.llm.autocast}, max_new_tokens {cfg.model.max_new_tokens}), its config's test split")
    return model, data.split("test"), what


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    ap.add_argument("--n", type=int, default=256, help="test samples decoded each way (a seeded subset)")
    ap.add_argument("--batch-sizes", default="1,16")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    import torch
    from sklearn.metrics import f1_score

    section = Section("decoding" + ("_smoke" if args.smoke else ""),
                      "Constrained classification against free generation")
    with tempfile.TemporaryDirectory() as tmp:
        model, test, what = load(args, Path(tmp))
        erc = [s for s in test if s.task == "erc"]
        if not erc:
            sys.exit("the checkpoint's test split holds no classification (ERC) samples")
        n = min(args.n, len(erc))
        pick = np.sort(np.random.default_rng(0).choice(len(erc), size=n, replace=False))
        samples = [erc[i] for i in pick]
        gold = [s.label for s in samples]
        section.add(
            "| batch | decoding | shared prompt prefix read once | samples/s | s | prompt prefill (share of time) | "
            "free answer tokens before EOS (mean) | accuracy | weighted F1 | unparsed |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
        )
        ratios = []
        for bs in [int(b) for b in args.batch_sizes.split(",")]:
            for mode in ("constrained", "free"):  # warm-up: first calls build caches and kernels
                run(model, samples[:bs], mode, bs)
            out = {mode: run(model, samples, mode, bs) for mode in ("constrained", "free")}
            # One row has nothing to share; above that, the same decodings reading every prompt whole.
            unshared = {} if bs == 1 else {m: run(model, samples, m, bs, share=False) for m in ("constrained", "free")}
            for (mode, shared), (preds, secs, prefill) in [*(((m, True), r) for m, r in out.items()),
                                                           *(((m, False), r) for m, r in unshared.items())]:
                labels = [p.prediction for p in preds]
                acc = float(np.mean([a == b for a, b in zip(labels, gold)]))
                wf1 = f1_score(gold, labels, average="weighted", zero_division=0)
                if mode == "free":
                    lengths = [len(model.tokenizer(p.generated or "", add_special_tokens=False)["input_ids"])
                               for p in preds]
                    extra = (f"{prefill:.1f} s ({prefill / secs:.0%})", f"{np.mean(lengths):.2f}",
                             str(sum(not p.parsed for p in preds)))
                else:
                    extra = ("-", "-", "-")
                section.add(f"| {bs} | {mode} | {'yes' if shared and bs > 1 else 'no'} | {n / secs:.2f} | {secs:.1f} | "
                            f"{extra[0]} | {extra[1]} | {acc:.4f} | {wf1:.4f} | {extra[2]} |")
            agree = np.mean([a.prediction == b.prediction for a, b in zip(out["constrained"][0], out["free"][0])])
            ratio = out["free"][1] / out["constrained"][1]
            bound = out["free"][1] / out["free"][2]
            ratios.append(f"batch {bs}: constrained is {ratio:.2f}x the speed of free generation (the two agree on "
                          f"{agree:.1%} of samples); free time / its prefill time = {bound:.2f}x, the most any "
                          "decoding that reads the whole prompt could gain")
            if unshared:
                ratios.append(f"batch {bs}: reading the shared prompt prefix once speeds constrained decoding "
                              f"{unshared['constrained'][1] / out['constrained'][1]:.2f}x and free generation "
                              f"{unshared['free'][1] / out['free'][1]:.2f}x")
        section.add("", *[f"- {r}" for r in ratios], "",
                    "Target of issue 5: constrained >= 3x faster than free generation at equal accuracy. Beyond the "
                    "prompt pass both pay, free generation costs one cached step per token it writes (EOS included), "
                    "so the target can only be reached where answers run to several tokens; with answers of one or "
                    "two tokens, no decoding can be 3x faster than free generation.")
        section.write([
            f"model: {what}; {torch.get_num_threads()} torch threads",
            f"data: {n} classification samples of that split (seeded subset), the same for both decodings; "
            "inference batches sorted by prompt length",
        ])


if __name__ == "__main__":
    main()
