"""Pad a list of samples into one batch of tensors with masks.

A missing modality is an all-``False`` mask, never a crash. A batch may mix datasets whose feature dims
differ: features are zero-padded in time *and* in the feature dim, and ``dims`` records each sample's
real dim so an encoder can apply the projection that belongs to that sample's source.

Pooled sets (``Sample.pooled``) travel in the same dicts under ``"pooled:<set>"`` (see
:func:`egmf.data.schema.pooled_key`): ``features`` ``[B, 1, D]``, ``masks`` ``[B, 1]`` (True = the sample has
the set), ``dims`` ``[B]``; a model reads them next to the modalities without another argument. Their keys are
the sets any sample of the batch has, sorted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from egmf.data.schema import MODALITIES, Sample, pooled_key


@dataclass
class Batch:
    samples: list[Sample]
    features: dict[str, torch.Tensor]  # modality -> [B, T, D] float32, zero padded; "pooled:<set>" -> [B, 1, D]
    masks: dict[str, torch.Tensor]  # modality -> [B, T] bool, True marks a real frame; "pooled:<set>" -> [B, 1]
    dims: dict[str, torch.Tensor]  # modality (or pooled set) -> [B] int64, real feature dim (0 = missing)

    def __len__(self) -> int:
        return len(self.samples)

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(
            samples=self.samples,
            features={m: t.to(device) for m, t in self.features.items()},
            masks={m: t.to(device) for m, t in self.masks.items()},
            dims={m: t.to(device) for m, t in self.dims.items()},
        )


def collate(samples: list[Sample], max_frames: dict[str, int] | None = None) -> Batch:
    """Stack ``samples`` into a :class:`Batch`; ``max_frames`` optionally truncates long sequences."""
    if not samples:
        raise ValueError("collate: expected at least one sample, got an empty list")
    max_frames = max_frames or {}
    features, masks, dims = {}, {}, {}
    pooled = sorted({pooled_key(name) for s in samples for name in s.pooled})
    for m in (*MODALITIES, *pooled):
        arrays = [s.features(m) for s in samples]
        if m in pooled:  # one vector per set, whether stored as [d] or [1, d]
            arrays = [a.reshape(1, -1) if a is not None else None for a in arrays]
        limit = max_frames.get(m)
        if limit:
            arrays = [a[:limit] if a is not None else None for a in arrays]
        t_max = max([a.shape[0] for a in arrays if a is not None] + [1])
        d_max = max([a.shape[1] for a in arrays if a is not None] + [1])
        feat = np.zeros((len(samples), t_max, d_max), dtype=np.float32)
        mask = np.zeros((len(samples), t_max), dtype=bool)
        dim = np.zeros(len(samples), dtype=np.int64)
        for i, a in enumerate(arrays):
            if a is None or a.shape[0] == 0:
                continue
            feat[i, : a.shape[0], : a.shape[1]] = a
            mask[i, : a.shape[0]] = True
            dim[i] = a.shape[1]
        features[m] = torch.from_numpy(feat)
        masks[m] = torch.from_numpy(mask)
        dims[m] = torch.from_numpy(dim)
    return Batch(samples=list(samples), features=features, masks=masks, dims=dims)
