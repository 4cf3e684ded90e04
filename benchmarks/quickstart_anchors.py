"""Linear anchors on the quickstart's generated data: what the same inputs allow, beside EGMF's quickstart figures.

    .venv/bin/python benchmarks/quickstart_anchors.py            (seconds; no LLM)

The quickstart's verdicts compare EGMF with the trivial baseline (majority label, mean score). This puts a
classical model on the same inputs beside them, so that a reader can tell a weak model from data that hold
little signal: per modality and for all together, each utterance's standardised frames pooled to mean + std
(as the RAVDESS anchors do) go into ridge regression (MOSEI-format scores) or logistic regression (MELD-format
emotions), the regularisation chosen by cross-validation on train only; the words go into TF-IDF + the same
linear model. Fitted on train, scored on test with the project's metrics (``egmf.evaluation.metrics``).
``--size`` also scores a larger draw of the same generator (``medium``: 1,200 train utterances), which says
whether a figure is capped by the generator's noise or by the 240 utterances of the quickstart's ``small``.

Writes ``benchmarks/results/quickstart_anchors.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import Section, outside_repo  # noqa: E402

MODALITY_SETS = {"text features": ("text_feats",), "audio": ("audio",), "vision": ("vision",),
                 "text features + audio + vision": ("text_feats", "audio", "vision")}
SEED = 1111


def pooled(samples, modalities) -> np.ndarray:
    """Each sample's frames of ``modalities`` pooled to mean + std (non-finite values as 0; no frames: zeros)."""
    rows = []
    for s in samples:
        parts = []
        for m in modalities:
            a = getattr(s, m)
            if a is None or len(a) == 0:
                dim = next(getattr(o, m).shape[1] for o in samples if getattr(o, m) is not None and len(getattr(o, m)))
                parts += [np.zeros(dim), np.zeros(dim)]
                continue
            a = np.where(np.isfinite(a), np.asarray(a, dtype=np.float64), 0.0)
            parts += [a.mean(0), a.std(0)]
        rows.append(np.concatenate(parts))
    return np.asarray(rows)


RIDGE_ALPHAS = np.logspace(-2, 4, 25)


def regressor():
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))


def classifier():
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=10, max_iter=2000, random_state=SEED))


def text_model(estimator):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    # The scaler of regressor()/classifier() cannot take sparse input; TF-IDF rows are already on one scale.
    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), estimator)


def mosei_rows(train, test, info, size: str) -> list[dict]:
    from sklearn.linear_model import RidgeCV

    from egmf.evaluation.metrics import compute_metrics

    y = np.array([s.label for s in train], dtype=np.float64)
    truth = [float(s.label) for s in test]
    preds = {"mean score of train (the quickstart's baseline)": np.full(len(test), y.mean())}
    for name, mods in MODALITY_SETS.items():
        preds[f"{name}: mean+std + ridge"] = regressor().fit(pooled(train, mods), y).predict(pooled(test, mods))
    preds["words: TF-IDF + ridge"] = text_model(RidgeCV(alphas=RIDGE_ALPHAS)).fit(
        [s.text for s in train], y).predict([s.text for s in test])
    rows = []
    for name, p in preds.items():
        m = compute_metrics(info, [float(v) for v in p], truth)
        corr = m["corr"] if np.std(p) > 0 else float("nan")
        rows.append({"data": f"MOSEI-format, {size}", "anchor": name, "MAE": f"{m['mae']:.4f}",
                     "MAE vs mean score": f"{100 * (m['mae'] / rows[0]['_mae'] - 1):+.1f}%" if rows else "-",
                     "Corr": "-" if np.isnan(corr) else f"{corr:.3f}", "Acc-2 has0": f"{m['acc2_has0']:.2f}",
                     "_mae": m["mae"]})
    return rows


def meld_rows(train, test, info, size: str) -> list[dict]:
    from collections import Counter

    from sklearn.linear_model import LogisticRegression

    from egmf.evaluation.metrics import compute_metrics

    y = [s.label for s in train]
    truth = [s.label for s in test]
    preds = {"majority label of train (the quickstart's baseline)": [Counter(y).most_common(1)[0][0]] * len(test)}
    for name, mods in MODALITY_SETS.items():
        preds[f"{name}: mean+std + LR"] = list(classifier().fit(pooled(train, mods), y).predict(pooled(test, mods)))
    preds["words: TF-IDF + LR"] = list(text_model(LogisticRegression(max_iter=2000, C=10.0)).fit(
        [s.text for s in train], y).predict([s.text for s in test]))
    rows = []
    for name, p in preds.items():
        m = compute_metrics(info, p, truth)
        rows.append({"data": f"MELD-format, {size}", "anchor": name, "weighted F1": f"{m['weighted_f1']:.4f}",
                     "accuracy": f"{m['accuracy']:.4f}"})
    return rows


def main() -> None:
    from egmf.cli.quickstart import generate_data
    from egmf.data import load_dataset

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="small,medium", help="generator sizes to score (small = the quickstart's)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/egmf_quickstart_anchors"), help="outside the repo")
    args = ap.parse_args()
    outside_repo(args.work)
    section = Section("quickstart_anchors", "Linear anchors on the quickstart's generated data")
    mosei, meld = [], []
    for size in [s for s in args.sizes.split(",") if s]:
        data_dir = args.work / size
        generate_data(data_dir, size)  # the quickstart's own writer and seed: size small is its exact data
        d = load_dataset("mosei", data_dir / "mosei")
        mosei += mosei_rows(d.splits["train"], d.splits["test"], d.info, size)
        d = load_dataset("meld", data_dir / "meld")
        meld += meld_rows(d.splits["train"], d.splits["test"], d.info, size)
    from egmf.evaluation.aggregate import to_markdown

    section.add("MOSEI-format sentiment (test split; MAE, Corr and Acc-2 as `egmf.evaluation.metrics` computes them):", "")
    section.add(*to_markdown(pd.DataFrame(mosei).drop(columns="_mae"), labels=2).splitlines())
    section.add("", "MELD-format emotions (test split):", "")
    section.add(*to_markdown(pd.DataFrame(meld), labels=2).splitlines())
    section.write([
        f"data: `egmf.cli.quickstart.generate_data` (seed 0) at sizes {args.sizes}; `small` is the quickstart's own "
        "data (240 train utterances per dataset, 72 test)",
        "models: per-dimension standardisation fitted on train, then ridge (alpha by leave-one-out CV) or "
        "logistic regression (C by 5-fold CV), seed 1111; words: TF-IDF uni+bigrams; no setting chosen on test",
    ])


if __name__ == "__main__":
    main()
