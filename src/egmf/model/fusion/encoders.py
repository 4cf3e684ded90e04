"""Modality encoders: raw feature frames -> ``d_model`` tokens with positions and a modality-type embedding.

Each (source dataset, modality) pair gets its own input projection, because datasets disagree on feature
dims (MELD audio 300-d, SIMS v2 audio 25-d, ...) and a batch may mix them. Frames are first standardised
per dimension with the train split's statistics (:class:`egmf.model.standardize.FeatureStandardizer`, buffers
that checkpoints carry). Long sequences are then average-pooled, over real frames only, to at most
``max_frames`` frames, so cost stays bounded and a sample's tokens never depend on how much padding the
batch added.

Utterance-level tokens come *before* a modality's frame tokens (so their slots do not move with the
sample's length, and padding stays at the end):

- the **statistics token** (``stats_token=True``): mean and std over the utterance's real standardised frames
  (before pooling), ``Linear(2 * dim, d_model)`` per (source, modality), plus its own type embedding: the
  per-clip spread that frame tokens and mean pooling lose;
- one token per **pooled set** of the batch (``features["pooled:<set>"]`` ``[B, 1, dim]``, e.g. eGeMAPS
  functionals), standardised, ``Linear(dim, d_model)`` per (source, set), plus the pooled type embedding. A
  set joins the modality :func:`pooled_modality` names (``sentence`` -> text, every other set -> audio).

The slots are fixed by ``feature_dims`` (not by the batch), so a sample's tokens are the same alone or in
any batch; a slot the sample lacks is masked and zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from egmf.data.schema import MODALITIES, is_pooled_key, pooled_name
from egmf.errors import ConfigError
from egmf.model.standardize import FeatureStandardizer

# Where a pooled set's token goes: the sentence embedding describes the words, every other set (eGeMAPS
# functionals, mean+std of mfcc/whisper frames) the voice.
POOLED_MODALITY = {"sentence": "text"}


def pooled_modality(key: str) -> str:
    """The modality whose tokens a pooled set (``"pooled:<set>"``) joins: ``sentence`` -> text, others -> audio."""
    return POOLED_MODALITY.get(pooled_name(key), "audio")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x [B, T, D]`` over the frames where ``mask [B, T]`` is True; zeros when none are."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def masked_std(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Population std of ``x [B, T, D]`` over the real frames (0 for one frame or none).

    The variance is floored at 1e-12 before the square root, so a gradient through it stays finite."""
    m = mask.unsqueeze(-1).to(x.dtype)
    mean = masked_mean(x, mask).unsqueeze(1)
    var = (((x - mean) * m) ** 2).sum(1) / m.sum(1).clamp_min(1.0)
    return var.clamp_min(1e-12).sqrt()


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
    """Validate ``{source: {modality or "pooled:<set>": dim}}`` and fill absent modalities with 0.

    This is the one description of a model's inputs: the three modalities' frame dims, and the dim of each
    pooled set a dataset has (``"pooled:egemaps": 88``; :func:`egmf.data.schema.pooled_key`), as
    :meth:`egmf.data.schema.BenchmarkData.feature_dims` reports them and checkpoints store them.
    """
    if not feature_dims:
        raise ConfigError("feature_dims: expected at least one source (dataset name -> {modality: dim}), got none")
    out = {}
    for src, dims in feature_dims.items():
        unknown = {k for k in dims if k not in MODALITIES and not (is_pooled_key(k) and pooled_name(k))}
        if unknown:
            raise ConfigError(
                f"feature_dims[{src!r}]: unknown modality {sorted(unknown)}; valid choices: {', '.join(MODALITIES)} "
                f"or 'pooled:<set>'"
            )
        full = {m: int(dims.get(m, 0) or 0) for m in MODALITIES}
        full.update({k: int(v or 0) for k, v in sorted(dims.items()) if is_pooled_key(k)})
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
    ``present`` ``[B, 3]`` bool (the sample really has the modality -- frames or a pooled set -- in
    ``MODALITIES`` order). ``features``/``masks`` may hold pooled sets under ``"pooled:<set>"`` (see the
    module docstring); a set the model was not built with for a sample's source is not read. With
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
        stats_token: bool = True,
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
        self.standardize = FeatureStandardizer(self.feature_dims)
        entries = [(src, k, dim) for src, dims in self.feature_dims.items() for k, dim in dims.items() if dim > 0]
        self.proj = nn.ModuleDict({_key(src, k): nn.Linear(dim, d_model) for src, k, dim in entries})
        # The utterance-level slots of each modality, fixed by feature_dims so they never depend on the batch.
        has = {m: any(d[m] > 0 for d in self.feature_dims.values()) for m in MODALITIES}
        self.stats_slot = {m: bool(stats_token and has[m]) for m in MODALITIES}
        pooled = sorted({k for _, k, _ in entries if is_pooled_key(k)})
        self.pooled_slots = {m: [k for k in pooled if pooled_modality(k) == m] for m in MODALITIES}
        self.stats_proj = nn.ModuleDict(
            {_key(src, m): nn.Linear(2 * dim, d_model) for src, m, dim in entries if m in MODALITIES and stats_token}
        )
        # Type embeddings of the two kinds of utterance-level token (they have no time position).
        self.stats_type = nn.Parameter(torch.randn(d_model) * 0.02) if any(self.stats_slot.values()) else None
        self.pooled_type = nn.Parameter(torch.randn(d_model) * 0.02) if pooled else None
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
            x, stats = self._standardized(x, mask, m, groups)
            if self.max_frames is not None and x.shape[1] > self.max_frames:
                x, mask = masked_adaptive_pool(x, mask, self.max_frames)
            h = x.new_zeros(b, x.shape[1], self.d_model)
            for src, ix in groups.items():
                if mask[ix].any():
                    dim = self.feature_dims[src][m]
                    h[ix] = self.proj[_key(src, m)](x[ix, :, :dim]).to(h.dtype)  # bf16 autocast output
            # Utterance-level slots first, frames after: [stats?, pooled sets..., frames..., padding].
            utterance = list(self._utterance_tokens(features, masks, m, stats, mask, groups, h))
            h = torch.cat([vec.unsqueeze(1) for vec, _, _ in utterance] + [h], 1)
            # What is added to the content: a type embedding per utterance-level slot, positions per frame.
            extra = torch.cat(
                [kind.to(h.dtype).expand(b, 1, self.d_model) for _, _, kind in utterance]
                + [sinusoidal_positions(mask.shape[1], self.d_model, h.device, h.dtype).expand(b, -1, -1)], 1
            )
            mask = torch.cat([vec_mask.unsqueeze(1) for _, vec_mask, _ in utterance] + [mask], 1)
            h = h * mask.unsqueeze(-1).to(h.dtype)  # a slot the sample lacks is exactly zero
            has = mask.any(1)
            if self.missing_modality == "learned":
                # Slot 0 of an absent modality carries the placeholder (positions and type are added below).
                slot = torch.zeros_like(mask)
                slot[:, 0] = ~has
                h = torch.where(slot.unsqueeze(-1), self.placeholder[mi].to(h.dtype).expand_as(h), h)
                mask = mask | slot
            h = self.norm(h * self.content_scale + extra + self.modality_type.weight[mi])
            # Zero the padding so convolutions see the same zeros a sample alone would see at its edges.
            tokens[m] = self.drop(h) * mask.unsqueeze(-1)
            token_masks[m] = mask
            present.append(has)
        return tokens, token_masks, torch.stack(present, 1)

    def _standardized(self, x: torch.Tensor, mask: torch.Tensor, m: str, groups: dict[str, torch.Tensor]):
        """Each source's frames standardised (padding zero) and, with the statistics token on, each sample's
        ``[mean, std]`` over its real standardised frames (``[B, 2 * D]``, zero for a sample without frames)."""
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        stats = x.new_zeros(x.shape[0], 2 * x.shape[-1]) if self.stats_slot[m] else None
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
            xi = self.standardize(x[ix, :, :dim].float(), src, m) * mask[ix].unsqueeze(-1)
            out[ix, :, :dim] = xi
            if stats is not None:
                stats[ix, : 2 * dim] = torch.cat([masked_mean(xi, mask[ix]), masked_std(xi, mask[ix])], -1).to(x.dtype)
        return out.to(x.dtype), stats

    def _utterance_tokens(self, features, masks, m: str, stats, frame_mask, groups, h):
        """``(content [B, d], mask [B], type [d])`` of modality ``m``'s statistics token and pooled-set tokens."""
        b = h.shape[0]
        if self.stats_slot[m]:
            vec = h.new_zeros(b, self.d_model)
            for src, ix in groups.items():
                dim = self.feature_dims[src][m]
                if dim and frame_mask[ix].any():
                    vec[ix] = self.stats_proj[_key(src, m)](stats[ix, : 2 * dim]).to(h.dtype)
            yield vec, frame_mask.any(1), self.stats_type
        for key in self.pooled_slots[m]:
            vec, vec_mask = h.new_zeros(b, self.d_model), torch.zeros(b, dtype=torch.bool, device=h.device)
            x, mask = features.get(key), masks.get(key)
            if x is not None:
                if mask.shape != (b, 1) or x.ndim != 3 or x.shape[:2] != (b, 1):
                    raise ValueError(f"fusion: pooled set {key}: expected features [B={b}, 1, D] and mask [B, 1], "
                                     f"got {tuple(x.shape)} and {tuple(mask.shape)}")
                mask = mask[:, 0].bool()
                for src, ix in groups.items():
                    dim = self.feature_dims[src].get(key, 0)
                    if not dim or not mask[ix].any():  # a set this source was not built with is not read
                        continue
                    if x.shape[-1] < dim:
                        raise ConfigError(f"fusion: source {src!r} declares {key} dim {dim}, but the batch's "
                                          f"{key} features are only {x.shape[-1]} wide")
                    xi = self.standardize(x[ix, 0, :dim].float(), src, key)
                    vec[ix] = (self.proj[_key(src, key)](xi) * mask[ix].unsqueeze(-1)).to(h.dtype)
                    vec_mask[ix] = mask[ix]
            yield vec, vec_mask, self.pooled_type


def _key(source: str, modality: str = "") -> str:
    """A ModuleDict key: ``alpha__audio``; a pooled set ``pooled:egemaps`` becomes ``alpha__pooled_egemaps``."""
    return f"{source.replace('.', '_')}__{modality.replace(':', '_').replace('.', '_')}"
