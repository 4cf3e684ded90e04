"""``ExpertFusion``: modality encoders -> active experts -> hierarchical gating -> K pseudo tokens."""

from __future__ import annotations

import torch
from torch import nn

from egmf.data.collate import Batch
from egmf.data.schema import MODALITIES
from egmf.model.base import FusionOutput
from egmf.model.fusion.config import FusionConfig
from egmf.model.fusion.encoders import ModalityEncoders, masked_mean
from egmf.model.fusion.experts import build_experts
from egmf.model.fusion.gating import HierarchicalGate
from egmf.model.fusion.projector import PseudoTokenProjector


class ExpertFusion(nn.Module):
    """The EGMF fusion.

    ``feature_dims`` maps each source (dataset name) to its per-modality input dims (0 = the dataset lacks
    that modality); ``out_dim`` is the consumer's hidden size (the LLM's); ``target_norm`` the L2 norm the
    pseudo tokens start with, ``anchors`` (``[K, out_dim]``) the embeddings they start from and
    ``residual_scale`` the residual's share of ``target_norm`` beside them (see :mod:`egmf.model.fusion.projector`).
    """

    def __init__(self, cfg: FusionConfig, feature_dims: dict[str, dict[str, int]], out_dim: int,
                 target_norm: float | None = None, anchors: torch.Tensor | None = None, residual_scale: float = 1.0):
        super().__init__()
        if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 1:
            raise ValueError(f"ExpertFusion: out_dim must be an int >= 1 (the LLM hidden size), got {out_dim!r}")
        self.cfg = cfg
        self.out_dim = out_dim
        self.expert_names = cfg.active_experts
        ff = cfg.ff_mult * cfg.d_model
        self.encoders = ModalityEncoders(
            feature_dims, cfg.d_model, cfg.dropout, cfg.max_frames_per_modality, cfg.missing_modality,
            stats_token=cfg.stats_token,
        )
        self.experts = build_experts(
            self.expert_names, cfg.d_model, cfg.n_heads, ff, cfg.local_kernel_sizes,
            cfg.semantic_layers, cfg.global_layers, cfg.dropout,
        )
        self.gate = HierarchicalGate(
            self.expert_names, cfg.d_model, cfg.gate_hidden, cfg.modality_gating, cfg.expert_gating,
            cfg.gate_temperature,
        )
        self.projector = PseudoTokenProjector(
            cfg.d_model, cfg.n_heads, cfg.num_pseudo_tokens, out_dim, ff, target_norm, cfg.dropout, anchors,
            residual_scale,
        )

    @property
    def num_tokens(self) -> int:
        """K: the pseudo tokens of each sample's output (``FusionOutput.tokens`` is ``[B, K, out_dim]``)."""
        return self.projector.num_tokens

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self.encoders.feature_dims)

    def forward(self, features: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
                sources: list[str]) -> FusionOutput:
        tokens, token_masks, present = self.encoders(features, masks, sources)
        # The gates' view of the sample: the mean of its present modalities' pooled encodings.
        pooled = torch.stack([masked_mean(tokens[m], token_masks[m]) for m in MODALITIES], 1)
        p = present.to(pooled.dtype).unsqueeze(-1)
        summary = (pooled * p).sum(1) / p.sum(1).clamp_min(1.0)

        expert_vecs = {e: self.experts[e](tokens, token_masks) for e in self.expert_names}
        fused, joint, gates, balance = self.gate(expert_vecs, summary, present)
        memory = torch.cat([expert_vecs[e] for e in self.expert_names], 1)  # [B, E*3, d], expert-major
        out = self.projector(memory, joint.flatten(1), fused)
        aux = balance * self.cfg.gate_balance_weight if self.cfg.gate_balance_weight > 0 else balance.new_zeros(())
        return FusionOutput(tokens=out, gates=gates, aux_loss=aux, expert_names=self.expert_names, fused=fused)

    def forward_batch(self, batch: Batch) -> FusionOutput:
        """Fuse a collated :class:`~egmf.data.collate.Batch` (each sample's ``dataset`` is its source)."""
        return self(batch.features, batch.masks, [s.dataset for s in batch.samples])
