"""What the baseline tests share: an ERC and an MSA source (one with a dot in its name), samples whose
features carry their label, and a builder of either baseline."""

from __future__ import annotations

import numpy as np
import torch

from egmf.data.schema import DatasetInfo, Sample
from egmf.model.baselines import BaselineConfig, LateFusionMLP, MulT


ERC = DatasetInfo("erc_a", "erc", "en", labels=("neutral", "joy", "anger"), metric_family="erc")
MSA = DatasetInfo("msa.b", "msa", "en", score_range=(-3.0, 3.0), metric_family="mosi")  # a dot on purpose
DIMS = {"erc_a": {"text": 0, "audio": 6, "vision": 5}, "msa.b": {"text": 8, "audio": 4, "vision": 0}}
SETS = {"erc": [ERC], "msa": [MSA], "mixed": [ERC, MSA]}
MODELS_UNDER_TEST = {"late_fusion": LateFusionMLP, "mult": MulT}
CASES = [(m, s) for m in MODELS_UNDER_TEST for s in SETS]


def small_cfg(**kw) -> BaselineConfig:
    base = dict(hidden=16, layers=1, n_heads=2, dropout=0.1, conv_kernel=3)
    base.update(kw)
    return BaselineConfig(**base)


def make_samples(infos, n_per=6, seed=0, lengths=(2, 7)) -> list[Sample]:
    """Samples whose features carry their label (class direction / score times a direction), interleaved."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_per):
        for info in infos:
            dims = DIMS[info.name]
            if info.task == "erc":
                c = k % len(info.labels)
                label, signal = info.labels[c], np.eye(8)[c]
            else:
                label = float(rng.uniform(-2.5, 2.5))
                # The score moves the direction, not only the norm (the encoders' LayerNorm removes the norm).
                signal = np.tile([label / 3.0, 1.0, -label / 3.0, 0.5], 2)
            feats = {}
            for m in ("text", "audio", "vision"):
                if dims[m]:
                    t = int(rng.integers(lengths[0], lengths[1] + 1))
                    feats[m] = (signal[: dims[m]] + 0.1 * rng.standard_normal((t, dims[m]))).astype(np.float32)
            out.append(Sample(id=f"{info.name}-{k}", text="x", label=label, dataset=info.name, task=info.task,
                              lang="en", text_feats=feats.get("text"), audio=feats.get("audio"),
                              vision=feats.get("vision")))
    return out


def build(model_name, set_name, **kw):
    torch.manual_seed(0)
    infos = {i.name: i for i in SETS[set_name]}
    dims = {n: DIMS[n] for n in infos}
    return MODELS_UNDER_TEST[model_name](small_cfg(**kw), infos, dims), infos
