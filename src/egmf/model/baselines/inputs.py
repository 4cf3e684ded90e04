"""Inputs of the baselines: the EGMF modality encoders, a per-sample dim check, and masked pooling.

The baselines reuse :class:`egmf.model.fusion.encoders.ModalityEncoders` (one linear projection per
(dataset, modality), because datasets in one batch have different feature dims; per-dimension standardisation
with the train split's statistics; the utterance-level statistics token and pooled-set tokens; masked pooling
to at most ``max_frames`` frames; positions; modality-type embedding; LayerNorm), so a baseline and EGMF see
the same tokens and differ only in what they do with them. MulT's temporal convolution follows, per modality, over
frames whose padding is zero, so a real frame's output is the same however much padding follows it.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from egmf.data.collate import Batch
from egmf.data.schema import MODALITIES, is_pooled_key
from egmf.errors import ConfigError, DataFormatError
from egmf.model.fusion.encoders import ModalityEncoders, check_feature_dims, masked_mean

__all__ = ["BaselineInputs", "group_by_dataset", "last_state", "masked_mean", "module_key"]


def module_key(name: str) -> str:
    """A dataset name as an ``nn.ModuleDict`` key (which may not contain dots)."""
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def group_by_dataset(batch: Batch, known: dict) -> dict[str, list[int]]:
    """``{dataset: [row, ...]}`` in first-seen order; a dataset the model was not built for is refused."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(batch.samples):
        if s.dataset not in known:
            raise ConfigError(
                f"sample {s.id!r}: dataset {s.dataset!r} is not one this model was built for; "
                f"valid choices: {', '.join(sorted(known))}"
            )
        groups.setdefault(s.dataset, []).append(i)
    return groups


def last_state(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """State at the last real frame of each row (padding is at the end); zeros for a sample with none."""
    n = mask.sum(1)
    out = x[torch.arange(x.shape[0], device=x.device), (n - 1).clamp(min=0)]
    return out * (n > 0).to(x.dtype).unsqueeze(-1)


class BaselineInputs(nn.Module):
    """``forward(batch) -> {modality: (tokens [B,T,hidden], mask [B,T])}`` for :attr:`modalities`, the
    modalities at least one dataset has (or a pooled set joins); with ``kernel > 1`` a temporal Conv1d per
    modality follows. ``stats_token``: see :class:`~egmf.model.fusion.encoders.ModalityEncoders`."""

    def __init__(self, feature_dims: dict[str, dict[str, int]], hidden: int, dropout: float,
                 max_frames: int | None, kernel: int = 1, stats_token: bool = True):
        super().__init__()
        self.feature_dims = check_feature_dims(feature_dims)
        self.encoders = ModalityEncoders(self.feature_dims, hidden, dropout, max_frames, missing_modality="mask",
                                         stats_token=stats_token)
        self.modalities = tuple(
            m for m in MODALITIES
            if any(d[m] > 0 for d in self.feature_dims.values()) or self.encoders.pooled_slots[m]
        )
        self.temporal = nn.ModuleDict(
            {m: nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2) for m in self.modalities} if kernel > 1 else {}
        )

    def check_dims(self, batch: Batch) -> None:
        """Each sample's real feature dim must be its dataset's (or 0 = absent): a clear error, not a wrong slice."""
        groups = group_by_dataset(batch, self.feature_dims)
        pooled = [k for k in batch.dims if is_pooled_key(k)]
        for m in (*MODALITIES, *pooled):
            if m not in batch.dims:
                continue
            for ds, rows in groups.items():
                if is_pooled_key(m) and m not in self.feature_dims[ds]:
                    continue  # a pooled set this dataset's model was not built with is not read
                want = self.feature_dims[ds][m]
                for r in rows:
                    got = int(batch.dims[m][r])
                    if got not in (0, want):
                        raise DataFormatError(
                            f"dataset {ds}", f"{m} features of sample {batch.samples[r].id!r}",
                            f"dim {want} (the dim this model was built with)" if want else "no features (dim 0)",
                            got,
                        )

    def forward(self, batch: Batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        self.check_dims(batch)
        tokens, masks, _ = self.encoders(batch.features, batch.masks, [s.dataset for s in batch.samples])
        out = {}
        for m in self.modalities:
            x, mask = tokens[m], masks[m]
            if m in self.temporal:
                # Residual, so the convolution adds local context to the encoder tokens rather than replacing them.
                x = (x + self.temporal[m](x.transpose(1, 2)).transpose(1, 2)) * mask.unsqueeze(-1).to(x.dtype)
            out[m] = (x, mask)
        return out
