"""Generated data in the ``custom`` layout (see :mod:`egmf.data.custom`), ERC or MSA, English or Chinese.

Writes into ``out``::

    data.csv                      id, text, label, split, speaker, dialogue  (UTF-8)
    features/{text,audio,vision}/{id}.npy   float32 [T, d]  (default d: text 48, audio 32, vision 24)
    dataset.yaml                  name, task, lang, labels (erc) or score_range (msa), metric_family

ERC labels are MELD's seven emotions (``lang="en"``) or CHERMA's seven words (``lang="zh"``); MSA scores
lie in [-3, 3] (en, metric family mosi) or [-1, 1] (zh, sims), written with one decimal. Rows come in
dialogues of 2-6 turns by 2 speakers. ``yaml=False`` leaves the yaml out so the loader infers it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import yaml

from egmf.data.schema import CHERMA_EMOTIONS, MELD_EMOTIONS
from egmf.data.synth import common as C

DEFAULT_DIMS = {"text": 48, "audio": 32, "vision": 24}
LENGTHS = {"text": (4, 16), "audio": (10, 30), "vision": (4, 12)}
SPEAKERS = {"en": ["Alex", "Sam", "Jordan", "Casey"], "zh": ["小王", "小李", "老张", "小陈"]}


def write(
    out: Path,
    n_train: int,
    seed: int,
    task: str = "erc",
    lang: str = "en",
    dims: dict[str, int] | None = None,
    features: bool = True,
    yaml_file: bool = True,
    name: str = "custom_synth",
    text_strength: float | None = None,
    feature_strength: float | None = None,
) -> Path:
    """Write a generated custom dataset into ``out`` and return ``out`` (what :func:`load_custom` reads)."""
    if task not in ("erc", "msa"):
        raise ValueError(f"task: expected erc or msa, got {task!r}")
    if lang not in ("en", "zh"):
        raise ValueError(f"lang: expected en or zh, got {lang!r}")
    dims = {**DEFAULT_DIMS, **(dims or {})}
    unknown = set(dims) - set(DEFAULT_DIMS)
    if unknown:
        raise ValueError(f"dims: unknown modalities {sorted(unknown)}; expected text, audio, vision")
    # Scores cluster near 0 and a cue word gives only the polarity, so MSA needs stronger defaults.
    if feature_strength is None:
        feature_strength = 2.0 if task == "erc" else 3.0
    if text_strength is None:
        text_strength = 0.75 if task == "erc" else 0.85
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = MELD_EMOTIONS if lang == "en" else CHERMA_EMOTIONS
    lo, hi = (-3.0, 3.0) if lang == "en" else (-1.0, 1.0)

    rows, ys = [], []
    for split, n in C.split_sizes(n_train).items():
        if task == "erc":
            y = C.draw_classes(rng, n, len(labels))
        else:  # scores rounded to one decimal, as annotators' averages usually are
            y = np.round(np.clip(rng.normal(0.0, 0.45 * (hi - lo) / 2, n), lo, hi), 1)
        d, turn, size = 0, 0, int(rng.integers(2, 7))
        for i in range(n):
            if turn == size:
                d, turn, size = d + 1, 0, int(rng.integers(2, 7))
            value = labels[int(y[i])] if task == "erc" else float(y[i])
            text = C.cue_text(rng, value, lang, text_strength, labels=labels, score_range=(lo, hi))
            label = value if task == "erc" else f"{value:.1f}"
            rows.append([f"{split}_{i:05d}", text, label, split, SPEAKERS[lang][turn % 2 + (d % 2) * 2],
                         f"{split}_d{d}"])
            turn += 1
        ys.append(y)
    with (out / "data.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "label", "split", "speaker", "dialogue"])
        writer.writerows(rows)

    if features:
        y_all = np.concatenate(ys)
        for m, dim in dims.items():
            lengths = C.draw_lengths(rng, len(rows), *LENGTHS[m])
            if task == "erc":
                arrays = C.class_features(rng, y_all, len(labels), lengths, dim, feature_strength, C.SALTS[m])
            else:
                arrays = C.score_features(rng, y_all, lo, hi, lengths, dim, feature_strength, C.SALTS[m])
            folder = out / "features" / m
            folder.mkdir(parents=True, exist_ok=True)
            for row, arr in zip(rows, arrays):
                np.save(folder / f"{row[0]}.npy", arr)

    if yaml_file:
        spec: dict = {"name": name, "task": task, "lang": lang}
        if task == "erc":
            spec.update(labels=list(labels), metric_family="erc")
        else:
            spec.update(score_range=[lo, hi], metric_family="mosi" if lang == "en" else "sims")
        (out / "dataset.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return out
