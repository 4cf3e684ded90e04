"""LoRA on every layer against LoRA on the upper layers only, at equal steps on real MELD (not a test).

    nohup .venv/bin/python benchmarks/lora_placement.py --steps 200 > /tmp/lora_placement.log 2>&1 &
    .venv/bin/python benchmarks/lora_placement.py --smoke        (tiny LLM, a few samples: checks the script)

Issue 11 made ``model.lora.layers_from`` an option (LoRA on decoder layers >= N, the lower layers read the
prompt without gradients); it becomes the default only if its quality holds against all-layer LoRA. Both
EGMF models train here with the same data, seed, steps and current defaults (``text_source: auto``, shared
prefix, length bucketing), on the split ``quality.py meld`` uses: MELD train minus held-out train dialogues,
checkpoint chosen on those, scored once on MELD dev. The table gives dev weighted F1 and each run's training
time side by side. Equal steps is a fixed budget, not convergence: it says whether the cheaper placement
keeps up over the same number of updates. Writes ``benchmarks/results/lora_placement.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import SHARED, Section, erc_rows, llm_budget, outside_repo, reuse_note, train_models  # noqa: E402
from quality import MELD_SETUP, base_config, write_meld  # noqa: E402

SMOLLM2_LAYERS = 30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200, help="optimiser steps per model (batch 8)")
    ap.add_argument("--layers-from", type=int, default=SMOLLM2_LAYERS // 2, help="first LoRA layer of the upper-only run")
    ap.add_argument("--work", type=Path, default=Path("/tmp/egmf_bench"), help="data + run folders (outside the repo)")
    ap.add_argument("--meld", type=Path, default=SHARED / "meld")
    ap.add_argument("--seeds", default="1111")
    ap.add_argument("--smoke", action="store_true", help="tiny LLM, 16 train samples, 2 steps: checks the script")
    args = ap.parse_args()
    outside_repo(args.work)
    backend, steps = llm_budget(args.smoke, args.steps)
    layers_from = 1 if args.smoke else args.layers_from  # the tiny LLM has 2 layers
    tag = f"lora_placement{'_smoke' if args.smoke else ''}"
    section = Section(tag, "LoRA placement: every layer against the upper layers only (MELD, equal steps)")
    path = write_meld(args.meld, args.work / "data" / "meld")
    base = base_config(path, steps, backend, "auto", args.smoke)
    models = {
        "lora_all_layers": ["model.name=egmf", "model.lora.layers_from=0"],
        f"lora_layers_{layers_from}_up": ["model.name=egmf", f"model.lora.layers_from={layers_from}"],
    }
    descriptions = {
        "lora_all_layers": "EGMF, LoRA on every decoder layer (today's default)",
        f"lora_layers_{layers_from}_up": f"EGMF, LoRA on layers >= {layers_from}; lower layers without gradients",
    }
    seeds = [int(s) for s in args.seeds.split(",")]
    results = train_models(base, models, args.work / "runs" / tag, seeds)
    dataset = next(iter(results.values())).result.datasets[0]
    section.add(*erc_rows(results, dataset, descriptions, majority=True))
    section.add("", "`train s` is each run's training time (evaluations included), measured one run after the "
                "other in this process: a ratio of two runs, not a side-by-side step timing (see throughput.md).",
                "", f"Run folders: `{args.work / 'runs' / tag}`.")
    section.write([
        f"data: {MELD_SETUP}",
        f"budget: {steps} optimiser steps at batch 8 per model, checkpoint chosen on valid every "
        f"{max(1, steps // 3)} steps (a fixed budget, not convergence); seeds {args.seeds}; LLM {backend}; "
        "model: EGMF with the config defaults (text_source auto, shared prefix, length bucketing), LoRA r=8, K=4",
        reuse_note(results),
    ])


if __name__ == "__main__":
    main()
