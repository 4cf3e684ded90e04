"""What the fusion tests share: two sources whose dims differ in every modality, a tiny fusion
builder and mixed samples of generated features."""

from __future__ import annotations

import numpy as np
import torch

from egmf.data.collate import collate
from egmf.data.schema import MODALITIES, Sample
from egmf.model.fusion import EXPERTS, ExpertFusion, FusionConfig


# Two sources whose dims differ in every modality, one of them without text features (like MMSA audio/vision
# with text from the LLM); small so the whole file stays fast.
DIMS = {"alpha": {"text": 12, "audio": 5, "vision": 7}, "beta": {"text": 0, "audio": 9, "vision": 4}}
OUT = 24
TINY = dict(d_model=16, n_heads=2, gate_hidden=8, dropout=0.0, global_layers=1)


def cfg(**kw) -> FusionConfig:
    return FusionConfig(**{**TINY, **kw})


def expert_switches(experts) -> dict:
    return {f"use_{e}": e in experts for e in EXPERTS}


def build(seed=0, dims=DIMS, out_dim=OUT, target_norm=None, **kw) -> ExpertFusion:
    torch.manual_seed(seed)
    return ExpertFusion(cfg(**kw), dims, out_dim, target_norm=target_norm).eval()


def sample(rng, source, lengths, missing=()) -> Sample:
    """A sample of ``source`` with ``lengths[m]`` frames per modality; ``missing`` modalities are None."""
    feats = {}
    for m in MODALITIES:
        d = DIMS[source][m]
        feats[m] = None if d == 0 or m in missing else rng.standard_normal((lengths[m], d)).astype(np.float32)
    return Sample(id=f"{source}-{rng.integers(1e9)}", text="hi", label=0.0, dataset=source, task="msa",
                  lang="en", text_feats=feats["text"], audio=feats["audio"], vision=feats["vision"])


def mixed_samples(seed=0) -> list[Sample]:
    """Mixed sources, lengths on both sides of max_frames=6, and a sample missing audio."""
    rng = np.random.default_rng(seed)
    return [
        sample(rng, "alpha", {"text": 3, "audio": 11, "vision": 2}),
        sample(rng, "beta", {"text": 0, "audio": 4, "vision": 9}),
        sample(rng, "alpha", {"text": 8, "audio": 1, "vision": 6}, missing=("audio",)),
        sample(rng, "alpha", {"text": 1, "audio": 6, "vision": 13}),
    ]


def run(fusion, samples):
    return fusion.forward_batch(collate(samples))
