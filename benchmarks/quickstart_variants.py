"""The quickstart's own run (generated MELD + MOSEI data, 120 steps) with variants of how the pseudo tokens start.

    nohup .venv/bin/python benchmarks/quickstart_variants.py > /tmp/quickstart_variants.log 2>&1 &
    .venv/bin/python benchmarks/quickstart_variants.py --smoke       (tiny LLM, 2 steps: checks the script)

The quickstart prints one verdict per task (MELD weighted F1 against the majority label, MOSEI MAE against
the mean score). This trains its exact configuration (``egmf.cli.quickstart.quickstart_config``, same data,
seed and steps) once per variant and puts the test metrics, the pseudo slots' final visibility and the
training time side by side, so that a change of how EGMF starts is judged on the quickstart's own budget.
Writes ``benchmarks/results/quickstart_variants.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import Section, llm_budget, outside_repo, reuse_note, train_models  # noqa: E402

VARIANTS = {
    "default": ([], "the defaults: visibility gate at g = -6 (sigmoid 0.0025), the fusion head at 0.5 (since "
                "2026-12-03; tables written before then ran without it)"),
    "no_fusion_head": (["model.fusion_head_weight=0"], "the defaults without the fusion head (gate at -6)"),
    "gate_init_-2": (["model.pseudo_gate_init=-2"], "visibility gate at g = -2 (sigmoid 0.12)"),
    "open": (["model.pseudo_visibility=open"], "no visibility gate: the slots are ordinary tokens"),
    "fusion_head": (["model.fusion_head_weight=0.5"],
                    "a linear head on the fused vector trained on the label, loss weight 0.5 (gate at -6)"),
    "fusion_head_gate_-2": (["model.fusion_head_weight=0.5", "model.pseudo_gate_init=-2"],
                            "the fusion head (0.5) and the visibility gate at g = -2"),
    "score_loss_3": (["model.score_loss_weight=3"],
                     "the defaults plus the expected absolute error over the score grid at weight 3 (MSA)"),
    "score_loss_10": (["model.score_loss_weight=10"],
                      "the defaults plus the expected absolute error over the score grid at weight 10 (MSA)"),
}


def slot_visibility(run_dir: Path, seed: int) -> str:
    """The trained slots' visibility ``sigmoid(g_k)`` read from the best checkpoint ('-' without a gate)."""
    import torch
    from safetensors.torch import load_file

    from egmf.model.egmf import SlotVisibility

    state = load_file(str(run_dir / f"seed_{seed}" / "checkpoints" / "best" / "trainable.safetensors"))
    if "visibility.theta" not in state:
        return "-"
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    g = cfg["model"]["pseudo_gate_init"] + SlotVisibility.RATE * state["visibility.theta"]
    return ", ".join(f"{v:.3f}" for v in torch.sigmoid(g).tolist())


def main() -> None:
    from egmf.cli.quickstart import generate_data, quickstart_config
    from egmf.experiments.ablation import expert_gate_cell
    from egmf.typed_config import to_dict

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=120, help="optimiser steps (the quickstart's default)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--work", type=Path, default=Path("/tmp/egmf_quickstart_variants"), help="outside the repo")
    ap.add_argument("--section", default="quickstart_variants",
                    help="results/<section>.md to write (a new name keeps an earlier table of other variants)")
    ap.add_argument("--smoke", action="store_true", help="tiny LLM, 2 steps: checks the script")
    args = ap.parse_args()
    outside_repo(args.work)
    backend, steps = llm_budget(args.smoke, args.steps)
    tag = f"{args.section}{'_smoke' if args.smoke else ''}"
    section = Section(tag, "The quickstart's run with variants of the pseudo tokens' start (generated data)")
    data_dir = args.work / "data"
    generate_data(data_dir, "tiny" if args.smoke else "small")
    base = to_dict(quickstart_config(data_dir, args.work, "x", steps, 0.0, backend))
    wanted = [v for v in args.variants.split(",") if v]
    results = train_models(base, {v: VARIANTS[v][0] for v in wanted}, args.work / "runs" / tag, [1111])
    rows = []
    for name, t in results.items():
        test = next(iter(t.result.seeds.values())).test
        meld, mosei = test["meld"], test["mosei"]
        rows.append({
            "variant": name, "what": VARIANTS[name][1],
            "MELD w-F1": f"{meld['weighted_f1']:.4f}", "majority": f"{meld['baseline']['weighted_f1']:.4f}",
            "MOSEI MAE": f"{mosei['mae']:.4f}", "mean score": f"{mosei['baseline']['mae']:.4f}",
            "MOSEI Corr": f"{mosei['corr']:.3f}",
            "MOSEI verdict": "beats" if mosei["mae"] < mosei["baseline"]["mae"] else "does not beat",
            "slot visibility after training": slot_visibility(t.result.run_dir, 1111),
            "expert gate (test mean)": expert_gate_cell(t.result),
            "train s": f"{t.result.train_seconds:.0f}",
        })
    from egmf.evaluation.aggregate import to_markdown

    section.add(*to_markdown(pd.DataFrame(rows), labels=2).splitlines())
    section.add("", f"Run folders: `{args.work / 'runs' / tag}`.")
    section.write([
        f"data: the quickstart's generated MELD-format + MOSEI-format data (size {'tiny' if args.smoke else 'small'}, "
        "seed 0), one EGMF model on both",
        f"config: `egmf.cli.quickstart.quickstart_config` ({steps} steps, batch 8, 3 evaluations, seed 1111, LLM "
        f"{backend}) plus each variant's overrides",
        reuse_note(results),
    ])


if __name__ == "__main__":
    main()
