"""Hierarchical dynamic gating: level 1 weighs modalities inside each expert, level 2 weighs the experts.

Both levels are conditioned on the sample (small MLPs that see a pooled summary of all present
modalities) and use one softmax temperature. A level that is turned off is a uniform mean (over the
present modalities, or over the active experts). An absent modality always gets weight exactly 0.

The optional balance regulariser is the KL divergence of the batch-mean gate from the batch-mean uniform
gate, summed over the levels that are on: it discourages a gate that collapses onto one expert or one
modality for every sample, while leaving each sample free to be sharp (a per-sample entropy term would
fight the very selection the gate is for).
"""

from __future__ import annotations

import torch
from torch import nn

def masked_softmax(logits: torch.Tensor, allowed: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Softmax of ``logits / temperature`` over the ``allowed`` entries; the others get exactly 0.

    A row with nothing allowed is all zeros.
    """
    # The dtype's most negative finite value, not -inf: exp() still underflows to exactly 0, and a row with
    # nothing allowed becomes uniform (then zeroed) instead of NaN, which would poison gradients.
    z = torch.where(allowed, logits / temperature, torch.full_like(logits, torch.finfo(logits.dtype).min))
    return torch.softmax(z, -1) * allowed.to(logits.dtype)


def uniform_over(allowed: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    a = allowed.to(dtype)
    return a / a.sum(-1, keepdim=True).clamp_min(1.0)


def balance_kl(weights: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """KL(batch-mean gate || batch-mean uniform gate over the allowed entries); 0 when perfectly balanced."""
    p = weights.mean(0)
    q = uniform_over(allowed, weights.dtype).mean(0)
    keep = q > 0  # an entry no sample has carries weight 0 in both; leave it out (0 log 0)
    p = torch.where(keep, p, torch.ones_like(p))
    q = torch.where(keep, q, torch.ones_like(q))
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum()


def _mlp(d_in: int, hidden: int, d_out: int, out_bias: bool = True) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out, bias=out_bias))


class HierarchicalGate(nn.Module):
    """``forward(expert_vecs, summary, present)`` -> ``(fused, joint, gates, aux)``.

    ``expert_vecs[e]``: ``[B, 3, d]`` per-modality vectors of expert ``e``; ``summary``: ``[B, d]``;
    ``present``: ``[B, 3]`` bool. Returns the fused vector ``[B, d]``, the joint weight of each
    (expert, modality) pair ``[B, E, 3]`` (level 2 x level 1; sums to 1 over both for a sample with any
    modality), the gates dict of :class:`~egmf.model.base.FusionOutput`, and the unscaled balance term.
    """

    def __init__(self, experts: tuple[str, ...], d_model: int, hidden: int = 64, modality_gating: bool = True,
                 expert_gating: bool = True, temperature: float = 1.0):
        super().__init__()
        self.experts = tuple(experts)
        self.modality_gating = modality_gating
        self.expert_gating = expert_gating
        self.temperature = temperature
        # Level 1 scores each (modality vector, sample summary) pair, one scorer per expert. No output bias:
        # one scalar added to every modality's logit leaves the softmax unchanged, so it could never learn.
        self.modality_scorers = (
            nn.ModuleDict({e: _mlp(2 * d_model, hidden, 1, out_bias=False) for e in self.experts})
            if modality_gating else None
        )
        # Level 2 sees the summary and every expert's modality-gated vector at once.
        self.expert_scorer = _mlp((len(self.experts) + 1) * d_model, hidden, len(self.experts)) if expert_gating else None

    def forward(self, expert_vecs: dict[str, torch.Tensor], summary: torch.Tensor, present: torch.Tensor):
        gates: dict[str, torch.Tensor] = {}
        aux = summary.new_zeros(())
        reps, level1 = [], []
        for e in self.experts:
            v = expert_vecs[e]  # [B, 3, d]
            if self.modality_scorers is not None:
                ctx = summary.unsqueeze(1).expand_as(v)
                logits = self.modality_scorers[e](torch.cat([v, ctx], -1)).squeeze(-1)
                w = masked_softmax(logits, present, self.temperature)
                aux = aux + balance_kl(w, present) / len(self.experts)
            else:
                w = uniform_over(present, v.dtype)
            gates[f"modality.{e}"] = w
            level1.append(w)
            reps.append((w.unsqueeze(-1) * v).sum(1))
        r = torch.stack(reps, 1)  # [B, E, d]
        if self.expert_scorer is not None:
            logits = self.expert_scorer(torch.cat([summary, r.flatten(1)], -1))
            g = torch.softmax(logits / self.temperature, -1)
            aux = aux + balance_kl(g, torch.ones_like(g, dtype=torch.bool))
        else:
            g = torch.full((r.shape[0], len(self.experts)), 1.0 / len(self.experts), dtype=r.dtype, device=r.device)
        gates["expert"] = g
        fused = (g.unsqueeze(-1) * r).sum(1)
        joint = g.unsqueeze(-1) * torch.stack(level1, 1)
        return fused, joint, gates, aux

