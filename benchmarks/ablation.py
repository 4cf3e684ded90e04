"""EGMF's ablations on real data: MELD dev at a fixed budget, or RAVDESS at convergence (not a test).

    nohup .venv/bin/python benchmarks/ablation.py --steps 100 > /tmp/ablation.log 2>&1 &
    .venv/bin/python benchmarks/ablation.py --only no_local,k1 --steps 100    (a subset; finished runs are reused)
    .venv/bin/python benchmarks/ablation.py --seeds 1111,2222             (adds seed 2222; seed 1111 is reused)
    .venv/bin/python benchmarks/ablation.py --dataset ravdess --converge --full-seeds 1111,2222,3333 --llm-epochs 10
    .venv/bin/python benchmarks/ablation.py --smoke

The variants are ``egmf ablate``'s (``egmf.experiments.ablation.VARIANTS``: each expert removed, the expert-level
gate replaced by its mean, the modality-level gate removed, K, LoRA rank), applied to the EGMF config of
``quality.py``, whose run is the "full" row (reused from ``--work`` when that script ran first: ``quality.py meld``
for MELD, ``quality.py ravdess --converge`` for RAVDESS with the same ``--llm-epochs`` / ``--patience``). MELD here
has text only (no audio/video features in ``../shared``), so the modality-level gate has one modality to weigh and
its ablation is left out there; RAVDESS has text and audio. ``--converge`` trains each variant as quality.py does:
one evaluation per epoch, patience and an epoch cap. ``--full-seeds`` gives the full row more seeds than the
variants: with one seed per variant, the full model's seed range is what a difference is judged against. Each
row shows the expert gate's test mean. Run folders go under ``--work``; two processes with disjoint ``--only``
lists can share the cores, and a last run without ``--only`` reads them all back and writes
``benchmarks/results/ablation_<dataset>[_converged].md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import SHARED, Section, Trained, erc_rows, llm_budget, outside_repo, reuse_note, train_models  # noqa: E402
from quality import MELD_SETUP, RAVDESS_SETUP, base_config, converge_overrides, meld_base_config, steps_per_epoch, stopping_lines, write_meld, write_ravdess  # noqa: E402,E501
from quality import VARIANTS as QUALITY_VARIANTS  # noqa: E402

DEFAULT_VARIANTS = {"meld": "no_local,no_semantic,no_global,no_expert_gate,k1,k16,lora_r4,lora_r16",
                    "ravdess": "no_local,no_semantic,no_global,no_modality_gate,no_expert_gate,k1,k16"}


def main() -> None:
    from egmf.experiments.ablation import VARIANTS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=["meld", "ravdess"], default="meld")
    ap.add_argument("--steps", type=int, default=100, help="optimiser steps per variant (batch 8)")
    ap.add_argument("--only", default=None, help=f"variants (default: {DEFAULT_VARIANTS})")
    ap.add_argument("--work", type=Path, default=Path("/tmp/egmf_bench"), help="data + run folders (outside the repo)")
    ap.add_argument("--meld", type=Path, default=SHARED / "meld")
    ap.add_argument("--ravdess", type=Path, default=Path("/tmp/ravdess_custom"), help="ravdess_anchors.py --out DIR")
    ap.add_argument("--seeds", default="1111", help="comma-separated; finished seeds are reused, new ones trained")
    ap.add_argument("--full-seeds", default=None, help="seeds of the full row (default: --seeds)")
    ap.add_argument("--base-variant", default="egmf", choices=["egmf", *QUALITY_VARIANTS],
                    help="quality.py's row the ablations start from (its run is the full row; e.g. egmf_fusion_head)")
    ap.add_argument("--converge", action="store_true", help="each variant until valid stops improving (as quality.py)")
    ap.add_argument("--llm-epochs", type=int, default=15, help="--converge: epoch cap")
    ap.add_argument("--patience", type=int, default=3, help="--converge: epochs without improvement")
    ap.add_argument("--without-full", action="store_true",
                    help="leave out the full row: for a second process while another trains it (same run folder)")
    ap.add_argument("--tag", default="", help="a second table beside the first (other variants or seeds): writes "
                    "results/ablation_<dataset>[_converged][_<base>]_TAG.md; run folders are shared")
    ap.add_argument("--smoke", action="store_true", help="tiny LLM, 16 train samples, 2 steps: checks the script")
    args = ap.parse_args()
    outside_repo(args.work)
    wanted = [v for v in (args.only or DEFAULT_VARIANTS[args.dataset]).split(",") if v]
    unknown = [v for v in wanted if v not in VARIANTS]
    if unknown:
        sys.exit(f"--only: unknown variant(s) {unknown}; valid: {', '.join(VARIANTS)}")
    backend, steps = llm_budget(args.smoke, args.steps)
    # The run folders of quality.py for the same dataset and budget: its "egmf" run is the full row here.
    tag = f"{args.dataset}{'_converged' if args.converge else ''}{'_smoke' if args.smoke else ''}"
    if args.dataset == "meld":
        base = meld_base_config(write_meld(args.meld, args.work / "data" / "meld"), steps, backend, args.smoke)
        setup = MELD_SETUP + " (the modality gate is not ablated)"
    else:
        base = base_config(write_ravdess(args.ravdess, args.work / "data" / "ravdess"), steps, backend, "dataset",
                           args.smoke)
        setup = RAVDESS_SETUP
    # The same epoch, patience and cap for every row (quality.py's rule for the LLM models).
    budget_args = argparse.Namespace(llm_epochs=args.llm_epochs, patience=args.patience,
                                     baseline_epochs=args.llm_epochs, baseline_patience=args.patience)
    tail = converge_overrides("egmf", budget_args) if args.converge else []
    seeds = [int(s) for s in args.seeds.split(",")]
    full_seeds = [int(s) for s in (args.full_seeds or args.seeds).split(",")]
    on = "" if args.base_variant == "egmf" else f"_{args.base_variant}"
    section = Section(f"ablation_{tag.removesuffix('_smoke')}{on}{'_' + args.tag if args.tag else ''}"
                      f"{'_smoke' if args.smoke else ''}", f"Ablations of EGMF on real data: {args.dataset.upper()}"
                      f"{', each variant trained to convergence' if args.converge else ''}"
                      f"{'' if not on else ', starting from ' + args.base_variant}"
                      f"{' (' + args.tag + ')' if args.tag else ''}")
    full = args.base_variant
    start = list(QUALITY_VARIANTS.get(full, ["model.name=egmf"]))
    results = {}
    if not args.without_full:
        results.update(train_models(base, {full: [*start, *tail]}, args.work / "runs" / tag, full_seeds))
    # Named after the base when it is not plain EGMF, so the two tables' run folders never mix.
    names = {v: v if full == "egmf" else f"{full}-{v}" for v in wanted if v != "full"}
    variants = {names[v]: [*start, *VARIANTS[v], *tail] for v in names}
    results.update(train_models(base, variants, args.work / "runs" / tag, seeds))
    descriptions = {full: f"full model (the quality run{'' if full == 'egmf' else ': ' + ' '.join(start[1:])})",
                    **{names[v]: " ".join(VARIANTS[v]) for v in names}}
    dataset = next(iter(results.values())).result.datasets[0]
    section.add(*erc_rows(results, dataset, descriptions))
    from egmf.experiments.ablation import expert_gate_cell

    section.add("", "Expert gate, test mean (local / semantic / global; '-' where the variant has no such gate):", "")
    section.add(*[f"- {name}: {expert_gate_cell(t.result, dataset)}" for name, t in results.items()])
    if args.converge:
        section.add(*stopping_lines(results, steps_per_epoch(base), budget_args))
    several = len(seeds) > 1
    spread = (
        f"Mean ± population standard deviation over {len(seeds)} seeds (training order, fusion and LoRA "
        "initialisation); a difference smaller than the spread is not evidence either way." if several else
        f"One seed per variant ({seeds[0]})" + (f"; the full model has {len(full_seeds)} seeds, and each variant is "
        "judged against their range below." if len(full_seeds) > 1 else
        ": the seed-to-seed spread was not measured, so differences of a few hundredths are not evidence either way.")
    )
    section.add("", f"Run folders (configs, checkpoints, predictions): `{args.work / 'runs' / tag}`.", spread)
    metric = "weighted_f1" if args.dataset == "meld" else "accuracy"
    if full in results and several:
        section.add("", *paired_by_seed(results, dataset, metric, full))
    elif full in results and len(full_seeds) > 1:
        section.add("", *against_full_range(results, dataset, metric, full))
    section.add(*selection_check(results, dataset, metric))
    budget = (f"each variant until valid stops improving: one evaluation per epoch, patience {args.patience} epochs, "
              f"cap {args.llm_epochs} epochs, the best valid epoch scored on test" if args.converge else
              f"{steps} optimiser steps at batch 8 per variant, checkpoint chosen on valid every "
              f"{max(1, steps // 3)} steps")
    section.write([
        f"data: {setup}",
        f"budget: {budget}; seeds {args.seeds} (full row {','.join(map(str, full_seeds))}); LLM {backend}"
        f" (autocast {base['model']['llm']['autocast']}), LoRA r=8, K=4 unless the variant says otherwise",
        f"metrics: scikit-learn weighted F1 / macro F1 / accuracy (fractions) on the {args.dataset} test split named above",
        reuse_note(results),
    ])


def against_full_range(results: dict[str, Trained], dataset: str, metric: str, base: str = "egmf") -> list[str]:
    """Each one-seed variant against the full model's range over its seeds."""
    full = [m[metric] for m in results[base].result.scores_by_seed(dataset).values()]
    lo, hi = min(full), max(full)
    lines = [f"Each variant against the full model's {metric.replace('_', ' ')} over its {len(full)} seeds "
             f"({', '.join(f'{x:.4f}' for x in full)}; range {lo:.4f}-{hi:.4f}):", ""]
    for name, t in results.items():
        if name == base:
            continue
        for seed, m in t.result.scores_by_seed(dataset).items():
            v = m[metric]
            verdict = ("below the full model's range: removing it costs more than the seed spread" if v < lo else
                       "above the full model's range" if v > hi else "within the full model's range: not evidence")
            lines.append(f"- {name} (seed {seed}): {v:.4f}, {v - sum(full) / len(full):+.4f} against the mean ({verdict})")
    return lines


def selection_check(results: dict[str, Trained], dataset: str, metric: str) -> list[str]:
    """Whether the valid score that chose each run's checkpoint ranks the runs as their test score does: where it
    does not, differences between rows partly measure which run the valid split happened to favour."""
    from scipy.stats import spearmanr

    pairs = [(r.valid[dataset][metric], r.test[dataset][metric]) for t in results.values()
             for r in t.result.seeds.values() if metric in r.valid.get(dataset, {}) and metric in r.test.get(dataset, {})]
    valid, test = zip(*pairs) if pairs else ((), ())
    name = metric.replace("_", " ")
    if len(pairs) < 4 or len(set(valid)) < 2 or len(set(test)) < 2:
        return ["", f"Selection check: not measured (fewer than 4 runs, or every run has the same valid or test {name})."]
    rho = spearmanr(valid, test).statistic
    return ["", f"Selection check: over the {len(pairs)} runs above, the Spearman rank correlation of the best valid "
            f"{name} (the score that chose each checkpoint) with the test {name} is {rho:+.2f}"
            + ("; the valid split does not rank the runs as the test split does." if rho < 0.3 else ".")]


def paired_by_seed(results: dict[str, Trained], dataset: str, metric: str, base: str = "egmf") -> list[str]:
    """Each variant against the full model seed by seed (same seed: same data order and initialisation)."""
    full = {seed: m[metric] for seed, m in results[base].result.scores_by_seed(dataset).items()}
    lines = [f"Seed by seed against the full model ({metric.replace('_', ' ')}, variant minus full):", ""]
    for name, t in results.items():
        if name == base:
            continue
        mine = t.result.scores_by_seed(dataset)
        diffs = [mine[seed][metric] - full[seed] for seed in full if seed in mine]
        verdict = ("below on every seed" if all(d < 0 for d in diffs) else
                   "above on every seed" if all(d > 0 for d in diffs) else "changes sign between seeds")
        lines.append(f"- {name}: {', '.join(f'{d:+.4f}' for d in diffs)} ({verdict})")
    return lines


if __name__ == "__main__":
    main()
