"""Late-fusion MLP: the simplest multimodal baseline (no LLM, no cross-modal interaction).

Each modality is projected (with its dataset's own weights), mean-pooled over its real frames and passed
through its own MLP; the modality vectors are concatenated -- an absent modality as zeros plus a presence
flag of 0, so "missing" is distinguishable from "all-zero features" -- and a fusion MLP feeds one head per
dataset.
"""

from __future__ import annotations

import torch
from torch import nn

from egmf.data.collate import Batch
from egmf.data.schema import DatasetInfo
from egmf.model.baselines.config import BaselineConfig
from egmf.model.baselines.heads import BaselineModel, mlp
from egmf.model.baselines.inputs import SourceProjection, masked_mean


class LateFusionMLP(BaselineModel):
    def __init__(self, cfg: BaselineConfig, infos: dict[str, DatasetInfo], feature_dims: dict[str, dict[str, int]]):
        super().__init__(cfg, infos, feature_dims)
        h = cfg.hidden
        self.inputs = SourceProjection(feature_dims, h, kernel=1)
        self.modalities = self.inputs.modalities
        # LayerNorm first: raw benchmark features differ in scale by orders of magnitude between sources.
        self.unimodal = nn.ModuleDict(
            {m: nn.Sequential(nn.LayerNorm(h), mlp(h, h, cfg.layers, cfg.dropout)) for m in self.modalities}
        )
        n = len(self.modalities)
        self.fusion = mlp(n * h + n, h, cfg.layers, cfg.dropout)

    def encode(self, batch: Batch) -> torch.Tensor:
        seqs = self.inputs(batch)
        parts, flags = [], []
        for m in self.modalities:
            x, mask = seqs[m]
            present = mask.any(1).to(x.dtype).unsqueeze(-1)
            parts.append(self.unimodal[m](masked_mean(x, mask)) * present)
            flags.append(present)
        return self.fusion(torch.cat(parts + flags, dim=-1))
