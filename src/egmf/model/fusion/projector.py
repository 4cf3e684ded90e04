"""Projector: the gated expert outputs -> K pseudo-token embeddings in the LLM's hidden size.

K learned queries, each shifted by the fused vector, cross-attend to the per-(expert, modality) vectors.
The attention logits carry ``log`` of the joint gate weight of each vector, so a query reads each
expert's view of each modality in proportion to what the gates chose (and never an absent modality),
while the gate weights still receive gradient through both paths.

The output goes through a LayerNorm whose gain starts at ``target_norm / sqrt(out_dim)``: a LayerNorm
output has L2 norm ``sqrt(out_dim)``, so each pseudo token starts with norm ``target_norm``. Pass the
mean norm of the LLM's input embeddings (``llm.get_input_embeddings().weight.norm(dim=-1).mean()``) so
the pseudo tokens neither drown nor vanish next to the word embeddings; ``None`` keeps the plain
LayerNorm (norm ``sqrt(out_dim)``).

With ``anchors`` (``[K, out_dim]``, e.g. K distinct rows of the LLM's embedding matrix) pseudo token k is
``anchors[k] + residual_k``: a learned anchor that starts as a real word embedding, so every slot starts on the
(anisotropic) embedding distribution and the K slots start distinct, plus the sample's residual, whose norm starts
at ``residual_scale * target_norm``. Without anchors the LayerNorm output alone is the token (the original design:
the right norm, but about orthogonal to the mean word embedding, and the K slots nearly copies of each other,
since every query is shifted by the same fused vector).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_MIN_WEIGHT = 1e-6  # floor on a gate weight inside the log: bounds the bias and its gradient


class PseudoTokenProjector(nn.Module):
    def __init__(self, d_model: int, n_heads: int, num_tokens: int, out_dim: int, ff: int,
                 target_norm: float | None = None, dropout: float = 0.1, anchors: torch.Tensor | None = None,
                 residual_scale: float = 1.0):
        super().__init__()
        if target_norm is not None and not target_norm > 0:
            raise ValueError(f"projector: target_norm must be > 0 or None, got {target_norm}")
        if anchors is not None and tuple(anchors.shape) != (num_tokens, out_dim):
            raise ValueError(f"projector: anchors must be [K={num_tokens}, out_dim={out_dim}], got {tuple(anchors.shape)}")
        if not residual_scale > 0:
            raise ValueError(f"projector: residual_scale must be > 0, got {residual_scale}")
        self.n_heads = n_heads
        self.queries = nn.Parameter(torch.randn(num_tokens, d_model) * 0.02)  # one query per pseudo token
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.o_proj = nn.Linear(d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d_model))
        self.norm2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, out_dim)
        self.out_norm = nn.LayerNorm(out_dim)
        self.target_norm = target_norm
        self.anchors = None if anchors is None else nn.Parameter(anchors.detach().clone().float())
        if anchors is not None:
            norm = target_norm if target_norm is not None else float(self.anchors.detach().norm(dim=-1).mean())
            nn.init.constant_(self.out_norm.weight, residual_scale * norm / math.sqrt(out_dim))
        elif target_norm is not None:
            nn.init.constant_(self.out_norm.weight, target_norm / math.sqrt(out_dim))

    @property
    def num_tokens(self) -> int:
        """K: the pseudo tokens this projector emits (one per learned query)."""
        return self.queries.shape[0]

    def forward(self, memory: torch.Tensor, weights: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        """``memory [B, M, d]``, ``weights [B, M]`` (0 = never read), ``fused [B, d]`` -> ``[B, K, out_dim]``."""
        b, m, d = memory.shape
        q0 = self.queries.unsqueeze(0) + fused.unsqueeze(1)  # [B, K, d]
        k = q0.shape[1]
        h, dh = self.n_heads, d // self.n_heads

        def heads(x):
            return x.view(b, x.shape[1], h, dh).transpose(1, 2)

        allowed = weights > 0
        # A sample with no modality at all reads its (zero) memory uniformly instead of producing NaN.
        allowed = allowed | ~allowed.any(-1, keepdim=True)
        never = torch.full_like(weights, torch.finfo(weights.dtype).min)
        bias = torch.where(allowed, weights.clamp_min(_MIN_WEIGHT).log(), never)
        bias = bias[:, None, None, :].expand(b, 1, k, m)
        a = F.scaled_dot_product_attention(
            heads(self.q_proj(q0)), heads(self.k_proj(memory)), heads(self.v_proj(memory)), attn_mask=bias,
            dropout_p=self.drop.p if self.training else 0.0,
        )
        a = self.o_proj(a.transpose(1, 2).reshape(b, k, d))
        x = self.norm1(q0 + self.drop(a))
        x = self.norm2(x + self.drop(self.ff(x)))
        residual = self.out_norm(self.out(x))
        return residual if self.anchors is None else self.anchors.to(residual.dtype) + residual
