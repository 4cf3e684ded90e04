"""The three experts. Each maps encoded modality tokens to one vector per modality, ``[B, 3, d_model]``.

- :class:`LocalExpert`: subtle, short-range cues; parallel depthwise temporal convolutions of several widths over
  each modality on its own.
- :class:`SemanticExpert`: cross-modal relationships; each target modality attends to each other modality
  (directional, MulT-style), one attention stack per ordered pair.
- :class:`GlobalExpert`: long-range dependencies; one transformer over all modalities' tokens together
  (the encoders' modality-type embeddings tell them apart).

Every expert honours the masks: padding never changes a sample's output, and an absent modality gives a
zero vector (the gate then gives it weight 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from egmf.data.schema import MODALITIES
from egmf.model.fusion.encoders import masked_mean


def _pool_all(tokens: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.stack([masked_mean(tokens[m], masks[m]) for m in MODALITIES], 1)


def _nonempty(mask: torch.Tensor) -> torch.Tensor:
    """Unmask slot 0 of rows that have no real key, so attention softmax never sees only -inf (NaN).

    Whatever those rows produce is discarded by the caller (weight 0 or masked pooling).
    """
    empty = ~mask.any(1)
    if not empty.any():
        return mask
    mask = mask.clone()
    mask[:, 0] |= empty
    return mask


class LocalExpert(nn.Module):
    def __init__(self, d_model: int, kernel_sizes: tuple[int, ...], dropout: float = 0.1):
        super().__init__()
        # Depthwise convolutions (one filter per channel and width, as in Conformer's conv module) followed
        # by one pointwise mix across widths and channels: multi-scale at a fraction of a full conv's cost.
        # Odd kernels with "same" padding are centred: frame t sees t-k//2 .. t+k//2, and the zeros the
        # encoder put on padded frames are exactly the zeros a sample alone gets at its edge.
        self.convs = nn.ModuleDict(
            {
                m: nn.ModuleList(
                    [nn.Conv1d(d_model, d_model, k, padding=k // 2, groups=d_model) for k in kernel_sizes]
                )
                for m in MODALITIES
            }
        )
        self.mix = nn.ModuleDict({m: nn.Linear(len(kernel_sizes) * d_model, d_model) for m in MODALITIES})
        self.norm = nn.ModuleDict({m: nn.LayerNorm(d_model) for m in MODALITIES})
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)

    def forward(self, tokens: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> torch.Tensor:
        out = {}
        for m in MODALITIES:
            x = tokens[m]  # [B, T, d], zero on padding
            convs = self.convs[m]
            if len(convs) == 1:
                scales = convs[0](x.transpose(1, 2)).transpose(1, 2)
            else:
                # One grouped convolution for all widths (narrow kernels zero-padded to the widest):
                # the same result as one call per width, at a third of the calls.
                kmax = max(c.kernel_size[0] for c in convs)
                w = torch.stack([F.pad(c.weight, ((kmax - c.kernel_size[0]) // 2,) * 2) for c in convs], 1)
                bias = torch.stack([c.bias for c in convs], 1).flatten()
                y = F.conv1d(x.transpose(1, 2), w.flatten(0, 1), bias, padding=kmax // 2, groups=x.shape[-1])
                # channels come out as (channel, width); reorder to (width, channel) like a concatenation
                b, _, t = y.shape
                scales = y.view(b, -1, len(convs), t).transpose(1, 2).reshape(b, -1, t).transpose(1, 2)
            out[m] = self.norm[m](x + self.drop(self.act(self.mix[m](scales))))
        return _pool_all(out, masks)


class CrossModalBlock(nn.Module):
    """Target tokens attend to source tokens (post-norm residual block with a feed-forward)."""

    def __init__(self, d_model: int, n_heads: int, ff: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d_model))
        self.norm2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor) -> torch.Tensor:
        a, _ = self.attn(q, kv, kv, key_padding_mask=~kv_mask, need_weights=False)
        h = self.norm1(q + self.drop(a))
        return self.norm2(h + self.drop(self.ff(h)))


class SemanticExpert(nn.Module):
    def __init__(self, d_model: int, n_heads: int, ff: int, layers: int = 1, dropout: float = 0.1):
        super().__init__()
        self.pairs = [(t, s) for t in MODALITIES for s in MODALITIES if t != s]
        self.blocks = nn.ModuleDict(
            {
                f"{t}_from_{s}": nn.ModuleList([CrossModalBlock(d_model, n_heads, ff, dropout) for _ in range(layers)])
                for t, s in self.pairs
            }
        )

    def forward(self, tokens: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> torch.Tensor:
        kv_masks = {m: _nonempty(masks[m]) for m in MODALITIES}
        has = {m: masks[m].any(1).to(tokens[m].dtype)[:, None, None] for m in MODALITIES}
        out = {}
        for t in MODALITIES:
            total, count = torch.zeros_like(tokens[t]), torch.zeros_like(has[t])
            for s in MODALITIES:
                if s == t:
                    continue
                h = tokens[t]
                for block in self.blocks[f"{t}_from_{s}"]:
                    h = block(h, tokens[s], kv_masks[s])
                total = total + has[s] * h
                count = count + has[s]
            # Mean over the partner modalities this sample has; with no partner there is no cross-modal
            # relation to read, so the modality's own encoding passes through.
            out[t] = torch.where(count > 0, total / count.clamp_min(1.0), tokens[t])
        return _pool_all(out, masks)


class GlobalExpert(nn.Module):
    def __init__(self, d_model: int, n_heads: int, ff: int, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, ff, dropout, activation="gelu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, tokens: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> torch.Tensor:
        lengths = [tokens[m].shape[1] for m in MODALITIES]
        x = torch.cat([tokens[m] for m in MODALITIES], 1)
        mask = _nonempty(torch.cat([masks[m] for m in MODALITIES], 1))
        h = self.encoder(x, src_key_padding_mask=~mask)
        parts = dict(zip(MODALITIES, torch.split(h, lengths, 1)))
        return _pool_all(parts, masks)


def build_experts(names: tuple[str, ...], d_model: int, n_heads: int, ff: int, kernel_sizes: tuple[int, ...],
                  semantic_layers: int, global_layers: int, dropout: float) -> nn.ModuleDict:
    """The active experts, keyed by name, in the order of ``names``."""
    make = {
        "local": lambda: LocalExpert(d_model, kernel_sizes, dropout),
        "semantic": lambda: SemanticExpert(d_model, n_heads, ff, semantic_layers, dropout),
        "global": lambda: GlobalExpert(d_model, n_heads, ff, global_layers, dropout),
    }
    return nn.ModuleDict({n: make[n]() for n in names})
