"""Modality encoders: raw feature frames -> ``d_model`` tokens with positions and a modality-type embedding.

Each (source dataset, modality) pair gets its own input projection, because datasets disagree on feature
dims (MELD audio 300-d, SIMS v2 audio 25-d, ...) and a batch may mix them. Long sequences are first
average-pooled, over real frames only, to at most ``max_frames`` frames, so cost stays bounded and a
sample's tokens never depend on how much padding the batch added.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from egmf.data.schema import MODALITIES
from egmf.errors import ConfigError


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x [B, T, D]`` over the frames where ``mask [B, T]`` is True; zeros when none are."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def masked_adaptive_pool(x: torch.Tensor, mask: torch.Tensor, max_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average ``x [B, T, D]`` into at most ``max_frames`` bins of consecutive *real* frames.

    A sample with ``L <= max_frames`` real frames keeps them unchanged (moved to the front); one with more
    gets ``max_frames`` bins of ``L / max_frames`` frames each. Bins depend only on the sample's own real
    frames, so padding added by the batch never changes the result. Returns ``(pooled, pooled_mask)``.
    """
    b, t, d = x.shape
    n_out = min(t, max_frames)
    lengths = mask.sum(1, keepdim=True)  # [B, 1]
    rank = mask.long().cumsum(1) - 1  # index of each real frame among the sample's real frames
    # Integer arithmetic so a bin boundary never depends on float rounding.
    bins = torch.where(lengths > max_frames, rank * max_frames // lengths.clamp_min(1), rank)
    bins = torch.where(mask, bins, torch.full_like(bins, n_out))  # padding goes to a discarded extra bin
    sums = x.new_zeros(b, n_out + 1, d).scatter_add_(1, bins.unsqueeze(-1).expand(b, t, d), x)
    counts = x.new_zeros(b, n_out + 1).scatter_add_(1, bins, mask.to(x.dtype))
    pooled = sums[:, :n_out] / counts[:, :n_out].clamp_min(1.0).unsqueeze(-1)
    return pooled, counts[:, :n_out] > 0


def sinusoidal_positions(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The transformer's fixed sine/cosine position table ``[length, dim]`` (no parameters, any length)."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table.to(dtype)


def check_feature_dims(feature_dims: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Validate ``{source: {modality: dim}}`` and fill absent modalities with 0."""
    if not feature_dims:
        raise ConfigError("feature_dims: expected at least one source (dataset name -> {modality: dim}), got none")
    out = {}
    for src, dims in feature_dims.items():
        unknown = set(dims) - set(MODALITIES)
        if unknown:
            raise ConfigError(
                f"feature_dims[{src!r}]: unknown modality {sorted(unknown)}; valid choices: {', '.join(MODALITIES)}"
            )
        full = {m: int(dims.get(m, 0) or 0) for m in MODALITIES}
        if any(v < 0 for v in full.values()):
            raise ConfigError(f"feature_dims[{src!r}]: expected dims >= 0 (0 = modality absent), got {full}")
        if not any(full.values()):
            raise ConfigError(f"feature_dims[{src!r}]: every modality has dim 0; a source needs at least one")
        out[src] = full
    return out


class ModalityEncoders(nn.Module):
    """Encode each modality into ``d_model`` tokens.

    ``forward(features, masks, sources)`` returns ``(tokens, token_masks, present)``: ``tokens[m]``
    ``[B, T', d_model]``, ``token_masks[m]`` ``[B, T']`` (True = a token attention may use), and
    ``present`` ``[B, 3]`` bool (the sample really has the modality, in ``MODALITIES`` order). With
    ``missing_modality="learned"`` an absent modality becomes one learned placeholder token whose mask is
    True, so other modalities can still attend to "nothing here"; ``present`` stays False for it.
    """

    def __init__(
        self,
        feature_dims: dict[str, dict[str, int]],
        d_model: int,
        dropout: float = 0.1,
        max_frames: int | None = 64,
        missing_modality: str = "mask",
    ):
        super().__init__()
        self.feature_dims = check_feature_dims(feature_dims)
        self.d_model = d_model
        self.max_frames = max_frames
        self.missing_modality = missing_modality
        # ModuleDict keys cannot contain "."; a source name is a dataset name, but stay safe.
        keys = [_key(src) for src in self.feature_dims]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"feature_dims: source names {sorted(self.feature_dims)} collide once '.' becomes '_'")
        self.proj = nn.ModuleDict(
            {
                _key(src, m): nn.Linear(dim, d_model)
                for src, dims in self.feature_dims.items()
                for m, dim in dims.items()
                if dim > 0
            }
        )
        self.modality_type = nn.Embedding(len(MODALITIES), d_model)
        # Content first: a unit-variance type embedding plus unit-amplitude positions would swamp a fresh
        # projection (std ~0.5) before the LayerNorm, and training would spend its first hundreds of steps
        # growing the projections. Scale the content by sqrt(d) as MulT/Transformer embeddings do, and start
        # the type embedding small.
        nn.init.normal_(self.modality_type.weight, std=0.02)
        self.content_scale = math.sqrt(d_model)
        self.placeholder = nn.Parameter(torch.randn(len(MODALITIES), d_model) * 0.02)
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, features: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], sources: list[str]):
        unknown = sorted(set(sources) - set(self.feature_dims))
        if unknown:
            raise ConfigError(
                f"fusion: unknown source {unknown}; the fusion was built for: {', '.join(sorted(self.feature_dims))}"
            )
        b = len(sources)
        ref = next(iter(features.values())) if features else self.placeholder
        groups: dict[str, torch.Tensor] = {}
        for i, src in enumerate(sources):
            groups.setdefault(src, []).append(i)
        groups = {s: torch.tensor(ix, device=ref.device) for s, ix in groups.items()}

        tokens, token_masks, present = {}, {}, []
        for mi, m in enumerate(MODALITIES):
            x = features.get(m)
            mask = masks.get(m)
            if x is None:  # a caller may leave out a modality no sample has
                x = ref.new_zeros(b, 1, 1)
                mask = torch.zeros(b, 1, dtype=torch.bool, device=ref.device)
            if x.shape[0] != b or mask.shape != x.shape[:2]:
                raise ValueError(
                    f"fusion: modality {m}: expected features [B={b}, T, D] and mask [B, T], "
                    f"got {tuple(x.shape)} and {tuple(mask.shape)}"
                )
            mask = mask.bool()
            if self.max_frames is not None and x.shape[1] > self.max_frames:
                x, mask = masked_adaptive_pool(x, mask, self.max_frames)
            h = x.new_zeros(b, x.shape[1], self.d_model)
            for src, ix in groups.items():
                dim = self.feature_dims[src][m]
                if not mask[ix].any():  # nobody from this source has the modality here: zeros, masked
                    continue
                if dim == 0:
                    raise ConfigError(
                        f"fusion: source {src!r} declares no {m} features (dim 0) but the batch has {m} frames "
                        f"for it; fix feature_dims[{src!r}][{m!r}]"
                    )
                if x.shape[-1] < dim:
                    raise ConfigError(
                        f"fusion: source {src!r} declares {m} dim {dim}, but the batch's {m} features are only "
                        f"{x.shape[-1]} wide"
                    )
                h[ix] = self.proj[_key(src, m)](x[ix, :, :dim]).to(h.dtype)  # bf16 autocast output
            has = mask.any(1)
            if self.missing_modality == "learned":
                # Slot 0 of an absent modality carries the placeholder (positions and type are added below).
                slot = torch.zeros_like(mask)
                slot[:, 0] = ~has
                h = torch.where(slot.unsqueeze(-1), self.placeholder[mi].to(h.dtype).expand_as(h), h)
                mask = mask | slot
            pos = sinusoidal_positions(h.shape[1], self.d_model, h.device, h.dtype)
            h = self.norm(h * self.content_scale + pos + self.modality_type.weight[mi])
            # Zero the padding so convolutions see the same zeros a sample alone would see at its edges.
            tokens[m] = self.drop(h) * mask.unsqueeze(-1)
            token_masks[m] = mask
            present.append(has)
        return tokens, token_masks, torch.stack(present, 1)


def _key(source: str, modality: str = "") -> str:
    return f"{source.replace('.', '_')}__{modality}"
