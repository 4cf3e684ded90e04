"""Generated MMSA pickles (MOSI, MOSEI, SIMS, SIMS v2) in the exact layout MMSA distributes.

The file is a dict ``{train, valid, test}``; each split holds ``raw_text`` and ``id`` ("video$_$clip")
as object arrays, ``text`` (N, L, d_t) float32 BERT-like features, ``text_bert`` (N, 3, L) int64
(ids, attention mask, segment ids), ``audio`` (N, Ta, d_a), ``vision`` (N, Tv, d_v), for unaligned
files ``audio_lengths``/``vision_lengths``, ``annotations`` ("Positive"/"Negative"/"Neutral"),
``regression_labels`` (N,) float32 and, for SIMS and SIMS v2, ``regression_labels_T``/``_A``/``_V``.

Choices that mirror the real files:

- labels sit on the annotators' grid: MOSEI averages 3 annotators (multiples of 1/3), MOSI 5
  (multiples of 0.2), SIMS and SIMS v2 average 5 annotators' -1/0/1 votes (multiples of 0.2);
- file names as MMSA ships them: ``aligned_50.pkl`` / ``unaligned_50.pkl`` (MOSI, MOSEI),
  ``unaligned_39.pkl`` (SIMS), ``ch-simsv2s.pkl`` (SIMS v2); SIMS and SIMS v2 exist only unaligned;
- default dims and padded lengths of MMSA's config (MOSEI 768/74/35, lengths 50/500/375, ...);
- real frames are followed by zero padding; aligned files pad audio/vision to the text length L;
- MOSEI audio holds a few ``-inf`` (COVAREP does), which the loader must clean.

The signal: every modality's frames carry the score (:func:`common.score_features`) and ``raw_text``
names it with a cue word (:func:`common.cue_text`). For SIMS the text, audio and vision carry their
own unimodal labels T, A, V (each a noisy copy of the multimodal label), as in the real annotation.

Usage::

    from egmf.data.synth import write_synthetic
    pkl = write_synthetic("mmsa", "out/mosei", size="tiny", flavour="mosei", dims={"text": 32})
"""

from __future__ import annotations

import pickle
import string
from pathlib import Path
from typing import Any

import numpy as np

from egmf.data.mmsa import FLAVOURS, UNIMODAL, VARIANTS
from egmf.data.schema import MODALITIES, SPLITS
from egmf.data.synth.common import SALTS, cue_text, draw_lengths, score_features, split_sizes
from egmf.errors import ConfigError

# (text, audio, vision) feature dims and padded unaligned lengths, from MMSA's config.json.
DEFAULT_DIMS = {
    "mosi": {"text": 768, "audio": 5, "vision": 20},
    "mosei": {"text": 768, "audio": 74, "vision": 35},
    "sims": {"text": 768, "audio": 33, "vision": 709},
    "simsv2": {"text": 768, "audio": 25, "vision": 177},
}
DEFAULT_SEQ_LENS = {
    "mosi": {"text": 50, "audio": 375, "vision": 500},
    "mosei": {"text": 50, "audio": 500, "vision": 375},
    "sims": {"text": 39, "audio": 400, "vision": 55},
    "simsv2": {"text": 50, "audio": 925, "vision": 232},
}
# Step between possible label values: the mean of k annotators' integer (or -1/0/1) votes.
LABEL_GRID = {"mosi": 0.2, "mosei": 1.0 / 3.0, "sims": 0.2, "simsv2": 0.2}
# Fraction of real audio values set to -inf (only MOSEI's COVAREP features hold them).
DEFAULT_NEG_INF_RATE = {"mosi": 0.0, "mosei": 0.002, "sims": 0.0, "simsv2": 0.0}
# Mean and spread of the score before rounding, in units of the half range: MOSEI leans positive.
LABEL_SHAPE = {"mosi": (0.0, 0.55), "mosei": (0.15, 0.4), "sims": (-0.1, 0.5), "simsv2": (0.0, 0.5)}
UNALIGNED_ONLY = ("sims", "simsv2")
CLS, SEP = 101, 102  # BERT's [CLS] and [SEP] ids (same in bert-base-uncased and bert-base-chinese)


def file_name(flavour: str, variant: str, text_len: int) -> str:
    """The name MMSA gives the pickle: ``unaligned_50.pkl``, ``unaligned_39.pkl``, ``ch-simsv2s.pkl``."""
    if flavour == "simsv2":
        return "ch-simsv2s.pkl"
    return f"{variant}_{text_len}.pkl"


def _resolve(name: str, given: dict[str, int] | None, defaults: dict[str, int]) -> dict[str, int]:
    out = dict(defaults)
    for key, value in (given or {}).items():
        if key not in MODALITIES:
            raise ConfigError(f"{name}: unknown modality {key!r}; valid choices: {', '.join(MODALITIES)}")
        if int(value) < 1:
            raise ConfigError(f"{name}.{key}: expected a positive integer, got {value!r}")
        out[key] = int(value)
    return out


def _scores(rng: np.random.Generator, n: int, flavour: str) -> np.ndarray:
    lo, hi = FLAVOURS[flavour].score_range
    half = (hi - lo) / 2.0
    mean, spread = LABEL_SHAPE[flavour]
    raw = rng.normal(mean * half, spread * half, size=n)
    return on_grid(raw, flavour)


def on_grid(values: np.ndarray, flavour: str) -> np.ndarray:
    """``values`` clipped to the flavour's range and rounded to its annotators' grid, float32."""
    lo, hi = FLAVOURS[flavour].score_range
    step = LABEL_GRID[flavour]
    # "+ 0.0" turns the -0.0 that rounding leaves into 0.0, as annotators never wrote "-0".
    return (np.clip(np.round(np.asarray(values) / step) * step, lo, hi) + 0.0).astype(np.float32)


def _ids(rng: np.random.Generator, n: int, flavour: str, split: str) -> np.ndarray:
    """``video$_$clip`` ids: several clips per video, videos never shared across splits."""
    letters = np.array(list(string.ascii_letters + string.digits + "-_"))
    sims = flavour in ("sims", "simsv2")
    out: list[str] = []
    while len(out) < n:
        # SIMS names videos video_0001 and clips 0001; MOSI/MOSEI use 11-character YouTube ids
        video = f"video_{split}_{len(out):04d}" if sims else "".join(rng.choice(letters, size=11))
        for clip in range(1, int(rng.integers(2, 7)) + 1):
            out.append(f"{video}$_${clip:04d}" if sims else f"{video}$_${clip}")
    return np.array(out[:n], dtype=object)


def _padded(frames: list[np.ndarray], t_max: int, dim: int) -> np.ndarray:
    out = np.zeros((len(frames), t_max, dim), dtype=np.float32)
    for i, f in enumerate(frames):
        out[i, : f.shape[0]] = f
    return out


def _text_bert(rng: np.random.Generator, lengths: np.ndarray, t_max: int) -> np.ndarray:
    """(N, 3, L) token ids, attention mask and segment ids; ``lengths`` counts [CLS] and [SEP]."""
    n = len(lengths)
    out = np.zeros((n, 3, t_max), dtype=np.int64)
    for i, t in enumerate(lengths):
        t = int(t)
        out[i, 0, :t] = rng.integers(1000, 21000, size=t)
        out[i, 0, 0], out[i, 0, t - 1] = CLS, SEP
        out[i, 1, :t] = 1
    return out


def _split(
    rng: np.random.Generator, n: int, split: str, flavour: str, variant: str,
    dims: dict[str, int], seq: dict[str, int], strength: float, text_strength: float, neg_inf_rate: float,
) -> dict[str, Any]:
    fl = FLAVOURS[flavour]
    lo, hi = fl.score_range
    labels = _scores(rng, n, flavour)
    # SIMS: each modality has its own annotation, a noisy copy of the multimodal one.
    unimodal = {m: on_grid(labels + rng.normal(0.0, 0.25 * (hi - lo) / 2, n), flavour) for m in UNIMODAL}
    carried = (
        {"text": unimodal["T"], "audio": unimodal["A"], "vision": unimodal["V"]}
        if fl.unimodal_labels
        else {m: labels for m in MODALITIES}
    )
    L = seq["text"]
    # Text length counts [CLS] and [SEP]; at least 3 tokens, as a one-word utterance has.
    text_len = draw_lengths(rng, n, min(3, L), L)
    if variant == "aligned":  # audio and vision averaged per word: as many frames as word pieces
        lengths = {"audio": text_len, "vision": text_len}
        t_pad = {"text": L, "audio": L, "vision": L}
    else:
        lengths = {m: draw_lengths(rng, n, max(1, seq[m] // 4), seq[m]) for m in ("audio", "vision")}
        t_pad = dict(seq)
    lengths["text"] = text_len

    arrays = {}
    for m in MODALITIES:
        frames = score_features(rng, carried[m], lo, hi, lengths[m], dims[m], strength, salt=SALTS[m])
        arrays[m] = _padded(frames, t_pad[m], dims[m])
    if neg_inf_rate > 0:
        real = np.arange(t_pad["audio"])[None, :] < np.asarray(lengths["audio"])[:, None]
        cells = np.argwhere(real)
        k = max(1, int(round(neg_inf_rate * cells.shape[0])))
        for i, t in cells[rng.choice(cells.shape[0], size=k, replace=False)]:
            arrays["audio"][i, t, rng.integers(dims["audio"])] = -np.inf

    raw_text = [
        cue_text(rng, float(s), fl.lang, strength=text_strength, score_range=fl.score_range) for s in carried["text"]
    ]
    annotations = np.where(labels > 0, "Positive", np.where(labels < 0, "Negative", "Neutral")).astype(object)
    out: dict[str, Any] = {
        "raw_text": np.array(raw_text, dtype=object),
        "id": _ids(rng, n, flavour, split),
        "text": arrays["text"],
        "text_bert": _text_bert(rng, text_len, L),
        "audio": arrays["audio"],
        "vision": arrays["vision"],
    }
    if variant == "unaligned":
        out["audio_lengths"] = [int(t) for t in lengths["audio"]]
        out["vision_lengths"] = [int(t) for t in lengths["vision"]]
    out["annotations"] = annotations
    out["regression_labels"] = labels
    if fl.unimodal_labels:
        for m in UNIMODAL:
            out[f"regression_labels_{m}"] = unimodal[m]
    return out


def write(
    out: Path,
    n_train: int,
    seed: int,
    flavour: str = "mosei",
    variant: str = "unaligned",
    dims: dict[str, int] | None = None,
    seq_lens: dict[str, int] | None = None,
    strength: float = 1.5,
    text_strength: float = 0.65,
    neg_inf_rate: float | None = None,
) -> Path:
    """Write a generated MMSA pickle into folder ``out`` and return the pickle's path.

    ``dims`` and ``seq_lens`` override the flavour's feature dims and padded lengths per modality
    (``{"text": 16}``) so tests stay small; ``strength`` scales the signal in the features and
    ``text_strength`` is the chance that ``raw_text`` names the true polarity.
    """
    if flavour not in FLAVOURS:
        raise ConfigError(f"flavour: unknown MMSA flavour {flavour!r}; valid choices: {', '.join(FLAVOURS)}")
    valid_variants = ("unaligned",) if flavour in UNALIGNED_ONLY else VARIANTS
    if variant not in valid_variants:
        raise ConfigError(
            f"variant: MMSA distributes {flavour} as {', '.join(valid_variants)} only, got {variant!r}"
        )
    dims_ = _resolve("dims", dims, DEFAULT_DIMS[flavour])
    seq = _resolve("seq_lens", seq_lens, DEFAULT_SEQ_LENS[flavour])
    rate = DEFAULT_NEG_INF_RATE[flavour] if neg_inf_rate is None else float(neg_inf_rate)
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"neg_inf_rate: expected a fraction in [0, 1), got {neg_inf_rate!r}")

    rng = np.random.default_rng(seed)
    sizes = split_sizes(n_train)
    data = {
        split: _split(rng, sizes[split], split, flavour, variant, dims_, seq, strength, text_strength, rate)
        for split in SPLITS
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / file_name(flavour, variant, seq["text"])
    with path.open("wb") as f:
        pickle.dump(data, f, protocol=4)
    return path
