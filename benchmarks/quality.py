"""Quality on the real shared data: EGMF and every baseline through the one trainer (not a test).

    nohup .venv/bin/python benchmarks/quality.py meld --steps 300 > /tmp/quality_meld.log 2>&1 &
    nohup .venv/bin/python benchmarks/quality.py ravdess --steps 240 > /tmp/quality_ravdess.log 2>&1 &
    nohup .venv/bin/python benchmarks/quality.py ravdess --converge --seeds 1111,2222,3333 \
        --llm-seeds 1111 > /tmp/quality_ravdess.log 2>&1 &                (each model until valid stops improving)
    .venv/bin/python benchmarks/quality.py meld --smoke        (tiny LLM, a few samples: checks the script)

meld: the official MELD train and dev CSVs in ``../shared/data/meld`` (no test CSV there). Models train on
MELD train minus held-out train dialogues, select their checkpoint on those held-out dialogues (never on
dev), and are scored once on dev (1,109 utterances). The held-out dialogues: as many whole train dialogues as
dev has (114), the seeded draw whose label distribution is closest to dev's (``meld_heldout``; its label
distribution against dev's is in ``results/heldout_meld.md``, written by ``benchmarks/baseline_rates.py``). Text + dialogue context only (no audio/video here):
the LLM models read the utterance in the prompt; EGMF's fusion, late_fusion and mult read a MiniLM sentence
vector of it (the text source ``configs/meld.yaml`` ships, ``auto``). A budget of ``--steps`` optimiser steps at batch 8 for every model.

ravdess: the custom-format dataset ``benchmarks/ravdess_anchors.py --out DIR`` writes (Whisper tiny.en
frames as audio, MiniLM token vectors of the statement as text). Speaker-independent: train actors 01-05,
select on actor 06, test on actors 07-08 (the anchors' test actors). The text carries no emotion.

The datasets are rewritten as custom-format folders under ``--work`` (outside the repository; features are
symlinked, never copied into the project). Finished runs are reused, so an interrupted sweep continues.
Two budgets. ``--steps N`` (default): every model takes N optimiser steps, the checkpoint chosen on valid
three times; a figure that says how fast a model starts. ``--converge``: every model trains until its valid
score stops improving, evaluated once per epoch, stopped after ``--patience`` (LLM models) or
``--baseline-patience`` (late_fusion, mult) epochs without improvement, or at a cap of ``--llm-epochs`` /
``--baseline-epochs`` epochs; the table says per model at which epoch it was best and whether it stopped or
hit the cap. The LLM models may take fewer seeds (``--llm-seeds``) than the baselines (``--seeds``).

Writes ``benchmarks/results/quality_<dataset>.md`` (``quality_<dataset>_converged.md`` with ``--converge``; ``_TAG`` appended with ``--tag``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import REPO, SHARED, Section, erc_rows, llm_autocast, llm_budget, outside_repo, reuse_note, train_models  # noqa: E402

DESCRIPTIONS = {
    "egmf": "EGMF: experts + hierarchical gates -> pseudo tokens -> SmolLM2 + LoRA (defaults: fusion head 0.5)",
    "egmf_mean_gate": "EGMF with both gating levels replaced by a uniform mean",
    "llm_text": "SmolLM2 + LoRA on the prompt alone (no fusion)",
    "late_fusion": "late-fusion MLP (no LLM)",
    "mult": "MulT-style cross-modal transformer (no LLM; streams mean-pooled by default since 2026-12-06, last state before)",
    "egmf_fusion_head": "EGMF with model.fusion_head_weight=0.5 (a label head on the fused vector)",
    "egmf_no_head": "EGMF with model.fusion_head_weight=0 (no fusion head: the default before 2026-12-03)",
    "mult_mean_pool": "MulT with model.baseline.pooling=mean (each stream's masked mean, not its last state)",
    "mult_last_state": "MulT with model.baseline.pooling=last (each stream's last state, as the MulT paper)",
    "egmf_sqrt_weights": "EGMF with model.class_weighting=sqrt (ERC loss weights ~ 1/sqrt(train label count))",
    "llm_text_sqrt_weights": "SmolLM2 + LoRA on the prompt alone, model.class_weighting=sqrt",
    "egmf_no_weights": "EGMF with model.class_weighting=none (MELD's egmf row before 2026-12-07)",
    "llm_text_no_weights": "SmolLM2 + LoRA on the prompt alone, model.class_weighting=none (MELD's before 2026-12-07)",
    "late_fusion_no_weights": "late-fusion MLP (no LLM), model.class_weighting=none (every baseline before 2026-12-07)",
    "mult_no_weights": "MulT-style cross-modal transformer (no LLM), model.class_weighting=none (as before 2026-12-07)",
    "egmf_mean_gate_sqrt_weights": "EGMF with uniform-mean gates, model.class_weighting=sqrt",
    "egmf_speaker_norm": "EGMF with data.speaker_normalization=true (each speaker's audio standardised by its own stats)",
    "late_fusion_speaker_norm": "late-fusion MLP (no LLM), data.speaker_normalization=true",
    "mult_speaker_norm": "MulT-style cross-modal transformer (no LLM), data.speaker_normalization=true",
    "egmf_mean_gate_speaker_norm": "EGMF with uniform-mean gates, data.speaker_normalization=true",
}
# Rows that are a registered model with settings changed: name -> the overrides that make it. The fusion head is
# EGMF's default since 2026-12-03; egmf_fusion_head names it explicitly (its run folders predate that), and run
# folders of "egmf" made before then hold fusion_head_weight 0 (a rerun of "egmf" there is refused: delete them).
VARIANTS = {"egmf_fusion_head": ["model.name=egmf", "model.fusion_head_weight=0.5"],
            "egmf_no_head": ["model.name=egmf", "model.fusion_head_weight=0"],
            "mult_mean_pool": ["model.name=mult", "model.baseline.pooling=mean"],
            "mult_last_state": ["model.name=mult", "model.baseline.pooling=last"],
            "egmf_sqrt_weights": ["model.name=egmf", "model.class_weighting=sqrt"],
            "llm_text_sqrt_weights": ["model.name=llm_text", "model.class_weighting=sqrt"],
            "egmf_mean_gate_sqrt_weights": ["model.name=egmf_mean_gate", "model.class_weighting=sqrt"],
            "egmf_no_weights": ["model.name=egmf", "model.class_weighting=none"],
            "llm_text_no_weights": ["model.name=llm_text", "model.class_weighting=none"],
            "late_fusion_no_weights": ["model.name=late_fusion", "model.class_weighting=none"],
            "mult_no_weights": ["model.name=mult", "model.class_weighting=none"],
            "egmf_speaker_norm": ["model.name=egmf", "data.speaker_normalization=true"],
            "late_fusion_speaker_norm": ["model.name=late_fusion", "data.speaker_normalization=true"],
            "mult_speaker_norm": ["model.name=mult", "data.speaker_normalization=true"],
            "egmf_mean_gate_speaker_norm": ["model.name=egmf_mean_gate", "data.speaker_normalization=true"]}


MELD_SETUP = ("MELD train minus held-out train dialogues (checkpoint selection: as many whole dialogues as dev has, "
              "label distribution drawn close to dev's, see `heldout_meld.md`), scored once on MELD dev; "
              "text + up to 3 context turns; no audio/video features")


def meld_heldout(train, dev, n_dialogues: int | None = None, seed: int = 0):
    """The held-out selection dialogues of MELD train: ``egmf.data.heldout.draw_dialogues`` over whole train
    dialogues, as many as dev has (``n_dialogues`` None), label distribution closest to dev's (only dev's label
    counts are read, never a prediction on dev). Returns the ``DrawnDialogues``."""
    from egmf.data.heldout import draw_dialogues, label_distribution

    by_dialogue: dict[str, list[str]] = {}
    for s in train:
        by_dialogue.setdefault(dialogue_of(s), []).append(str(s.label))
    n = n_dialogues or len({dialogue_of(s) for s in dev})
    return draw_dialogues(by_dialogue, n, label_distribution([str(s.label) for s in dev]), seed=seed)


def dialogue_of(sample) -> str:
    """``train/dia12_utt3`` -> ``dia12``: the dialogue of a MELD loader sample."""
    return sample.id.split("/")[1].split("_")[0]


def write_meld(src: Path, out: Path, n_dialogues: int | None = None, seed: int = 0, label: str = "emotion",
               name: str = "meld") -> Path:
    """MELD train/dev as a custom-format folder: train minus the held-out dialogues (:func:`meld_heldout`),
    valid = those, test = dev; ``label="sentiment"`` writes the three sentiments instead of the seven emotions."""
    from egmf.data.registry import load_dataset
    from egmf.data.schema import MELD_EMOTIONS, MELD_SENTIMENTS

    data = load_dataset("meld", src, splits=("train", "valid"), features=None, label=label)
    train, dev = data.splits["train"], data.splits["valid"]
    held = set(meld_heldout(train, dev, n_dialogues, seed).dialogues)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "data.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label", "split", "speaker", "dialogue"])
        for s in train + dev:
            split_name, utt = s.id.split("/")
            dia = utt.split("_")[0]
            split = "test" if split_name == "valid" else ("valid" if dia in held else "train")
            w.writerow([f"{split_name}_{utt}", s.text, s.label, split, s.speaker or "", f"{split_name}_{dia}"])
    words = MELD_SENTIMENTS if label == "sentiment" else MELD_EMOTIONS
    spec = {"name": name, "task": "erc", "lang": "en", "labels": list(words), "metric_family": "erc"}
    (out / "dataset.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return out


def write_ravdess(src: Path, out: Path, valid_actor: str = "actor06") -> Path:
    """The extracted RAVDESS custom dataset with ``valid_actor`` moved from train to valid."""
    if not (src / "data.csv").is_file():
        sys.exit(f"{src}: no data.csv; run benchmarks/ravdess_anchors.py --out {src} first")
    out.mkdir(parents=True, exist_ok=True)
    with (src / "data.csv").open(encoding="utf-8") as f, (out / "data.csv").open("w", encoding="utf-8", newline="") as g:
        rows = list(csv.DictReader(f))
        w = csv.DictWriter(g, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            if r["split"] == "train" and r.get("speaker") == valid_actor:
                r["split"] = "valid"
            w.writerow(r)
    (out / "dataset.yaml").write_text((src / "dataset.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    link = out / "features"
    if not link.exists():
        link.symlink_to((src / "features").resolve(), target_is_directory=True)
    return out


def meld_base_config(path: Path, steps: int, backend: str, smoke: bool) -> dict:
    """``base_config`` for MELD with the text source, LoRA layers and class weighting that ``configs/meld.yaml``
    sets (read from it, so the benchmark follows the shipped config): a MiniLM sentence vector for the fusion, LoRA
    on the upper layers, sqrt class weights (since 2026-12-07; the ``*_no_weights`` rows reproduce earlier ones)."""
    shipped = yaml.safe_load((REPO / "configs" / "meld.yaml").read_text(encoding="utf-8"))["model"]
    cfg = base_config(path, steps, backend, shipped["text_source"], smoke)
    cfg["model"]["class_weighting"] = shipped.get("class_weighting", "none")
    cfg["model"]["lora"]["layers_from"] = 1 if smoke else shipped["lora"]["layers_from"]  # --smoke's LLM: 2 layers
    return cfg


def base_config(path: Path, steps: int, backend: str, text_source: str, smoke: bool) -> dict:
    cfg = {
        "name": "x", "output_dir": "x",
        "data": {"datasets": [{"name": "custom", "path": str(path)}]},
        "model": {
            "name": "egmf", "text_source": text_source,
            "llm": {"backend": backend, "autocast": llm_autocast(backend)},
            "fusion": {"d_model": 128, "num_pseudo_tokens": 4},
            "lora": {"r": 8, "alpha": 16},
            "prompt": {"include_context": True, "max_context_turns": 3, "max_prompt_tokens": 256},
            "baseline": {"hidden": 128, "layers": 2},
        },
        "train": {"epochs": 100, "max_steps": steps, "batch_size": 8, "eval_every": max(1, steps // 3),
                  "patience": 0, "save_every": 50, "log_every": 10},  # rates: each model's own defaults
        "eval": {"batch_size": 16, "plots": False},
    }
    if smoke:
        cfg["data"]["limit"] = {"train": 16, "valid": 8, "test": 8}
        cfg["model"]["fusion"] = {"d_model": 16, "n_heads": 2, "num_pseudo_tokens": 2}
        cfg["model"]["prompt"]["max_prompt_tokens"] = 768  # the tiny LLM's tokenizer is byte-level
    return cfg


LLM_MODELS = ("egmf", "llm_text", "egmf_mean_gate")
# A variant is an LLM model when the model it changes is one (its own seeds, epoch cap and patience).
LLM_MODELS += tuple(v for v, o in VARIANTS.items() if o[0].removeprefix("model.name=") in LLM_MODELS)


RAVDESS_SETUP = ("RAVDESS speech, train actors 01-05, select on actor 06, test actors 07-08 (speaker-independent); "
                 "audio = Whisper tiny.en encoder frames, text = MiniLM token vectors of the statement")


def converge_overrides(model: str, args) -> list[str]:
    """Train ``model`` until valid stops improving: one evaluation per epoch, patience in epochs, an epoch cap."""
    llm = model in LLM_MODELS
    epochs, patience = (args.llm_epochs, args.patience) if llm else (args.baseline_epochs, args.baseline_patience)
    return ["train.max_steps=0", f"train.epochs={epochs}", "train.eval_every=0", "train.num_evals=0",
            f"train.patience={patience}", "train.save_every=100000"]


def labels_only(base: dict):
    """``base``'s data with its labels and no features made (``text_source none``: no sentence vectors)."""
    from egmf.config import config_from_dict
    from egmf.training.data import load_training_data

    return load_training_data(config_from_dict({**base, "name": "x"}).data, "none")


def steps_per_epoch(base: dict, data) -> int:
    """Optimiser steps per epoch of ``base``'s train split (``data``, :func:`labels_only`), for the stopping
    table's epochs."""
    return -(-len(data.splits["train"]) // base["train"]["batch_size"])


def stopping_lines(results, steps_per_epoch: int, args) -> list[str]:
    """Per model and seed: the epoch of the best valid score, the epochs trained, stopped early or capped."""
    lines = ["", "| model | seed | best epoch | epochs trained | why it stopped | valid w-F1 | valid Acc |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for name, t in results.items():
        cap = args.llm_epochs if name in LLM_MODELS else args.baseline_epochs
        for seed, r in t.result.seeds.items():
            tr = r.training
            best, steps = int(tr.get("best_step", -1)), int(tr.get("steps", 0))
            trained = steps / steps_per_epoch
            why = "hit the epoch cap" if steps >= cap * steps_per_epoch else "valid stopped improving (patience)"
            valid = next(iter(r.valid.values()), {})  # the best checkpoint's valid scores (what selected it)
            cells = " | ".join(f"{valid[k]:.4f}" if k in valid else "-" for k in ("weighted_f1", "accuracy"))
            lines.append(f"| {name} | {seed} | {best / steps_per_epoch:.0f} | {trained:.0f} | {why} | {cells} |")
    return lines


def logit_adjust_lines(results, data) -> list[str]:
    """Post-hoc logit adjustment of every finished seed (``egmf.evaluation.logit_adjustment``, the same as ``egmf
    logit-adjust``) over ``data`` (:func:`labels_only`): tau chosen on valid, test scored with it. Kept in
    ``<seed>/evaluations/logit_adjusted`` and read back from there on a later call."""
    import json

    from egmf.evaluation.logit_adjustment import adjust_run_predictions

    (dataset,) = data.infos
    lines = ["", "Post-hoc logit adjustment (Menon et al. 2021; `egmf logit-adjust --run <seed folder>`): answers "
             "re-chosen as argmax log p(y|x) - tau log pi(y), pi the train split's label frequencies, tau in "
             "0, 0.05, ..., 1.5 chosen on valid weighted F1 (0 keeps the model's answers); test never read to choose.",
             "", "| model | seed | tau | valid w-F1 as trained -> adjusted | test w-F1 as trained -> adjusted | "
             "test macro-F1 as trained -> adjusted | test Acc as trained -> adjusted |", "|---|---:|---:|---|---|---|---|"]
    for name, t in results.items():
        for seed in t.result.seeds:
            folder = t.result.run_dir / f"seed_{seed}"
            out = folder / "evaluations" / "logit_adjusted"
            record = (json.loads((out / "metrics.json").read_text(encoding="utf-8")) if (out / "metrics.json").is_file()
                      else adjust_run_predictions(folder, data.infos, data.splits, out))
            before, after = record["as_trained"], record
            cells = [f"{before[sp][dataset][k]:.4f} -> {after[sp][dataset][k]:.4f}" for sp, k in
                     (("valid", "weighted_f1"), ("test", "weighted_f1"), ("test", "macro_f1"), ("test", "accuracy"))]
            lines.append(f"| {name} | {seed} | {record['logit_adjustment'][dataset]['tau']} | {' | '.join(cells)} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", choices=["meld", "ravdess"])
    ap.add_argument("--steps", type=int, default=300, help="optimiser steps per model (batch 8)")
    ap.add_argument("--models", default="egmf,llm_text,egmf_mean_gate,late_fusion,mult")
    ap.add_argument("--work", type=Path, default=Path("/tmp/egmf_bench"), help="data + run folders (outside the repo)")
    ap.add_argument("--meld", type=Path, default=SHARED / "meld")
    ap.add_argument("--ravdess", type=Path, default=Path("/tmp/ravdess_custom"), help="ravdess_anchors.py --out DIR")
    ap.add_argument("--seeds", default="1111")
    ap.add_argument("--converge", action="store_true", help="each model until valid stops improving (see above)")
    ap.add_argument("--llm-seeds", default=None, help="--converge: seeds of the LLM models (default: --seeds)")
    ap.add_argument("--llm-epochs", type=int, default=15, help="--converge: epoch cap of the LLM models")
    ap.add_argument("--patience", type=int, default=3, help="--converge: LLM models' epochs without improvement")
    ap.add_argument("--baseline-epochs", type=int, default=150, help="--converge: epoch cap of late_fusion / mult")
    ap.add_argument("--baseline-patience", type=int, default=15, help="--converge: their epochs without improvement")
    ap.add_argument("--logit-adjust", action="store_true", help="add a table of each finished seed with post-hoc "
                    "logit adjustment, tau chosen on valid (egmf logit-adjust)")
    ap.add_argument("--smoke", action="store_true", help="tiny LLM, 16 train samples, 2 steps: checks the script")
    ap.add_argument("--tag", default="", help="write results/quality_<dataset>[_converged]_TAG.md (a subset of models "
                    "or more seeds beside the main table); the run folders are shared, so finished seeds are reused")
    args = ap.parse_args()
    outside_repo(args.work)
    backend, steps = llm_budget(args.smoke, args.steps)
    tag = f"{args.dataset}{'_converged' if args.converge else ''}{'_smoke' if args.smoke else ''}"
    title = f"Quality on real data: {args.dataset.upper()}{', each model trained to convergence' if args.converge else ''}"
    section = Section(f"quality_{tag}{'_' + args.tag if args.tag else ''}", title)
    if args.dataset == "meld":
        base = meld_base_config(write_meld(args.meld, args.work / "data" / "meld"), steps, backend, args.smoke)
        note = MELD_SETUP
    else:
        path = write_ravdess(args.ravdess, args.work / "data" / "ravdess")
        base = base_config(path, steps, backend, "dataset", args.smoke)
        note = RAVDESS_SETUP
    wanted = [m for m in args.models.split(",") if m]
    overrides = {m: list(VARIANTS.get(m, [f"model.name={m}"])) for m in wanted}
    seeds = [int(s) for s in args.seeds.split(",")]
    llm_seeds = [int(s) for s in (args.llm_seeds or args.seeds).split(",")]
    data = labels_only(base) if args.converge or args.logit_adjust else None  # loaded once, read after every model
    per_epoch = steps_per_epoch(base, data) if args.converge else None
    if args.converge:
        budget = (f"until valid stops improving: one evaluation per epoch, patience {args.patience} epochs / cap "
                  f"{args.llm_epochs} epochs (LLM models, seeds {','.join(map(str, llm_seeds))}), patience "
                  f"{args.baseline_patience} / cap {args.baseline_epochs} (late_fusion, mult, seeds {args.seeds}); the "
                  "checkpoint of the best valid epoch is scored on test; each model's own rates and schedule "
                  "(cosine over the cap)")
    else:
        budget = (f"{steps} optimiser steps at batch 8 per model (``train.max_steps``), checkpoint chosen on valid "
                  f"every {max(1, steps // 3)} steps; seeds {args.seeds}")
    results = {}

    def write() -> None:
        """The section as it stands: written after every model, so a stopped sweep leaves what it measured."""
        dataset = next(iter(results.values())).result.datasets[0]
        section.lines = list(erc_rows(results, dataset, DESCRIPTIONS, majority=True))
        if per_epoch is not None:
            section.add(*stopping_lines(results, per_epoch, args))
        if args.logit_adjust:
            section.add(*logit_adjust_lines(results, data))
        left = [m for m in wanted if m not in results]
        if left:
            section.add("", f"Not trained yet (the sweep was stopped or is running): {', '.join(left)}.")
        section.add("", f"Run folders (configs, checkpoints, predictions): `{args.work / 'runs' / tag}`.")
        section.write([
            f"data: {note}",
            f"budget: {budget}; LLM {backend} (autocast {base['model']['llm']['autocast']}), LoRA r=8 "
            f"(layers >= {base['model']['lora'].get('layers_from', 0)}), K=4, fusion text_source "
            f"{base['model']['text_source']}, class weighting {base['model'].get('class_weighting', 'none')} "
            "(a row's own setting where its description names one)",
            "metrics: scikit-learn weighted F1 / macro F1 / accuracy (fractions) on the test split named above",
            reuse_note(results),
        ])

    for m in wanted:
        if args.converge:
            overrides[m] += converge_overrides(m, args)
        own_seeds = llm_seeds if m in LLM_MODELS else seeds
        results.update(train_models(base, {m: overrides[m]}, args.work / "runs" / tag, own_seeds))
        write()

if __name__ == "__main__":
    main()
