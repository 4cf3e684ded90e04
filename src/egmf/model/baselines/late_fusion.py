"""Late-fusion MLP: the simplest multimodal baseline (no LLM, no cross-modal interaction).

Each modality is encoded by the EGMF modality encoders (its dataset's own projection), mean-pooled over
its real frames and passed through its own MLP; the modality vectors are concatenated -- an absent
modality as zeros plus a presence flag of 0, so "missing" is distinguishable from "all-zero features" --
and a fusion MLP feeds one head per dataset. Both MLPs are pre-norm residual stacks
(:class:`~egmf.model.baselines.heads.ResidualMLP`) and the heads start small (near-uniform logits): a plain
Linear/ReLU stack sent every sample to one class at init and passed the input 1/30 of MulT's gradient.
"""

from __future__ import annotations

import torch
from torch import nn

from egmf.data.collate import Batch
from egmf.data.schema import DatasetInfo
from egmf.model.baselines.config import BaselineConfig
from egmf.model.baselines.heads import BaselineModel, ResidualMLP
from egmf.model.baselines.inputs import BaselineInputs, masked_mean


class LateFusionMLP(BaselineModel):
    def __init__(self, cfg: BaselineConfig, infos: dict[str, DatasetInfo], feature_dims: dict[str, dict[str, int]],
                 class_weighting: str = "none"):
        super().__init__(cfg, infos, feature_dims, class_weighting)
        h = cfg.hidden
        self.inputs = BaselineInputs(feature_dims, h, cfg.dropout, cfg.max_frames, kernel=1)
        self.modalities = self.inputs.modalities
        self.unimodal = nn.ModuleDict({m: ResidualMLP(h, h, cfg.layers, cfg.dropout) for m in self.modalities})
        n = len(self.modalities)
        self.fusion = ResidualMLP(n * h + n, h, cfg.layers, cfg.dropout)
        self.heads.init_small()

    def encode(self, batch: Batch) -> torch.Tensor:
        seqs = self.inputs(batch)
        parts, flags = [], []
        for m in self.modalities:
            x, mask = seqs[m]
            present = mask.any(1).to(x.dtype).unsqueeze(-1)
            parts.append(self.unimodal[m](masked_mean(x, mask)) * present)
            flags.append(present)
        return self.fusion(torch.cat(parts + flags, dim=-1))
