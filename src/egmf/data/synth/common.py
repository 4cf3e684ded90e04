"""Shared helpers for the synthetic-data writers: a *learnable* but imperfect signal in every modality.

Every writer (mmsa, meld, cherma, custom) draws its labels, then asks these helpers for features and
text that carry the label:

- :func:`class_features` (ERC): each frame is ``strength * direction[class] + noise``. The direction is a
  fixed unit vector per (modality ``salt``, class), identical across splits and calls, so what a model
  learns on train transfers to test. A per-sample offset (constant over the frames) keeps the noise from
  averaging away under mean pooling, so one modality alone is informative but far from perfect.
- :func:`score_features` (MSA): the same, with the signal proportional to the score mapped to [-1, 1].
- :func:`cue_text` (both): an English or Chinese sentence whose cue word names the true label with
  probability ``strength`` and a wrong one otherwise, so text is informative but not perfect.

Each modality draws its own noise and its own cue errors, so their errors are independent and a model
that fuses them beats any single one. Usage::

    rng = np.random.default_rng(seed)
    y = draw_classes(rng, n, n_classes=7)
    audio = class_features(rng, y, 7, draw_lengths(rng, n, 8, 20), dim=32, strength=1.2, salt=1)
    texts = [cue_text(rng, MELD_EMOTIONS[c], "en", strength=0.6, labels=MELD_EMOTIONS) for c in y]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from egmf.data.schema import CHERMA_EMOTIONS, CHERMA_GLOSS

# Valid and test sizes as a fraction of n_train (DESIGN: about 0.2 / 0.3, at least 8 each).
VALID_FRACTION = 0.2
TEST_FRACTION = 0.3
MIN_SPLIT = 8

# Default per-modality salts, so every writer gives text/audio/vision unrelated directions.
SALTS = {"text": 11, "audio": 23, "vision": 37}


def split_sizes(n_train: int) -> dict[str, int]:
    """``{"train": n, "valid": ~0.2 n, "test": ~0.3 n}``, valid and test at least :data:`MIN_SPLIT`."""
    return {
        "train": int(n_train),
        "valid": max(MIN_SPLIT, int(round(VALID_FRACTION * n_train))),
        "test": max(MIN_SPLIT, int(round(TEST_FRACTION * n_train))),
    }


def draw_lengths(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """``n`` sequence lengths, uniform in ``[lo, hi]`` (both inclusive)."""
    if lo < 1 or hi < lo:
        raise ValueError(f"lengths: expected 1 <= lo <= hi, got lo={lo}, hi={hi}")
    return rng.integers(lo, hi + 1, size=n)


def draw_classes(rng: np.random.Generator, n: int, n_classes: int, skew: float = 0.5) -> np.ndarray:
    """``n`` class indices with a skewed distribution (class 0 the most frequent, like MELD's neutral).

    Weights fall as ``(k + 1) ** -skew``; ``skew=0`` is uniform. Every class appears at least once when
    ``n >= n_classes``, so a small generated split still holds every label.
    """
    weights = (np.arange(n_classes) + 1.0) ** -skew
    y = rng.choice(n_classes, size=n, p=weights / weights.sum())
    if n >= n_classes:
        y[rng.permutation(n)[:n_classes]] = np.arange(n_classes)
    return y


def directions(n: int, dim: int, salt: int = 0) -> np.ndarray:
    """``[n, dim]`` unit vectors fixed by ``(n, dim, salt)``: orthonormal when ``dim >= n``.

    Seeded by the arguments, not the caller's generator, so every split of every run shares them.
    """
    g = np.random.default_rng([int(n), int(dim), int(salt), 20260107])
    m = g.standard_normal((dim, n))
    if dim >= n:
        q, _ = np.linalg.qr(m)
        return q.T.astype(np.float64)
    return (m / np.linalg.norm(m, axis=0, keepdims=True)).T


def _frames(rng: np.random.Generator, centres: np.ndarray, lengths: Sequence[int], frame_noise: float):
    """``centres[i]`` (already holding signal + per-sample offset) spread over ``lengths[i]`` noisy frames."""
    out = []
    for centre, t in zip(centres, lengths):
        t = int(t)
        if t < 1:
            raise ValueError(f"lengths: expected at least one frame, got {t}")
        frames = centre[None, :] + frame_noise * rng.standard_normal((t, centre.shape[0]))
        out.append(frames.astype(np.float32))
    return out


def class_features(
    rng: np.random.Generator,
    class_idx: np.ndarray,
    n_classes: int,
    T_lengths: Sequence[int],
    dim: int,
    strength: float = 1.5,
    salt: int = 0,
    frame_noise: float = 0.5,
) -> list[np.ndarray]:
    """One ``[T_i, dim]`` float32 array per sample carrying its class.

    Each array is ``strength * direction[class] + offset + frame_noise * N(0, 1)`` where ``offset ~ N(0, I)``
    is drawn once per sample. Along the class directions the mean-pooled features separate classes by
    about ``strength`` standard deviations: 1.5 makes a 7-class linear probe clearly better than the
    majority class yet well short of perfect. Use a different ``salt`` per modality.
    """
    class_idx = np.asarray(class_idx, dtype=np.int64)
    if len(T_lengths) != len(class_idx):
        raise ValueError(f"T_lengths: expected {len(class_idx)} lengths, got {len(T_lengths)}")
    if class_idx.size and (class_idx.min() < 0 or class_idx.max() >= n_classes):
        raise ValueError(f"class_idx: expected values in [0, {n_classes}), got {class_idx.min()}..{class_idx.max()}")
    dirs = directions(n_classes, dim, salt)
    centres = strength * dirs[class_idx] + rng.standard_normal((len(class_idx), dim))
    return _frames(rng, centres, T_lengths, frame_noise)


def score_features(
    rng: np.random.Generator,
    scores: np.ndarray,
    lo: float,
    hi: float,
    T_lengths: Sequence[int],
    dim: int,
    strength: float = 1.5,
    salt: int = 0,
    frame_noise: float = 0.5,
) -> list[np.ndarray]:
    """One ``[T_i, dim]`` float32 array per sample whose signal is proportional to its score.

    The score is mapped to ``u in [-1, 1]``; each array is ``strength * u * d1 + 0.5 * strength * |u| * d2
    + offset + noise`` (``d1``, ``d2`` fixed unit directions; the ``|u|`` term gives intensity apart from
    polarity, as real arousal does). A linear regressor on mean-pooled features beats predicting the mean.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(T_lengths) != len(scores):
        raise ValueError(f"T_lengths: expected {len(scores)} lengths, got {len(T_lengths)}")
    if hi <= lo:
        raise ValueError(f"score range: expected lo < hi, got [{lo}, {hi}]")
    u = np.clip(2.0 * (scores - lo) / (hi - lo) - 1.0, -1.0, 1.0)
    d = directions(2, dim, salt)
    centres = (
        strength * u[:, None] * d[0][None, :]
        + 0.5 * strength * np.abs(u)[:, None] * d[-1][None, :]
        + rng.standard_normal((len(scores), dim))
    )
    return _frames(rng, centres, T_lengths, frame_noise)


# ---- text -------------------------------------------------------------------------------------------
# Cue words per canonical emotion (English gloss), several synonyms each so a text model must generalise.
CUES_EN = {
    "neutral": ["okay", "fine", "normal", "usual", "alright"],
    "joy": ["great", "wonderful", "happy", "delighted", "awesome"],
    "sadness": ["sad", "miserable", "heartbroken", "gloomy", "down"],
    "anger": ["furious", "angry", "annoyed", "outraged", "mad"],
    "surprise": ["unbelievable", "shocking", "unexpected", "amazing", "whoa"],
    "fear": ["scared", "afraid", "terrified", "nervous", "frightened"],
    "disgust": ["gross", "disgusting", "revolting", "nasty", "sickening"],
    "positive": ["good", "nice", "lovely", "excellent", "pleasant"],
    "negative": ["bad", "awful", "terrible", "horrible", "poor"],
}
CUES_ZH = {
    "neutral": ["一般", "正常", "还行", "平常", "普通"],
    "joy": ["开心", "高兴", "快乐", "兴奋", "愉快"],
    "sadness": ["难过", "伤心", "悲伤", "失落", "沮丧"],
    "anger": ["生气", "愤怒", "恼火", "气愤", "火大"],
    "surprise": ["惊讶", "意外", "震惊", "吃惊", "没想到"],
    "fear": ["害怕", "恐惧", "担心", "紧张", "可怕"],
    "disgust": ["恶心", "讨厌", "厌恶", "反感", "嫌弃"],
    "positive": ["好", "不错", "满意", "喜欢", "棒"],
    "negative": ["差", "糟糕", "失望", "不满", "难受"],
}
# Label words the datasets use -> canonical key above.
_ALIASES = {"happy": "joy", "sad": "sadness", "calm": "neutral", **dict(zip(CHERMA_EMOTIONS, CHERMA_GLOSS))}

_SUBJECTS_EN = ["I", "We", "You", "They", "My friends", "The guys"]
_FRAMES_EN = [
    "{s} think this is {c}.",
    "{s} said it was {c}, honestly.",
    "Well, {s} feel {c} about the whole thing.",
    "{s} just found out and it is {c}.",
    "Look, {s} never expected something so {c} today.",
    "{s} keep telling me it is {c} at work.",
]
_FILLER_EN = ["the meeting", "the coffee", "the weekend", "the apartment", "the game", "the trip", "the call"]
_FRAMES_ZH = [
    "我觉得{x}真的很{c}。",
    "说实话，{x}让人{c}。",
    "今天{x}的事情，大家都觉得{c}。",
    "他刚才告诉我{x}，我很{c}。",
    "没想到{x}会这么{c}。",
]
_FILLER_ZH = ["这次会议", "周末", "这部电影", "那个电话", "这顿饭", "他的决定", "这次旅行"]
_INTENSITY_EN = ["a bit", "quite", "really", "extremely"]
_INTENSITY_ZH = ["有点", "比较", "非常", "特别"]


def canonical(label: str) -> str:
    """The cue key of a label word (``"高兴"`` -> ``"joy"``); unknown words are their own key."""
    return _ALIASES.get(label, label)


def _cue_word(rng: np.random.Generator, label: str, lang: str) -> str:
    table = CUES_ZH if lang == "zh" else CUES_EN
    key = canonical(label)
    # A user's own label (custom data) has no lexicon entry: the word itself is the cue.
    return str(rng.choice(table[key])) if key in table else label


def _sentence(rng: np.random.Generator, cue: str, lang: str) -> str:
    if lang == "zh":
        return str(rng.choice(_FRAMES_ZH)).format(x=rng.choice(_FILLER_ZH), c=cue)
    s = str(rng.choice(_FRAMES_EN)).format(s=rng.choice(_SUBJECTS_EN), c=cue)
    return f"{s} It was about {rng.choice(_FILLER_EN)}."


def cue_text(
    rng: np.random.Generator,
    label_or_score: str | float,
    lang: str = "en",
    strength: float = 0.65,
    labels: Sequence[str] | None = None,
    score_range: tuple[float, float] = (-3.0, 3.0),
) -> str:
    """A sentence whose cue word names the label with probability ``strength``, a wrong one otherwise.

    For a label word, the wrong cue is another word of ``labels`` (default: the seven MELD emotions).
    For a score, the cue is a positive or negative word, an intensity adverb follows ``|score|``, and
    scores within 10% of the range's centre get a neutral cue; a wrong cue flips the polarity.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength: expected a probability in [0, 1], got {strength}")
    if lang not in ("en", "zh"):
        raise ValueError(f"lang: expected en or zh, got {lang!r}")
    truthful = rng.random() < strength
    if isinstance(label_or_score, str):
        pool = list(labels) if labels is not None else ["neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust"]
        word = label_or_score
        if not truthful:
            others = [w for w in pool if w != label_or_score]
            word = str(rng.choice(others)) if others else label_or_score
        return _sentence(rng, _cue_word(rng, word, lang), lang)
    lo, hi = score_range
    u = float(np.clip(2.0 * (float(label_or_score) - lo) / (hi - lo) - 1.0, -1.0, 1.0))
    if abs(u) < 0.1:
        key = "neutral" if truthful else str(rng.choice(["positive", "negative"]))
        return _sentence(rng, _cue_word(rng, key, lang), lang)
    polarity = "positive" if (u > 0) == truthful else "negative"
    level = min(int(abs(u) * len(_INTENSITY_EN)), len(_INTENSITY_EN) - 1)
    adverb = (_INTENSITY_ZH if lang == "zh" else _INTENSITY_EN)[level]
    cue = _cue_word(rng, polarity, lang)
    return _sentence(rng, f"{adverb}{cue}" if lang == "zh" else f"{adverb} {cue}", lang)
