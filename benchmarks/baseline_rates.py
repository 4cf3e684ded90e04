"""Learning rates of the non-LLM baselines (late_fusion, mult) on real MELD, chosen on valid only (not a test).

    nohup flock /tmp/egmf_cpu.lock env OMP_NUM_THREADS=2 .venv/bin/python benchmarks/baseline_rates.py \\
        > /tmp/baseline_rates.log 2>&1 &
    .venv/bin/python benchmarks/baseline_rates.py --smoke      (a few dialogues, one epoch: checks the script)

Data: ``quality.py meld``'s folder (MELD train minus the held-out dialogues of ``quality.meld_heldout``,
valid = those, test = dev) with the text features ``text_source: auto`` gives MELD: one MiniLM sentence vector
per utterance, computed once here and written as the folder's ``features/text/*.npy`` (the same vectors; the
runs then do not each re-encode 11k utterances). Each (model, rate) trains until valid stops improving: valid
scored after every epoch, early stopping after ``--patience`` evaluations without improvement, at most
``--epochs`` epochs and ``--minutes`` per run, batch 8, the model's other defaults. The chosen rate of a model
is the one with the best valid weighted F1 (the selection metric); dev is reported and never used to choose.

Writes ``results/baseline_rates.md`` and ``results/heldout_meld.md`` (the held-out split's label distribution
against dev's, and against the former draw of 30 random train dialogues).
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import SHARED, Section, outside_repo, reuse_note, train_models  # noqa: E402
from quality import dialogue_of, meld_heldout, write_meld  # noqa: E402

MODELS = ("late_fusion", "mult")


def add_sentence_features(folder: Path) -> int:
    """Write ``features/text/{id}.npy`` ([1, 384] MiniLM vectors) for every row of ``folder/data.csv`` that lacks
    one; returns how many were encoded."""
    from egmf.features.text import sentence_embeddings

    with (folder / "data.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = folder / "features" / "text"
    out.mkdir(parents=True, exist_ok=True)
    todo = [r for r in rows if not (out / f"{r['id']}.npy").is_file()]
    if todo:
        vectors = sentence_embeddings([r["text"] for r in todo])
        for r, v in zip(todo, vectors):
            np.save(out / f"{r['id']}.npy", np.asarray(v, dtype=np.float32)[None, :])
    return len(todo)


def keep_first_dialogues(folder: Path, per_split: int) -> None:
    """--smoke: keep the rows of the first ``per_split`` dialogues of each split."""
    path = folder / "data.csv"
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    seen: dict[str, list[str]] = {}
    for r in rows:
        d = seen.setdefault(r["split"], [])
        if r["dialogue"] not in d:
            d.append(r["dialogue"])
    keep = [r for r in rows if r["dialogue"] in seen[r["split"]][:per_split]]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)


def heldout_section(src: Path, seed: int) -> None:
    """``results/heldout_meld.md``: label distributions of dev, the held-out dialogues and the former draw."""
    from egmf.data.heldout import label_distribution, total_variation
    from egmf.data.registry import load_dataset
    from egmf.data.schema import MELD_EMOTIONS
    from egmf.evaluation.aggregate import to_markdown

    section = Section("heldout_meld", "MELD: the held-out selection dialogues against dev")
    data = load_dataset("meld", src, splits=("train", "valid"), features=None)
    train, dev = data.splits["train"], data.splits["valid"]
    drawn = meld_heldout(train, dev, seed=seed)
    dialogues = sorted({dialogue_of(s) for s in train})
    former = set(np.random.default_rng(0).choice(dialogues, size=30, replace=False).tolist())  # the old rule
    chosen = set(drawn.dialogues)
    parts = {
        "dev (the report split)": list(dev),
        f"held-out, new rule ({len(chosen)} dialogues)": [s for s in train if dialogue_of(s) in chosen],
        "held-out, former rule (30 random dialogues)": [s for s in train if dialogue_of(s) in former],
        "train minus new held-out": [s for s in train if dialogue_of(s) not in chosen],
    }
    target = label_distribution([str(s.label) for s in dev])
    rows = []
    for name, samples in parts.items():
        labels = [str(s.label) for s in samples]
        dist = label_distribution(labels)
        counts = {lab: labels.count(lab) for lab in MELD_EMOTIONS}
        rows.append({"split": name, "utterances": str(len(samples)),
                     **{lab: f"{100 * dist.get(lab, 0.0):.1f}% ({counts[lab]})" for lab in MELD_EMOTIONS},
                     "TV distance to dev": f"{total_variation(dist, target):.4f}"})
    section.add(*to_markdown(pd.DataFrame(rows), labels=1).splitlines())
    section.add("", "Rule (`egmf.data.heldout.draw_dialogues`, called by `benchmarks/quality.py`'s `meld_heldout`): "
                f"as many whole MELD train dialogues as dev has; of 2,000 seeded uniform draws (seed {seed}) the one "
                "whose pooled label distribution has the smallest total variation distance (half the L1 distance "
                "of the shares) from dev's, then the best swap of one chosen for one left-out dialogue while a "
                "swap lowers that distance. Only dev's label counts are read. Whole dialogues stay together (each "
                "utterance's context is its dialogue's earlier turns).")
    section.write(["no model is trained: label counts only"])


def base_config(path: Path, epochs: int, patience: int, minutes: float, smoke: bool) -> dict:
    cfg = {
        "name": "x", "output_dir": "x",
        "data": {"datasets": [{"name": "custom", "path": str(path)}]},
        "model": {"name": "late_fusion", "text_source": "auto", "baseline": {"hidden": 128, "layers": 2}},
        "train": {"epochs": epochs, "batch_size": 8, "eval_every": 0, "num_evals": 0, "patience": patience,
                  "time_limit_minutes": minutes, "save_every": 100_000, "log_every": 100},
        "eval": {"batch_size": 64, "plots": False},
    }
    if smoke:
        cfg["model"]["baseline"] = {"hidden": 16, "layers": 1, "n_heads": 2}
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lrs", default="3e-4,1e-3,3e-3", help="learning rates (train.lr_fusion) to try per model")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--epochs", type=int, default=6, help="at most this many epochs per run")
    ap.add_argument("--patience", type=int, default=2, help="evaluations (epochs) without improvement before stopping")
    ap.add_argument("--minutes", type=float, default=1.0, help="time limit per run (train.time_limit_minutes)")
    ap.add_argument("--seeds", default="1111")
    ap.add_argument("--work", type=Path, default=Path("/tmp/egmf_rates"), help="data + run folders (outside the repo)")
    ap.add_argument("--meld", type=Path, default=SHARED / "meld")
    ap.add_argument("--smoke", action="store_true", help="6 dialogues per split, 1 epoch, 1 rate: checks the script")
    args = ap.parse_args()
    outside_repo(args.work)
    tag = "smoke" if args.smoke else "meld"
    lrs = [float(x) for x in args.lrs.split(",")][: 1 if args.smoke else None]
    epochs = 1 if args.smoke else args.epochs
    if not args.smoke:
        heldout_section(args.meld, seed=0)
    section = Section(f"baseline_rates{'_smoke' if args.smoke else ''}",
                      "Learning rates of the non-LLM baselines on MELD (selected on valid)")
    path = write_meld(args.meld, args.work / "data" / tag)
    if args.smoke:
        keep_first_dialogues(path, 6)
    started = time.perf_counter()
    encoded = add_sentence_features(path)
    encode_s = time.perf_counter() - started
    base = base_config(path, epochs, args.patience, args.minutes, args.smoke)
    models = {f"{m}@{lr:g}": [f"model.name={m}", f"train.lr_fusion={lr}"]
              for m in args.models.split(",") if m for lr in lrs}
    seeds = [int(s) for s in args.seeds.split(",")]
    results = train_models(copy.deepcopy(base), models, args.work / "runs" / tag, seeds)
    rows, best = [], {}
    for name, t in results.items():
        model, lr = name.split("@")
        for seed, sr in t.result.seeds.items():
            valid, dev = next(iter(sr.valid.values())), next(iter(sr.test.values()))
            tr = sr.training
            rows.append({"model": model, "lr_fusion": lr, "seed": str(seed),
                         "valid w-F1": f"{valid['weighted_f1']:.4f}", "dev w-F1": f"{dev['weighted_f1']:.4f}",
                         "dev macro-F1": f"{dev['macro_f1']:.4f}", "dev acc": f"{dev['accuracy']:.4f}",
                         "best step": str(tr.get("best_step")), "steps": str(tr.get("steps")),
                         "train s": f"{tr.get('train_seconds', float('nan')):.0f}"})
            score = valid["weighted_f1"]
            if model not in best or score > best[model][1]:
                best[model] = (lr, score, dev["weighted_f1"])
    from egmf.evaluation.aggregate import to_markdown

    section.add(*to_markdown(pd.DataFrame(rows), labels=3).splitlines())
    chosen = [f"{m}: lr_fusion {lr} (valid w-F1 {v:.4f}, dev w-F1 {d:.4f})" for m, (lr, v, d) in best.items()]
    section.add("", "Chosen on valid (the held-out train dialogues), per model: " + "; ".join(chosen),
                "", f"Run folders: `{args.work / 'runs' / tag}`.")
    section.write([
        "data: MELD train minus the held-out dialogues of `quality.py` (`results/heldout_meld.md`) -> valid = "
        "those dialogues -> report on dev (1,109 utterances); text only: one MiniLM sentence vector per "
        f"utterance (text_source auto; {encoded} encoded by this call in {encode_s:.0f} s)",
        f"budget: batch 8, valid after every epoch, patience {args.patience} evaluations, at most {epochs} epochs "
        f"and {args.minutes:g} min per run (a run stopped by either cap says so by steps < its epochs' steps); "
        "weight decay and warmup: the models' defaults; hidden 128, 2 layers",
        f"seeds {args.seeds}; metrics: scikit-learn weighted F1 (the selection metric) / macro F1 / accuracy",
        reuse_note(results),
    ])


if __name__ == "__main__":
    main()
