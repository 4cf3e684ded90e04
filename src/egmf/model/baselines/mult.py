"""A MulT-style cross-modal transformer (Tsai et al., ACL 2019), with EGMF's heads and masks.

As in MulT: each modality projected to a common width with sinusoidal positions (here by the EGMF
modality encoders, shared with the fusion, then a temporal Conv1d of ``conv_kernel``); for each target
modality, a directional cross-modal transformer from each other modality (queries from the target,
keys/values from the source); the target's cross-modal outputs concatenated and
passed through a self-attention transformer; the last state of each target concatenated and sent through a
residual projection. Differences, on purpose: unaligned sequences are handled with key-padding masks (so
padding never changes a sample's output), the concatenation is mapped back to ``hidden`` before self-
attention, and each target modality's vector comes with a presence flag so a missing modality is a mask,
never a crash.
"""

from __future__ import annotations

import torch
from torch import nn

from egmf.data.collate import Batch
from egmf.data.schema import DatasetInfo
from egmf.model.baselines.config import BaselineConfig
from egmf.model.baselines.heads import BaselineModel
from egmf.model.baselines.inputs import BaselineInputs, last_state, masked_mean


def safe_key_padding(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(key_padding_mask, has_any)``: a row with no real key may attend to its first (zero) frame, which
    keeps softmax finite; the caller multiplies that row's attention output by ``has_any`` (0)."""
    has = mask.any(1)
    kpm = ~mask
    if not bool(has.all()):
        kpm = kpm.clone()
        kpm[~has, 0] = False
    return kpm, has.to(torch.float32)


class AttentionBlock(nn.Module):
    """Pre-norm transformer layer; cross-modal when ``kv`` is given, self-attention otherwise."""

    def __init__(self, hidden: int, n_heads: int, dropout: float):
        super().__init__()
        self.ln_q, self.ln_kv, self.ln_ff = nn.LayerNorm(hidden), nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, n_heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(
            nn.Linear(hidden, 4 * hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * hidden, hidden)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, kv_mask: torch.Tensor, kv: torch.Tensor | None = None) -> torch.Tensor:
        q = self.ln_q(x)
        k = q if kv is None else self.ln_kv(kv)
        kpm, has = safe_key_padding(kv_mask)
        a, _ = self.attn(q, k, k, key_padding_mask=kpm, need_weights=False)
        x = x + self.drop(a) * has.to(a.dtype)[:, None, None]
        return x + self.drop(self.ff(self.ln_ff(x)))


class Stack(nn.Module):
    def __init__(self, hidden: int, n_heads: int, dropout: float, layers: int):
        super().__init__()
        self.blocks = nn.ModuleList(AttentionBlock(hidden, n_heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x, kv_mask, kv=None):
        for b in self.blocks:
            x = b(x, kv_mask, kv)
        return self.norm(x)


class MulT(BaselineModel):
    def __init__(self, cfg: BaselineConfig, infos: dict[str, DatasetInfo], feature_dims: dict[str, dict[str, int]],
                 class_weighting: str = "none"):
        super().__init__(cfg, infos, feature_dims, class_weighting)
        h = cfg.hidden
        self.inputs = BaselineInputs(feature_dims, h, cfg.dropout, cfg.max_frames, kernel=cfg.conv_kernel)
        self.modalities = mods = self.inputs.modalities
        self.cross = nn.ModuleDict(
            {f"{s}_to_{t}": Stack(h, cfg.n_heads, cfg.dropout, cfg.layers) for t in mods for s in mods if s != t}
        )
        # The concatenation of a target's cross-modal streams, mapped back to hidden (identity with one modality).
        self.merge = nn.ModuleDict({t: nn.Linear(h * max(1, len(mods) - 1), h) for t in mods})
        self.self_attn = nn.ModuleDict({t: Stack(h, cfg.n_heads, cfg.dropout, cfg.layers) for t in mods})
        d = len(mods) * h + len(mods)
        self.proj1, self.proj2 = nn.Linear(d, d), nn.Linear(d, d)
        self.out = nn.Linear(d, h)
        self.drop = nn.Dropout(cfg.dropout)

    def encode(self, batch: Batch) -> torch.Tensor:
        seqs = self.inputs(batch)
        parts, flags = [], []
        for t in self.modalities:
            xt, mt = seqs[t]
            streams = [self.cross[f"{s}_to_{t}"](xt, seqs[s][1], seqs[s][0]) for s in self.modalities if s != t]
            z = self.merge[t](torch.cat(streams, -1)) if streams else self.merge[t](xt)
            z = self.self_attn[t](z, mt)
            pooled = last_state(z, mt) if self.cfg.pooling == "last" else masked_mean(z, mt)
            present = mt.any(1).to(z.dtype).unsqueeze(-1)
            parts.append(pooled * present)
            flags.append(present)
        f = torch.cat(parts + flags, -1)
        f = f + self.proj2(self.drop(torch.relu(self.proj1(f))))  # MulT's residual output block
        return self.out(f)
