"""Load the datasets a run config names into one pool of samples per split.

Several datasets train together (one model, several tasks): their samples are concatenated per split and
each keeps its ``dataset`` name, which selects its prompt, its label words and its feature projection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from egmf.data.registry import load_dataset
from egmf.data.schema import MODALITIES, SPLITS, DatasetInfo, Sample
from egmf.data.validate import refuse_kept_nan
from egmf.errors import ConfigError
from egmf.model.config import text_feature_dim

logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    infos: dict[str, DatasetInfo]
    feature_dims: dict[str, dict[str, int]]
    splits: dict[str, list[Sample]]

    def split(self, name: str) -> list[Sample]:
        return self.splits.get(name, [])


def load_training_data(data_cfg, text_source: str = "dataset") -> TrainingData:
    """Load every dataset of ``data_cfg`` (a :class:`egmf.config.DataConfig`).

    ``text_source="sentence"`` replaces the text features by one MiniLM sentence vector per utterance;
    ``"none"`` and ``"llm"`` drop the dataset's text features (the LLM sees the words in the prompt).
    """
    infos: dict[str, DatasetInfo] = {}
    dims: dict[str, dict[str, int]] = {}
    splits: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for entry in data_cfg.datasets:
        refuse_kept_nan(entry.options, f"data.datasets ({entry.name}).options")
        data = load_dataset(entry.name, entry.path, **entry.options)
        name = data.info.name
        if name in infos:
            raise ConfigError(f"data.datasets: dataset {name!r} appears twice; give each a distinct name")
        infos[name] = data.info
        for split in SPLITS:
            samples = data.splits.get(split, [])
            limit = data_cfg.limit.get(split)
            if limit and len(samples) > limit:
                # A seeded subset, not the first N: the first N of a dialogue-ordered split are one show's episode.
                keep = np.sort(np.random.default_rng(0).choice(len(samples), size=limit, replace=False))
                samples = [samples[i] for i in keep]
            splits[split].extend(samples)
        dims[name] = data.feature_dims()
        logger.info("loaded %s from %s: %s", name, entry.path, {s: len(v) for s, v in data.splits.items()})
    apply_text_source([s for v in splits.values() for s in v], text_source)
    if text_source == "sentence":  # the sentence vectors replaced every dataset's text features
        sentence_dim = next((int(s.text_feats.shape[1]) for v in splits.values() for s in v), 0)
        for d in dims.values():
            d["text"] = sentence_dim
    for d in dims.values():
        d["text"] = text_feature_dim(text_source, d["text"])  # the data's view: no LLM embeddings here
    _truncate(splits, data_cfg.max_frames)
    if not splits["train"]:
        raise ConfigError("data.datasets: the train split is empty in every dataset")
    return TrainingData(infos=infos, feature_dims=dims, splits=splits)


def _truncate(splits: dict[str, list[Sample]], max_frames: dict[str, int]) -> None:
    for samples in splits.values():
        for s in samples:
            for m, limit in max_frames.items():
                a = s.features(m)
                if a is not None and a.shape[0] > limit:
                    setattr(s, "text_feats" if m == "text" else m, a[:limit])


def apply_text_source(samples: list[Sample], text_source: str) -> None:
    """Give ``samples`` the text features ``model.text_source`` asks for, in place.

    ``sentence``: one MiniLM sentence vector per utterance; ``none`` and ``llm``: no text features (the LLM
    reads the words in the prompt, and ``llm`` feeds the fusion the LLM's own embeddings of them);
    ``dataset``: the dataset's features, untouched. Training, evaluation and prediction all call this.
    """
    if text_source in ("none", "llm"):
        for s in samples:
            s.text_feats = None
    elif text_source == "sentence" and samples:
        from egmf.features.text import sentence_embeddings

        vectors = sentence_embeddings([s.text for s in samples])
        for s, v in zip(samples, vectors):
            s.text_feats = np.asarray(v, dtype=np.float32)[None, :]


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
