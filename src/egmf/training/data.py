"""Load the datasets a run config names into one pool of samples per split.

Several datasets train together (one model, several tasks): their samples are concatenated per split and
each keeps its ``dataset`` name, which selects its prompt, its label words and its feature projection.

:func:`feature_statistics` computes the per-dimension mean/std of the train split that every model
standardises its inputs with (:mod:`egmf.model.standardize`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from egmf.data.registry import load_dataset
from egmf.data.schema import MODALITIES, SPLITS, DatasetInfo, Sample, is_pooled_key, pooled_key, pooled_name
from egmf.data.validate import refuse_kept_nan
from egmf.errors import ConfigError, DataFormatError
from egmf.model.config import text_feature_dim
from egmf.model.standardize import Statistics, safe_std

logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    infos: dict[str, DatasetInfo]
    feature_dims: dict[str, dict[str, int]]
    splits: dict[str, list[Sample]]

    def split(self, name: str) -> list[Sample]:
        return self.splits.get(name, [])


def load_training_data(data_cfg, text_source: str = "dataset", sentence_encoder: str = "auto",
                       splits: Sequence[str] = SPLITS) -> TrainingData:
    """Load every dataset of ``data_cfg`` (a :class:`egmf.config.DataConfig`).

    ``splits`` names the splits kept (the others come back empty, unencoded): an evaluation that reads only a
    test split need not pay the sentence encoder for a train split of 14,000 texts. Training needs ``train``.

    ``text_source="sentence"`` replaces the text features by one sentence vector per utterance (from
    ``sentence_encoder``, see :func:`apply_text_source`);
    ``"auto"`` does so only for the datasets that ship no text features; ``"none"`` and ``"llm"`` drop the
    dataset's text features (the LLM sees the words in the prompt).
    """
    infos: dict[str, DatasetInfo] = {}
    dims: dict[str, dict[str, int]] = {}
    bad = sorted(set(splits) - set(SPLITS))
    if bad or not splits:
        raise ConfigError(f"splits: invalid value {bad[0] if bad else 'none'!r}; valid choices: {', '.join(SPLITS)}")
    by_split: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for entry in data_cfg.datasets:
        refuse_kept_nan(entry.options, f"data.datasets ({entry.name}).options")
        data = load_dataset(entry.name, entry.path, **entry.options)
        name = data.info.name
        if name in infos:
            raise ConfigError(f"data.datasets: dataset {name!r} appears twice; give each a distinct name")
        infos[name] = data.info
        for split in splits:
            samples = data.splits.get(split, [])
            limit = data_cfg.limit.get(split)
            if limit and len(samples) > limit:
                # A seeded subset, not the first N: the first N of a dialogue-ordered split are one show's episode.
                keep = np.sort(np.random.default_rng(0).choice(len(samples), size=limit, replace=False))
                samples = [samples[i] for i in keep]
            by_split[split].extend(samples)
        dims[name] = data.feature_dims()
        logger.info("loaded %s from %s: %s", name, entry.path, {s: len(v) for s, v in data.splits.items()})
    replaced = apply_text_source([s for v in by_split.values() for s in v], text_source, sentence_encoder)
    for name in replaced:  # the sentence vectors replaced (or supplied) these datasets' text features
        dims[name]["text"] = next(
            (int(s.text_feats.shape[1]) for v in by_split.values() for s in v if s.dataset == name), 0
        )
    for d in dims.values():
        d["text"] = text_feature_dim(text_source, d["text"])  # the data's view: no LLM embeddings here
    _truncate(by_split, data_cfg.max_frames)
    if data_cfg.speaker_normalization:
        for samples in by_split.values():  # each split by its own speakers' statistics: no split sees another
            normalize_per_speaker(samples)
    if "train" in splits and not by_split["train"]:
        raise ConfigError("data.datasets: the train split is empty in every dataset")
    return TrainingData(infos=infos, feature_dims=dims, splits=by_split)


def _truncate(splits: dict[str, list[Sample]], max_frames: dict[str, int]) -> None:
    for samples in splits.values():
        for s in samples:
            for m, limit in max_frames.items():
                a = s.features(m)
                if a is not None and a.shape[0] > limit:
                    setattr(s, "text_feats" if m == "text" else m, a[:limit])


def apply_text_source(samples: list[Sample], text_source: str, sentence_encoder: str = "auto") -> list[str]:
    """Give ``samples`` the text features ``model.text_source`` asks for, in place; returns the datasets whose
    text features are now sentence vectors.

    ``sentence``: one sentence vector per utterance, from ``sentence_encoder`` (``model.sentence_encoder``;
    ``auto`` picks by each sample's language, :func:`egmf.features.text.encoder_for`: multilingual-e5-small for
    Chinese, MiniLM for English); ``auto``: the same for the samples of every dataset
    none of whose given samples has text features, the dataset's own features elsewhere; ``none`` and ``llm``:
    no text features (the LLM reads the words in the prompt, and ``llm`` feeds the fusion the LLM's own
    embeddings of them); ``dataset``: the dataset's features, untouched. Training, evaluation and prediction all
    call this (``auto`` decides per dataset from the samples given, so pass a dataset's samples together).
    """
    if text_source in ("none", "llm"):
        for s in samples:
            s.text_feats = None
        return []
    if text_source == "sentence":
        chosen = samples
    elif text_source == "auto":
        shipped = {s.dataset for s in samples if s.text_feats is not None}
        chosen = [s for s in samples if s.dataset not in shipped]
    else:
        return []
    if not chosen:
        return []
    from egmf.features.sentence_cache import cached_sentence_embeddings
    from egmf.features.text import encoder_for

    by_encoder: dict[str, list[Sample]] = {}
    for s in chosen:
        by_encoder.setdefault(encoder_for(sentence_encoder, s.lang), []).append(s)
    for encoder, group in by_encoder.items():
        vectors = cached_sentence_embeddings([s.text for s in group], encoder)
        for s, v in zip(group, vectors):
            s.text_feats = np.asarray(v, dtype=np.float32)[None, :]
    return list(dict.fromkeys(s.dataset for s in chosen))


def feature_statistics(samples: list[Sample]) -> Statistics:
    """Per-dimension ``(mean, std)`` of every modality and pooled set, per dataset, over all real frames of
    ``samples`` (pass the train split only): ``{dataset: {"audio" | "pooled:egemaps" | ...: (mean, std)}}``.

    Accumulated per array with Chan's parallel update in float64 (returned as float64), so large offsets
    (eGeMAPS values in the thousands) lose no precision. ``std`` is the population std; a (near-)constant dimension is left for
    :func:`egmf.model.standardize.safe_std` to set to 1. A dataset/key with no frames has no entry.
    """
    acc: dict[tuple[str, str], list] = {}  # (dataset, key) -> [count, mean, M2]
    for s in samples:
        keys = [(m, s.features(m)) for m in MODALITIES] + [(pooled_key(n), a) for n, a in s.pooled.items()]
        for key, a in keys:
            if a is None or a.size == 0:
                continue
            a = np.asarray(a, dtype=np.float64).reshape(-1, a.shape[-1])
            n_b, mean_b = a.shape[0], a.mean(0)
            m2_b = ((a - mean_b) ** 2).sum(0)
            cur = acc.get((s.dataset, key))
            if cur is None:
                acc[(s.dataset, key)] = [n_b, mean_b, m2_b]
                continue
            n_a, mean_a, m2_a = cur
            if mean_a.shape != mean_b.shape:
                raise DataFormatError(f"dataset {s.dataset}", f"{key} features of sample {s.id!r}",
                                      f"dim {mean_a.shape[0]} (as the earlier samples)", mean_b.shape[0])
            n = n_a + n_b
            delta = mean_b - mean_a
            cur[0], cur[1], cur[2] = n, mean_a + delta * (n_b / n), m2_a + m2_b + delta**2 * (n_a * n_b / n)
    out: Statistics = {}
    for (ds, key), (n, mean, m2) in acc.items():
        out.setdefault(ds, {})[key] = (mean, np.sqrt(m2 / n))
    return out


# A speaker with fewer samples than this in a split has no statistics of its own worth the name (one clip's pooled
# vector would become all zeros): such speakers, and samples with no speaker, are normalised as one group.
SPEAKER_MIN_SAMPLES = 10


def normalize_per_speaker(samples: list[Sample], min_samples: int = SPEAKER_MIN_SAMPLES) -> dict[str, int]:
    """Standardise, in place, each speaker's audio and vision frames and acoustic pooled sets with that speaker's
    own per-dimension mean/std (``data.speaker_normalization``); returns ``{dataset: number of speaker groups}``.

    Pass one split's samples: the statistics are computed over ``samples`` only, per (dataset, speaker), with
    :func:`feature_statistics` (all real frames; a constant dimension keeps std 1, :func:`safe_std`). Speakers
    with fewer than ``min_samples`` samples and samples without a speaker form one group per dataset. Text
    features and the ``sentence`` pooled set describe the words, not the voice, and are left as they are.
    """
    from egmf.model.fusion.encoders import pooled_modality

    groups: dict[tuple[str, str | None], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.dataset, s.speaker), []).append(s)
    merged: dict[tuple[str, str | None], list[Sample]] = {}
    for (dataset, speaker), members in groups.items():
        key = (dataset, speaker if speaker is not None and len(members) >= min_samples else None)
        merged.setdefault(key, []).extend(members)
    counts: dict[str, int] = {}
    for (dataset, _), members in merged.items():
        counts[dataset] = counts.get(dataset, 0) + 1
        for key, (mean, std) in feature_statistics(members).get(dataset, {}).items():
            if key == "text" or (is_pooled_key(key) and pooled_modality(key) == "text"):
                continue
            std = safe_std(mean, std)
            for s in members:
                a = s.features(key)
                if a is None or a.size == 0:
                    continue
                z = ((np.asarray(a, dtype=np.float64) - mean) / std).astype(np.float32)
                if is_pooled_key(key):
                    s.pooled[pooled_name(key)] = z
                else:
                    setattr(s, key, z)
    return counts


class SampleList(torch.utils.data.Dataset):
    """A list of samples as a map-style dataset; :func:`egmf.data.collate.collate` makes the batches."""

    def __init__(self, samples: list[Sample]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]


def present_modalities(dims: dict[str, dict[str, int]]) -> list[str]:
    return [m for m in MODALITIES if any(d.get(m, 0) for d in dims.values())]
