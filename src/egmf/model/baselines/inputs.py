"""Per-source input projections and masked pooling shared by the baselines.

No fusion encoder module existed when the baselines were written, so this is their own minimal masked
encoder: one ``Conv1d(d_source, hidden, kernel)`` per (dataset, modality) -- a plain linear map when
``kernel == 1`` -- because datasets in one batch have different feature dims (``Sample.dataset`` picks
the projection). Padded frames are zeroed before and after the projection, and the convolution pads
with zeros too, so a real frame's output is the same however much padding follows it.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from egmf.data.collate import Batch
from egmf.data.schema import MODALITIES
from egmf.errors import ConfigError, DataFormatError


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


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x [B,T,H]`` over the real frames of ``mask [B,T]``; zeros for a sample with none."""
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp(min=1.0)


def last_state(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """State at the last real frame of each row (padding is at the end); zeros for a sample with none."""
    n = mask.sum(1)
    idx = (n - 1).clamp(min=0)
    out = x[torch.arange(x.shape[0], device=x.device), idx]
    return out * (n > 0).to(x.dtype).unsqueeze(-1)


class SourceProjection(nn.Module):
    """Projects each modality of each sample, with its own dataset's weights, to ``hidden``.

    ``forward(batch)`` returns ``{modality: (x [B,T,hidden], mask [B,T])}`` for :attr:`modalities`, the
    modalities that at least one dataset has (``feature_dims[ds][m] > 0``).
    """

    def __init__(self, feature_dims: dict[str, dict[str, int]], hidden: int, kernel: int = 1):
        super().__init__()
        self.feature_dims = {ds: {m: int(d.get(m, 0)) for m in MODALITIES} for ds, d in feature_dims.items()}
        self.modalities = tuple(m for m in MODALITIES if any(d[m] > 0 for d in self.feature_dims.values()))
        if not self.modalities:
            raise ConfigError(
                "baseline: no dataset has any feature (every feature dim is 0); these models read features, "
                f"got feature_dims={feature_dims}"
            )
        self.hidden = hidden
        self.proj = nn.ModuleDict()
        for ds, dims in self.feature_dims.items():
            for m in self.modalities:
                if dims[m] > 0:
                    self.proj[f"{module_key(ds)}__{m}"] = nn.Conv1d(dims[m], hidden, kernel, padding=kernel // 2)

    def forward(self, batch: Batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        groups = group_by_dataset(batch, self.feature_dims)
        out = {}
        for m in self.modalities:
            feats, mask, dims = batch.features[m], batch.masks[m], batch.dims[m]
            y = feats.new_zeros(feats.shape[0], feats.shape[1], self.hidden)
            for ds, rows in groups.items():
                want = self.feature_dims[ds][m]
                idx = torch.tensor(rows, device=feats.device)
                got = dims[idx]
                bad = (got != 0) & (got != want)
                if bool(bad.any()):
                    row = rows[int(bad.nonzero()[0, 0])]
                    raise DataFormatError(
                        f"dataset {ds}", f"{m} features of sample {batch.samples[row].id!r}",
                        f"dim {want} (the dim this model was built with)" if want else "no features (dim 0)",
                        int(got[bad][0]),
                    )
                if want == 0 or not bool(mask[idx].any()):
                    continue
                x = feats[idx, :, :want] * mask[idx].unsqueeze(-1).to(feats.dtype)
                y[idx] = self.proj[f"{module_key(ds)}__{m}"](x.transpose(1, 2)).transpose(1, 2)
            out[m] = (y * mask.unsqueeze(-1).to(y.dtype), mask)
        return out
