"""ERC loss weights from the train split's label counts (``model.class_weighting``), one helper for every model.

MELD train is 47% neutral; unweighted, a model learns to answer neutral where it is unsure. ``sqrt`` weights
(~ 1/sqrt(n_c)) are what ``configs/meld.yaml`` sets (chosen on valid, benchmarks/results/quality_meld_epoch1_sqrt.md).
The weights are scaled so the count-weighted mean over train is 1: the loss keeps its scale, and the rates chosen
without weights still apply. MSA samples (a score, no class) always weigh 1.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from egmf.data.schema import DatasetInfo, Sample
from egmf.errors import ConfigError

ClassWeighting = Literal["none", "balanced", "sqrt"]  # the type of ModelConfig.class_weighting
CLASS_WEIGHTINGS = get_args(ClassWeighting)


def check_class_weighting(mode: str) -> str:
    """``mode`` if it is one of :data:`CLASS_WEIGHTINGS`, else the error that names the setting."""
    if mode not in CLASS_WEIGHTINGS:
        raise ConfigError(f"model.class_weighting: got {mode!r}; valid choices: {', '.join(CLASS_WEIGHTINGS)}")
    return mode


def class_weights(counts: dict[str, int], labels: tuple[str, ...], mode: str) -> dict[str, float]:
    """Per-label loss weights from train label counts: ``balanced`` ~ 1/n, ``sqrt`` ~ 1/sqrt(n), ``none`` 1;
    scaled so the count-weighted mean is 1 (the loss keeps its scale). A label absent from train counts as 1."""
    n = {lab: max(int(counts.get(lab, 0)), 1) for lab in labels}
    if check_class_weighting(mode) == "none":
        return {lab: 1.0 for lab in labels}
    raw = {lab: 1.0 / (c if mode == "balanced" else c ** 0.5) for lab, c in n.items()}
    scale = sum(n.values()) / sum(n[lab] * raw[lab] for lab in labels)
    return {lab: raw[lab] * scale for lab in labels}


def fit_class_weights(infos: dict[str, DatasetInfo], samples: list[Sample], mode: str) -> dict[str, dict[str, float]]:
    """``{dataset: {label: weight}}`` for each ERC dataset of ``infos`` from the labels of ``samples`` (the train
    split); empty under ``none``, so every sample then weighs 1."""
    if mode == "none":
        return {}
    out = {}
    for name, info in infos.items():
        if info.task != "erc":
            continue
        counts: dict[str, int] = {}
        for s in samples:
            if s.dataset == name and s.label is not None:
                counts[str(s.label)] = counts.get(str(s.label), 0) + 1
        out[name] = class_weights(counts, info.labels, mode)
    return out


def sample_weights(weights: dict[str, dict[str, float]], samples: list[Sample], device=None) -> torch.Tensor:
    """``[B]`` loss weight of each sample under ``weights`` (:func:`fit_class_weights`); 1 where none applies."""
    return torch.tensor([weights.get(s.dataset, {}).get(str(s.label), 1.0) for s in samples],
                        dtype=torch.float32, device=device)
