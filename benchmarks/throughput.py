"""Training and evaluation speed of EGMF with the embedded SmolLM2 on real MELD prompts, with the speed switches
of issue 11 off and on side by side, the fusion's overhead over the LLM alone, and peak memory (not a test).

    nohup .venv/bin/python benchmarks/throughput.py > /tmp/throughput.log 2>&1 &     (about 10-15 min, 2 cores)
    .venv/bin/python benchmarks/throughput.py --smoke        (tiny LLM, a few real rows: checks the script)

Data: the shared MELD CSVs (``../shared/data/meld``: train for training, a seeded subset of ``--eval-n`` dev
utterances for evaluation) through the project's ``meld`` loader and the trainer's ``load_training_data``;
text and up to 3 context turns, no audio/video features. Model: ``configs/meld.yaml``'s settings (EGMF,
text_source llm, K=4, d_model 128, SmolLM2-135M, LoRA r=8), batch 8, 3 context turns.

1. training: every configuration below is built and prepared as the trainer builds it (``build_model``,
   ``build_optimizer``, ``make_accelerator``) and steps through the trainer's own
   ``egmf.training.step.train_step`` (forward, backward, clip, AdamW). The configurations are interleaved
   round robin, one step each per round (the order rotating every round), so machine load hits them alike;
   each one sees the same sequence of batches as every other with the same batching: with bucketing off a
   seeded ``EpochShuffle`` cut into batches of 8, with it on ``LengthBucketSampler(lengths, 8, seed, 50)``
   (lengths from ``model.prompt_length``), which is what the trainer's ``train_loader`` builds on one
   process. The median of ``--steps`` steps after ``--warmup`` per configuration, the speed-up against
   "all off" (today's code), and the mean padded prompt width with and without bucketing;
2. the fusion's overhead: EGMF against ``llm_text`` (the same model without the fusion, the same batches),
   all switches on, in the same interleaved run, as a share of EGMF's step;
3. evaluation: constrained decoding (``egmf.evaluation.evaluate.predict_samples``) of the dev subset by the
   configurations whose switches reach inference; samples/s;
4. memory: after the timing, the two all-on configurations each train and evaluate alone in a child process
   (``--memory-only NAME``, one at a time), whose own peak resident memory (``VmHWM``) is the figure against
   the 4 GB target; the ``ru_maxrss`` of this process (every model held at once) is reported too.

Constrained against free decoding is measured on a trained checkpoint by ``benchmarks/decoding.py``.
Writes ``benchmarks/results/throughput.md`` (``throughput_smoke.md`` with ``--smoke``).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import REPO, SHARED, Section, peak_rss_mb  # noqa: E402

MELD_CONFIG = REPO / "configs" / "meld.yaml"
MEMORY_TAG = "MEMORY "  # the child's result line on stdout
GiB4 = 4e9  # the memory target: under 4 GB


@dataclass(frozen=True)
class Variant:
    """One configuration of the side-by-side run: which of issue 11's switches it turns on."""

    name: str
    share_prefix: bool = False
    bucketing: bool = False
    lora_upper: bool = False  # LoRA on the upper half of the layers (model.lora.layers_from = layers // 2)
    precision: str = "fp32"  # fp32 | autocast (bf16 autocast, frozen fp32) | frozen_bf16 (autocast + bf16 weights)
    model: str = "egmf"
    evaluate: bool = False  # its switches reach inference (decoding always shares the prefix and sorts by length)

    def overrides(self, layers: int) -> list[str]:
        autocast = "none" if self.precision == "fp32" else "bf16"
        frozen = "bfloat16" if self.precision == "frozen_bf16" else "float32"
        return [f"model.name={self.model}", f"model.llm.share_prefix={str(self.share_prefix).lower()}",
                f"train.length_bucketing={str(self.bucketing).lower()}",
                f"model.lora.layers_from={layers // 2 if self.lora_upper else 0}",
                f"model.llm.autocast={autocast}", f"model.llm.frozen_dtype={frozen}"]

    def describe(self, layers: int) -> list[str]:
        precision = {"fp32": "fp32", "autocast": "bf16 autocast, frozen fp32",
                     "frozen_bf16": "bf16 autocast + frozen bf16"}[self.precision]
        return [self.model, "on" if self.share_prefix else "off", "on" if self.bucketing else "off",
                f"{layers // 2}-{layers - 1}" if self.lora_upper else "all", precision]


ALL_ON = dict(share_prefix=True, bucketing=True, lora_upper=True)
VARIANTS = [
    Variant("all off (today's code)", evaluate=True),
    Variant("shared prefix", share_prefix=True),
    Variant("length bucketing", bucketing=True),
    Variant("LoRA on upper layers", lora_upper=True, evaluate=True),
    Variant("bf16 autocast only (reference)", precision="autocast", evaluate=True),
    Variant("frozen bf16 (+ bf16 autocast)", precision="frozen_bf16", evaluate=True),
    Variant("all on", **ALL_ON, precision="frozen_bf16", evaluate=True),
    Variant("all on but frozen bf16 (fp32)", **ALL_ON, evaluate=True),
    Variant("llm_text, all on", **ALL_ON, precision="frozen_bf16", model="llm_text"),
    Variant("llm_text, all on, fp32", **ALL_ON, model="llm_text"),
]
BY_NAME = {v.name: v for v in VARIANTS}
OFF, ON, ON_FP32 = VARIANTS[0], BY_NAME["all on"], BY_NAME["all on but frozen bf16 (fp32)"]
AUTOCAST_ONLY, FROZEN_BF16 = BY_NAME["bf16 autocast only (reference)"], BY_NAME["frozen bf16 (+ bf16 autocast)"]
FUSION_PAIRS = [(ON, BY_NAME["llm_text, all on"]), (ON_FP32, BY_NAME["llm_text, all on, fp32"])]
MEMORY_VARIANTS = [ON, ON_FP32]


def run_config(args, variant: Variant, layers: int):
    """``configs/meld.yaml`` with the shared MELD CSVs, 3 context turns and ``variant``'s switches."""
    from egmf.config import load_config

    overrides = [
        f"data.datasets.0.path={SHARED / 'meld'}",
        "data.datasets.0.options={splits: [train, valid], features: null}",  # no test CSV, no features there
        f"data.limit.valid={args.eval_n}", "model.prompt.max_context_turns=3", "train.batch_size=8",
        f"train.threads={args.threads}", f"model.llm.backend={'tiny' if args.smoke else 'smollm2-135m'}",
        *variant.overrides(layers),
    ]
    if args.train_n:
        overrides.append(f"data.limit.train={args.train_n}")
    return load_config(MELD_CONFIG, overrides)


@dataclass
class Built:
    """What the trainer builds for one configuration: its accelerator, prepared model and optimiser."""

    variant: Variant
    cfg: object
    accelerator: object
    model: object
    optimizer: object

    @property
    def raw(self):
        return self.accelerator.unwrap_model(self.model)


def build(cfg, variant: Variant, data) -> Built:
    from accelerate.utils import set_seed

    from egmf.model.registry import build_model
    from egmf.training.trainer import build_optimizer, make_accelerator

    set_seed(0)  # every configuration starts from the same fusion / LoRA weights
    accelerator = make_accelerator(cfg)
    model = build_model(cfg.model, data.infos, data.feature_dims)
    model, optimizer = accelerator.prepare(model, build_optimizer(model, cfg.train))
    return Built(variant, cfg, accelerator, model, optimizer)


def batch_orders(lengths: list[int], batch_size: int, seed: int, bucket_batches: int) -> dict[bool, list[list[int]]]:
    """Epoch 0's batches of indices, without (``False``) and with (``True``) length bucketing."""
    from egmf.training.sampler import EpochShuffle, LengthBucketSampler

    order = list(EpochShuffle(len(lengths), seed))
    plain = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return {False: plain, True: LengthBucketSampler(lengths, batch_size, seed, bucket_batches).batches()}


def widths(batches: list[list[int]], lengths: list[int]) -> tuple[float, float]:
    """``(mean padded width, padding share)`` of ``batches``: a batch pads to its longest prompt."""
    padded = [max(lengths[i] for i in b) for b in batches]
    cells = sum(w * len(b) for w, b in zip(padded, batches))
    return statistics.mean(padded), 1 - sum(lengths[i] for b in batches for i in b) / cells


def one_step(built: Built, samples) -> float:
    from egmf.data.collate import collate
    from egmf.training.step import train_step

    batch = collate(samples).to(built.accelerator.device)
    t = time.perf_counter()
    train_step(built.model, batch, built.optimizer, built.accelerator, max_grad_norm=built.cfg.train.max_grad_norm)
    return time.perf_counter() - t


def evaluate_seconds(built: Built, samples) -> float:
    from egmf.evaluation.evaluate import predict_samples

    t = time.perf_counter()
    predict_samples(built.raw, samples, built.cfg.eval.batch_size, "constrained")
    return time.perf_counter() - t


def load_data(args):
    """MELD train and the dev subset, loaded as the trainer loads them (every configuration reads the same)."""
    from egmf.training.data import load_training_data

    cfg = run_config(args, OFF, layers=0)
    return load_training_data(cfg.data, cfg.model.text_source)


def timed_batches(batches: list[list[int]], args) -> list[list[int]]:
    """The batches of the timed rounds (round ``r`` steps on batch ``r`` of the epoch, wrapping)."""
    return [batches[r % len(batches)] for r in range(args.warmup, args.warmup + args.steps)]


def own_peak_mb() -> float:
    """Peak resident memory of this process's own address space (``VmHWM``), in MiB.

    Not ``ru_maxrss`` in the child: Linux carries the launching process's peak into it across the
    fork/vfork + exec of ``subprocess`` (a child of this script would report the parent's figure)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def memory_only(args) -> None:
    """Child mode: train (and evaluate) one configuration alone; print its peak resident memory."""
    variant = BY_NAME[args.memory_only]
    data = load_data(args)
    cfg = run_config(args, variant, args.layers)
    built = build(cfg, variant, data)
    rss_built = own_peak_mb()
    train = data.split("train")
    if args.lengths:  # the parent's, so the child trains on the timed run's batches
        lengths = json.loads(Path(args.lengths).read_text(encoding="utf-8"))
    else:
        lengths = [built.raw.prompt_length(s) for s in train]
    if len(lengths) != len(train):
        sys.exit(f"{args.lengths}: {len(lengths)} prompt lengths for {len(train)} train utterances")
    batches = batch_orders(lengths, cfg.train.batch_size, cfg.train.seed, cfg.train.bucket_batches)[variant.bucketing]
    # The timed run's batches, then the epoch's widest one: the peak of a whole epoch, not of its first steps.
    widest = max(batches, key=lambda b: max(lengths[i] for i in b))
    for batch in [batches[r % len(batches)] for r in range(args.warmup + args.steps)] + [widest]:
        one_step(built, [train[i] for i in batch])
    rss_train = own_peak_mb()
    evaluate_seconds(built, data.split("valid"))
    peaks = {"variant": variant.name, "built_mb": rss_built, "train_mb": rss_train, "peak_mb": own_peak_mb()}
    print(MEMORY_TAG + json.dumps(peaks), flush=True)


def child_memory(args, variant: Variant, layers: int, lengths: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-only", variant.name, "--layers", str(layers),
           "--lengths", str(lengths), "--threads", str(args.threads), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--eval-n", str(args.eval_n), "--train-n", str(args.train_n),
           *(["--smoke"] if args.smoke else [])]
    out = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith(MEMORY_TAG)), None)
    if out.returncode or line is None:
        sys.exit(f"memory child for {variant.name!r} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(line[len(MEMORY_TAG):])


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per configuration (after --warmup)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per configuration first")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = OMP_NUM_THREADS, else every core)")
    ap.add_argument("--eval-n", type=int, default=96, help="MELD dev utterances decoded per configuration")
    ap.add_argument("--train-n", type=int, default=0, help="MELD train utterances batched (0 = all)")
    ap.add_argument("--emulated-bf16", action="store_true",
                    help="also time the bf16 configurations on a CPU without native bf16 (very slow)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny LLM, 1 + 2 steps, 160 real rows, 1 thread unless --threads, one memory child: checks "
                         "the script")
    ap.add_argument("--memory-only", choices=[v.name for v in MEMORY_VARIANTS], help=argparse.SUPPRESS)
    ap.add_argument("--layers", type=int, default=0, help=argparse.SUPPRESS)  # the LLM's layers, for the child
    ap.add_argument("--lengths", help=argparse.SUPPRESS)  # a JSON file of the train prompt lengths, for the child
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.warmup, args.eval_n, args.train_n = 2, 1, 8, args.train_n or 160
        args.threads = args.threads or 1  # a check, on cores other jobs share
    if args.steps < 1 or args.warmup < 0 or args.eval_n < 1:
        ap.error("--steps >= 1, --warmup >= 0, --eval-n >= 1")
    import torch

    from egmf.training.trainer import resolve_precision, resolve_threads

    args.threads = resolve_threads(args.threads)
    torch.set_num_threads(args.threads)
    if args.memory_only:
        return memory_only(args)
    native_bf16 = resolve_precision("auto") == "bf16"
    if not (native_bf16 or args.emulated_bf16):
        # Without hardware bf16 a forced bf16 autocast step took 150-200 s here against ~5 s in fp32 (measured
        # on this CPU): the bf16 rows would cost over an hour and measure an emulation the trainer never picks.
        for group in (VARIANTS, MEMORY_VARIANTS):
            group[:] = [v for v in group if v.precision == "fp32"]
        FUSION_PAIRS[:] = [(a, b) for a, b in FUSION_PAIRS if a.precision == "fp32"]
    section = Section("throughput" + ("_smoke" if args.smoke else ""),
                      "Training and evaluation speed on real MELD prompts, switches off and on, peak memory")
    print(f"{args.threads} torch thread(s); {len(VARIANTS)} configurations, {args.warmup} + {args.steps} steps each",
          flush=True)

    data = load_data(args)
    cfg = run_config(args, OFF, layers=0)
    train, dev = data.split("train"), data.split("valid")
    built: dict[str, Built] = {}
    t0 = time.perf_counter()
    built[OFF.name] = build(cfg, OFF, data)
    layers = built[OFF.name].raw.llm.config.num_hidden_layers
    lengths = [built[OFF.name].raw.prompt_length(s) for s in train]  # EGMF's: llm_text batches the same rows
    for v in VARIANTS[1:]:
        built[v.name] = build(run_config(args, v, layers), v, data)
        print(f"built {v.name}", flush=True)
    build_s = time.perf_counter() - t0
    orders = batch_orders(lengths, cfg.train.batch_size, cfg.train.seed, cfg.train.bucket_batches)

    rounds = args.warmup + args.steps
    times: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    for r in range(rounds):
        shift = r % len(VARIANTS)
        for v in VARIANTS[shift:] + VARIANTS[:shift]:
            batches = orders[v.bucketing]
            times[v.name].append(one_step(built[v.name], [train[i] for i in batches[r % len(batches)]]))
        print(f"round {r + 1}/{rounds}{' (warm-up)' if r < args.warmup else ''}: "
              + ", ".join(f"{v.name} {times[v.name][-1]:.2f}s" for v in VARIANTS), flush=True)
    med = {name: statistics.median(ts[args.warmup:]) for name, ts in times.items()}

    evaluated = [v for v in VARIANTS if v.evaluate]
    eval_s: dict[str, float] = {}
    for v in evaluated:  # a short untimed pass first (first-call costs), then the timed one
        evaluate_seconds(built[v.name], dev[: cfg.eval.batch_size])
    for v in evaluated:
        eval_s[v.name] = evaluate_seconds(built[v.name], dev)
        print(f"evaluation {v.name}: {len(dev) / eval_s[v.name]:.2f} samples/s", flush=True)
    rss_all = peak_rss_mb()

    built.clear()  # the children measure alone; nothing of this process trains while they run
    gc.collect()
    memory = {}
    with tempfile.TemporaryDirectory() as tmp:
        lengths_file = Path(tmp) / "lengths.json"
        lengths_file.write_text(json.dumps(lengths), encoding="utf-8")
        for v in MEMORY_VARIANTS[:1] if args.smoke else MEMORY_VARIANTS:
            memory[v.name] = child_memory(args, v, layers, lengths_file)
            print(f"memory {v.name}: {memory[v.name]['peak_mb']:.0f} MiB", flush=True)

    epoch_steps = len(orders[False])  # one epoch of the batched train split (all of MELD train by default)
    width = {b: widths(orders[b], lengths) for b in (False, True)}
    timed_width = {b: widths(timed_batches(orders[b], args), lengths)[0] for b in (False, True)}
    bf16_rows = AUTOCAST_ONLY in VARIANTS
    section.add(
        "## MELD training step (batch 8, real prompts, the trainer's train_step)", "",
        "| configuration | model | shared prefix | bucketing | LoRA layers | precision | step (median s) | samples/s "
        "| speed-up vs all off | MELD epoch (min) | target >= 2.5x | target epoch < 30 min |",
        "|---|---|---|---|---|---|---:|---:|---:|---:|---|---|",
    )
    for v in VARIANTS:
        m = med[v.name]
        target = "- | -"
        if v in (ON, ON_FP32):
            target = f"{verdict(med[OFF.name] / m >= 2.5)} | {verdict(m * epoch_steps / 60 < 30)}"
        section.add(f"| {v.name} | {' | '.join(v.describe(layers))} | {m:.3f} | {8 / m:.2f} | "
                    f"{med[OFF.name] / m:.2f}x | {m * epoch_steps / 60:.1f} | {target} |")
    section.add(
        "",
        f"MELD epoch = {epoch_steps} steps (the batched train split, batch 8) at the median step; the timed "
        "steps are the epoch's first batches (see the widths below). "
        + ("This CPU has native bf16 (avx512_bf16 / amx_bf16)." if native_bf16 else
           "**This CPU has no native bf16 (no avx512_bf16 / amx_bf16 in /proc/cpuinfo)**: the trainer runs fp32 "
           "here (train.mixed_precision auto = no; model.llm.frozen_dtype auto = float32)"
           + (", and the bf16 rows (forced with --emulated-bf16) measure an emulation, as measured."
              if bf16_rows else ", so the frozen-bf16 switch does not apply: its rows are left out (a forced bf16 "
              "autocast step took 150-200 s against ~5 s in fp32 in a first attempt on this CPU; "
              "`--emulated-bf16` runs them anyway)."))
        + (" The frozen-bf16 switch on its own is the step from 'bf16 autocast only' to 'frozen bf16': "
           f"{med[AUTOCAST_ONLY.name] / med[FROZEN_BF16.name]:.2f}x." if bf16_rows else ""),
        "",
        "## Padded prompt width per batch (prompt tokens, pseudo slots included)", "",
        "| batching | mean padded width (epoch) | padding share (epoch) | mean padded width (the timed batches) |",
        "|---|---:|---:|---:|",
        *[f"| {'LengthBucketSampler (bucket_batches 50)' if b else 'EpochShuffle'} | {width[b][0]:.1f} | "
          f"{100 * width[b][1]:.1f}% | {timed_width[b]:.1f} |" for b in (False, True)],
        "",
        f"Prompts of MELD train ({len(lengths)} utterances): mean {statistics.mean(lengths):.1f} tokens, "
        f"max {max(lengths)}.",
        "",
        "## Fusion overhead over the LLM alone (all switches on, the same batches)", "",
        "| precision | llm_text step (median s) | EGMF step (median s) | fusion share of the EGMF step | "
        "target (<= 5%) |", "|---|---:|---:|---:|---|",
    )
    for egmf, alone in FUSION_PAIRS:
        share = 1 - med[alone.name] / med[egmf.name]
        section.add(f"| {egmf.describe(layers)[4]} | {med[alone.name]:.3f} | {med[egmf.name]:.3f} | "
                    f"{100 * share:+.1f}% | {verdict(share <= 0.05)} |")
    section.add(
        "",
        f"The share is 1 - llm_text / EGMF: the fusion (text_source {cfg.model.text_source}), its K=4 pseudo "
        "tokens in the LLM and their gradients.",
        "",
        f"## Evaluation: constrained decoding of {len(dev)} MELD dev utterances (predict_samples)", "",
        "| configuration | samples/s | speed-up vs all off |", "|---|---:|---:|",
        *[f"| {v.name} | {len(dev) / eval_s[v.name]:.2f} | {eval_s[OFF.name] / eval_s[v.name]:.2f}x |"
          for v in evaluated],
        "",
        "The shared prefix and length bucketing do not change inference (decoding always reads the shared prefix "
        "once and predict_samples always sorts by prompt length), so their rows are not repeated here. The "
        "models are those after the timed steps (speed, not quality).",
        "",
        "## Peak resident memory", "",
        "| what | model built | after training | after evaluation | target (< 4 GB) |", "|---|---:|---:|---:|---|",
        *[f"| {name}: alone, in a child process | {m['built_mb']:.0f} MiB | {m['train_mb']:.0f} MiB | "
          f"{m['peak_mb']:.0f} MiB ({m['peak_mb'] / 1024:.2f} GiB) | {verdict(m['peak_mb'] * 2**20 < GiB4)} |"
          for name, m in memory.items()],
        f"| this process: all {len(VARIANTS)} configurations held at once | - | - | {rss_all:.0f} MiB | "
        "(not the target's figure) |",
        "",
        f"Peaks so far at each point: a child's is its own address space's high-water mark (VmHWM: ru_maxrss "
        f"would carry this process's peak into it across the exec); it trains {args.warmup + args.steps} steps "
        "on the same batches, then the epoch's widest batch, and evaluates the same dev utterances. This "
        "process's is its ru_maxrss.",
        "",
    )
    section.write([
        f"data: shared MELD CSVs (`meld` loader), train {len(train)} utterances batched, {len(dev)} dev utterances "
        "(seeded subset) evaluated; text + up to 3 context turns, no audio/video features",
        f"model: configs/meld.yaml (EGMF, text_source {cfg.model.text_source}, K=4, d_model 128, LLM "
        f"{'tiny' if args.smoke else 'SmolLM2-135M'} ({layers} layers), LoRA r=8), batch 8; all off = "
        "share_prefix false, EpochShuffle batches, layers_from 0, frozen_dtype float32 (fp32)",
        f"timing: {len(VARIANTS)} configurations interleaved round robin (order rotating), {args.warmup} warm-up + "
        f"{args.steps} timed steps each, median; {args.threads} torch thread(s); one torch process at a time "
        f"(the memory children run after the timing, one by one); building all {len(VARIANTS)}: {build_s:.0f} s",
    ])


if __name__ == "__main__":
    main()
