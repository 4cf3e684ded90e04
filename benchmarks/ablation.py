"""EGMF's ablations on real data: MELD dev, the same data, budget and trainer as ``quality.py meld`` (not a test).

    nohup .venv/bin/python benchmarks/ablation.py --steps 100 > /tmp/ablation.log 2>&1 &
    .venv/bin/python benchmarks/ablation.py --only no_local,k1 --steps 100    (a subset; finished runs are reused)
    .venv/bin/python benchmarks/ablation.py --seeds 1111,2222             (adds seed 2222; seed 1111 is reused)
    .venv/bin/python benchmarks/ablation.py --smoke

The variants are ``egmf ablate``'s (``egmf.experiments.ablation.VARIANTS``: each expert removed, the expert-level
gate replaced by its mean, K, LoRA rank), applied to the EGMF config of ``quality.py meld``, whose run is the "full" row
(reused from ``--work`` when that script ran first). MELD here has text only (no audio/video features in
``../shared``), so the modality-level gate has one modality to weigh and its ablation is left out. Run
folders go under ``--work``; two processes with disjoint ``--only`` lists can share the cores, and a last run
without ``--only`` reads them all back and writes ``benchmarks/results/ablation_meld.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import SHARED, Section, Trained, erc_rows, llm_budget, outside_repo, reuse_note, train_models  # noqa: E402
from quality import MELD_SETUP, base_config, write_meld  # noqa: E402

DEFAULT_VARIANTS = "no_local,no_semantic,no_global,no_expert_gate,k1,k16,lora_r4,lora_r16"


def main() -> None:
    from egmf.experiments.ablation import VARIANTS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=100, help="optimiser steps per variant (batch 8)")
    ap.add_argument("--only", default=DEFAULT_VARIANTS, help=f"variants (default {DEFAULT_VARIANTS})")
    ap.add_argument("--work", type=Path, default=Path("/tmp/egmf_bench"), help="data + run folders (outside the repo)")
    ap.add_argument("--meld", type=Path, default=SHARED / "meld")
    ap.add_argument("--seeds", default="1111", help="comma-separated; finished seeds are reused, new ones trained")
    ap.add_argument("--without-full", action="store_true",
                    help="leave out the full row: for a second process while another trains it (same run folder)")
    ap.add_argument("--smoke", action="store_true", help="tiny LLM, 16 train samples, 2 steps: checks the script")
    args = ap.parse_args()
    outside_repo(args.work)
    wanted = [v for v in args.only.split(",") if v]
    unknown = [v for v in wanted if v not in VARIANTS]
    if unknown:
        sys.exit(f"--only: unknown variant(s) {unknown}; valid: {', '.join(VARIANTS)}")
    backend, steps = llm_budget(args.smoke, args.steps)
    tag = "meld_smoke" if args.smoke else "meld"
    path = write_meld(args.meld, args.work / "data" / "meld")
    base = base_config(path, steps, backend, "llm", args.smoke)
    # "egmf" is quality.py's run of the same config: the full model, trained once for both scripts.
    full = {} if args.without_full else {"egmf": ["model.name=egmf"]}
    models = {**full, **{v: ["model.name=egmf", *VARIANTS[v]] for v in wanted if v != "full"}}
    seeds = [int(s) for s in args.seeds.split(",")]
    section = Section(f"ablation_{tag}", "Ablations of EGMF on real data: MELD")
    results = train_models(base, models, args.work / "runs" / tag, seeds)
    descriptions = {"egmf": "full EGMF (the quality run)", **{v: " ".join(VARIANTS[v]) for v in wanted}}
    dataset = next(iter(results.values())).result.datasets[0]
    section.add(*erc_rows(results, dataset, descriptions))
    spread = (
        "One seed per variant: the seed-to-seed spread at this budget was not measured, so differences of "
        "a few hundredths are not evidence either way." if len(seeds) == 1 else
        f"Mean ± population standard deviation over {len(seeds)} seeds (training order, fusion and LoRA initialisation); a "
        "difference smaller than the spread is not evidence either way."
    )
    section.add("", f"Run folders (configs, checkpoints, predictions): `{args.work / 'runs' / tag}`.", spread)
    if len(seeds) > 1 and "egmf" in results:
        section.add("", *paired_by_seed(results, dataset, "weighted_f1"))
    section.write([
        f"data: {MELD_SETUP} (the modality gate is not ablated)",
        f"budget: {steps} optimiser steps at batch 8 per variant, checkpoint chosen on valid every "
        f"{max(1, steps // 3)} steps; seeds {args.seeds}; LLM {backend}"
        f"{' (bf16 autocast)' if backend != 'tiny' else ''}, LoRA r=8, K=4 unless the variant says otherwise",
        "metrics: scikit-learn weighted F1 / macro F1 / accuracy (fractions) on MELD dev",
        reuse_note(results),
    ])


def paired_by_seed(results: dict[str, Trained], dataset: str, metric: str) -> list[str]:
    """Each variant against the full model seed by seed (same seed: same data order and initialisation)."""
    full = {seed: m[metric] for seed, m in results["egmf"].result.scores_by_seed(dataset).items()}
    lines = [f"Seed by seed against the full model ({metric.replace('_', ' ')}, variant minus full):", ""]
    for name, t in results.items():
        if name == "egmf":
            continue
        mine = t.result.scores_by_seed(dataset)
        diffs = [mine[seed][metric] - full[seed] for seed in full if seed in mine]
        verdict = ("below on every seed" if all(d < 0 for d in diffs) else
                   "above on every seed" if all(d > 0 for d in diffs) else "changes sign between seeds")
        lines.append(f"- {name}: {', '.join(f'{d:+.4f}' for d in diffs)} ({verdict})")
    return lines


if __name__ == "__main__":
    main()
