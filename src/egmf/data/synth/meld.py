"""Generated MELD in its distributed layout, with a learnable emotion signal in every modality.

Writes into ``out``::

    train_sent_emo.csv  dev_sent_emo.csv  test_sent_emo.csv      (the official 11 columns, UTF-8)
    features/{train,valid,test}/{text,audio,vision}/dia{D}_utt{U}.npy   float32 [T, d]

Dialogues hold 3-8 utterances by 2-3 speakers; an utterance repeats the previous emotion of its
dialogue with probability ``carry`` (so context helps, as in real MELD). Sentiment follows the emotion
(joy -> positive, neutral -> neutral, surprise -> either, the rest -> negative). Default dims are small
(text 48, audio 32, vision 24); pass ``dims={"audio": 300, ...}`` for others or ``features=False`` to
write the CSVs only. ``egmf.data.meld.load_meld(out)`` reads the result (features found automatically).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from egmf.data.meld import CSV_FILES  # the official file names, defined by the loader
from egmf.data.schema import MELD_EMOTIONS
from egmf.data.synth import common as C

COLUMNS = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
           "Season", "Episode", "StartTime", "EndTime"]
DEFAULT_DIMS = {"text": 48, "audio": 32, "vision": 24}
LENGTHS = {"text": (4, 16), "audio": (10, 30), "vision": (4, 12)}
SPEAKERS = ["Chandler", "Joey", "Monica", "Rachel", "Ross", "Phoebe", "Gunther", "Janice"]


def _sentiment(rng: np.random.Generator, emotion: str) -> str:
    if emotion == "neutral":
        return "neutral"
    if emotion == "joy":
        return "positive"
    if emotion == "surprise":
        return "positive" if rng.random() < 0.5 else "negative"
    return "negative"


def _timestamp(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def _dialogues(rng: np.random.Generator, n: int, carry: float) -> list[list[tuple[int, str]]]:
    """Dialogues of (emotion index, speaker) summing to exactly ``n`` utterances."""
    first = C.draw_classes(rng, n, len(MELD_EMOTIONS))  # every emotion appears once n >= 7
    out, i = [], 0
    while i < n:
        size = min(int(rng.integers(3, 9)), n - i)
        cast = list(rng.choice(SPEAKERS, size=int(rng.integers(2, 4)), replace=False))
        dia = []
        for k in range(size):
            y = int(first[i + k])
            if dia and rng.random() < carry:
                y = dia[-1][0]
            dia.append((y, str(cast[k % len(cast)] if rng.random() < 0.8 else rng.choice(cast))))
        out.append(dia)
        i += size
    return out


def write(
    out: Path,
    n_train: int,
    seed: int,
    dims: dict[str, int] | None = None,
    features: bool = True,
    carry: float = 0.3,
    text_strength: float = 0.75,
    feature_strength: float = 2.0,
) -> Path:
    """Write generated MELD into ``out`` and return ``out`` (the folder :func:`load_meld` reads)."""
    dims = {**DEFAULT_DIMS, **(dims or {})}
    unknown = set(dims) - set(DEFAULT_DIMS)
    if unknown:
        raise ValueError(f"dims: unknown modalities {sorted(unknown)}; expected text, audio, vision")
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for split, n in C.split_sizes(n_train).items():
        dialogues = _dialogues(rng, n, carry)
        rows, names, classes = [], [], []
        t = 0.0
        for d, dia in enumerate(dialogues):
            season, episode = int(rng.integers(1, 11)), int(rng.integers(1, 25))
            for u, (y, speaker) in enumerate(dia):
                emotion = MELD_EMOTIONS[y]
                start, t = t, t + float(rng.uniform(1.0, 6.0))
                text = C.cue_text(rng, emotion, "en", text_strength, labels=MELD_EMOTIONS)
                rows.append([len(rows) + 1, text, speaker, emotion, _sentiment(rng, emotion), d, u,
                             season, episode, _timestamp(start), _timestamp(t)])
                names.append(f"dia{d}_utt{u}")
                classes.append(y)
        with (out / CSV_FILES[split]).open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
        if not features:
            continue
        y = np.asarray(classes)
        for m, dim in dims.items():
            lengths = C.draw_lengths(rng, len(y), *LENGTHS[m])
            arrays = C.class_features(rng, y, len(MELD_EMOTIONS), lengths, dim, feature_strength, C.SALTS[m])
            folder = out / "features" / split / m
            folder.mkdir(parents=True, exist_ok=True)
            for name, arr in zip(names, arrays):
                np.save(folder / f"{name}.npy", arr)
    return out
