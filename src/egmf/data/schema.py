"""The one sample schema every loader produces and every model consumes (DESIGN.md, data flow).

A loader returns a :class:`BenchmarkData`: dataset-level facts (:class:`DatasetInfo`) plus a list of
:class:`Sample` per split. Feature arrays are stored unpadded (``[T, d]`` float32, only real frames);
padding and masks are made once, in :mod:`egmf.data.collate`. A modality that a sample lacks is ``None``.

Besides the frame sequences of the three modalities, a sample may carry *pooled sets*: one utterance-level
vector per named set (``egmf extract`` writes eGeMAPS functionals ``egemaps`` (88-d), mean+std of ``mfcc`` and
``whisper`` frames, the ``sentence`` embedding), in ``Sample.pooled`` as ``[1, d]`` arrays. Wherever dims,
batch tensors or statistics are keyed, a pooled set is keyed ``"pooled:<set>"`` (:func:`pooled_key`) next to
the modality names, so one dict serves both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Task = Literal["erc", "msa"]
Lang = Literal["en", "zh"]
MODALITIES = ("text", "audio", "vision")
SPLITS = ("train", "valid", "test")
POOLED_PREFIX = "pooled:"


def pooled_key(name: str) -> str:
    """The key of pooled set ``name`` in feature dims, batches and statistics: ``"pooled:<name>"``."""
    return f"{POOLED_PREFIX}{name}"


def is_pooled_key(key: str) -> bool:
    return key.startswith(POOLED_PREFIX)


def pooled_name(key: str) -> str:
    """``"pooled:egemaps"`` -> ``"egemaps"``."""
    return key[len(POOLED_PREFIX):]

# Label words exactly as the datasets write them; the prompt uses these words as the answer.
MELD_EMOTIONS = ("neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust")
MELD_SENTIMENTS = ("neutral", "positive", "negative")
CHERMA_EMOTIONS = ("愤怒", "厌恶", "恐惧", "高兴", "平静", "悲伤", "惊奇")
# English glosses of the CHERMA words, in the same order (anger disgust fear happy neutral sad surprise).
CHERMA_GLOSS = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")


@dataclass
class Sample:
    """One utterance with its features and label.

    ``label`` is an emotion word from ``DatasetInfo.labels`` for ERC, a float score inside
    ``DatasetInfo.score_range`` for MSA, or ``None`` for unlabelled data.
    ``context`` holds the earlier utterances of the same dialogue as ``(speaker, text)``, oldest first.
    ``extra_labels`` carries secondary targets: MELD ``sentiment``; SIMS ``T``/``A``/``V`` unimodal scores.
    ``pooled`` maps a pooled set's name (``egemaps``, ``whisper``, ``sentence``, ...) to its ``[1, d]`` vector.
    """

    id: str
    text: str
    label: str | float | None
    dataset: str
    task: Task
    lang: Lang
    speaker: str | None = None
    context: list[tuple[str, str]] = field(default_factory=list)
    text_feats: np.ndarray | None = None
    audio: np.ndarray | None = None
    vision: np.ndarray | None = None
    extra_labels: dict[str, str | float] = field(default_factory=dict)
    pooled: dict[str, np.ndarray] = field(default_factory=dict)

    def features(self, modality: str) -> np.ndarray | None:
        """The ``[T, d]`` array of a modality (``text`` means the text features), or ``None``.

        A pooled-set key (``"pooled:<set>"``) gives that set's ``[1, d]`` vector, or ``None``.
        """
        if is_pooled_key(modality):
            return self.pooled.get(pooled_name(modality))
        if modality == "text":
            return self.text_feats
        if modality in ("audio", "vision"):
            return getattr(self, modality)
        raise KeyError(f"unknown modality {modality!r}; expected one of {MODALITIES}")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a metric need to know about a dataset, independent of its split sizes."""

    name: str
    task: Task
    lang: Lang
    labels: tuple[str, ...] = ()
    score_range: tuple[float, float] | None = None
    metric_family: str = ""  # "erc", "mosi" (MOSI/MOSEI definitions) or "sims" (SIMS definitions)

    def __post_init__(self):
        if self.task == "erc" and not self.labels:
            raise ValueError(f"dataset {self.name}: an ERC dataset needs its label words")
        if self.task == "msa" and self.score_range is None:
            raise ValueError(f"dataset {self.name}: an MSA dataset needs its score range")


@dataclass
class BenchmarkData:
    """A loaded dataset: its facts and its samples per split (``train``, ``valid``, ``test``)."""

    info: DatasetInfo
    splits: dict[str, list[Sample]]
    source: str = ""

    def feature_dims(self) -> dict[str, int]:
        """The feature dim of each modality present anywhere in the data (0 when absent), and of each pooled
        set some sample has, under ``"pooled:<set>"`` (absent sets have no key)."""
        dims = {m: 0 for m in MODALITIES}
        for samples in self.splits.values():
            for s in samples:
                for m in MODALITIES:
                    a = s.features(m)
                    if a is not None and dims[m] == 0:
                        dims[m] = int(a.shape[1])
                for name, a in s.pooled.items():
                    dims.setdefault(pooled_key(name), int(a.shape[-1]))
        return dims
