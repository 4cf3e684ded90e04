"""Per-dimension input standardisation, fitted on the train split and carried by the model's state.

Raw feature frames span many orders of magnitude (eGeMAPS values from 0.006 to 2,767; Whisper frames with a
large constant component), and a first ``Linear`` layer fed such inputs is dominated by the few largest
dimensions. :class:`FeatureStandardizer` holds one mean and one std vector per (dataset, modality) and per
(dataset, pooled set) as *buffers*, so ``state_dict()`` -- and with it every checkpoint and the resume state --
carries them, and ``egmf evaluate`` / ``egmf predict`` standardise new data exactly as training did, with no
extra step. The statistics are computed by :func:`egmf.training.data.feature_statistics` on the train split
only, and installed once, before training, by :func:`fit_input_statistics`.

An unfitted standardiser is the identity (mean 0, std 1): a model built and used without fitting behaves as it
did before standardisation existed.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import nn

from egmf.errors import ConfigError

# A dimension whose std is below this fraction of (1 + |mean|) is treated as constant and gets std 1: dividing
# by a float-rounding-sized std would turn a constant into noise of arbitrary size.
CONSTANT_STD = 1e-6

Statistics = dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]  # {dataset: {modality or pooled key: (mean, std)}}


def _buffer_key(source: str, key: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", f"{source}__{key}")


def safe_std(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``std`` with every (near-)constant or non-finite dimension set to 1 (see :data:`CONSTANT_STD`)."""
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    bad = ~np.isfinite(std) | (std <= CONSTANT_STD * (1.0 + np.abs(mean)))
    return np.where(bad, 1.0, std)


class FeatureStandardizer(nn.Module):
    """``(x - mean) / std`` per (source, key) for the ``dim > 0`` entries of ``feature_dims``.

    ``feature_dims`` is ``{source: {key: dim}}`` with keys the modality names and ``"pooled:<set>"``
    (:func:`egmf.data.schema.pooled_key`). Buffers are named ``mean__<source>__<key>`` / ``std__...``.
    """

    def __init__(self, feature_dims: dict[str, dict[str, int]]):
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        for src, dims in feature_dims.items():
            for key, dim in dims.items():
                if not dim:
                    continue
                name = _buffer_key(src, key)
                if name in self.entries.values():
                    raise ConfigError(f"feature_dims: ({src!r}, {key!r}) collides with another entry once made a "
                                      f"buffer name ({name!r}); rename the dataset or the pooled set")
                self.entries[(src, key)] = name
                self.register_buffer(f"mean__{name}", torch.zeros(int(dim)))
                self.register_buffer(f"std__{name}", torch.ones(int(dim)))

    def _buffers_of(self, source: str, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        name = self.entries.get((source, key))
        if name is None:
            raise ConfigError(f"standardiser: no statistics slot for dataset {source!r}, {key!r}; "
                              f"the model was built for {sorted(self.entries)}")
        return getattr(self, f"mean__{name}"), getattr(self, f"std__{name}")

    def forward(self, x: torch.Tensor, source: str, key: str) -> torch.Tensor:
        """Standardise ``x [..., dim]`` (the source's own dim) in float32; the result keeps ``x``'s dtype."""
        mean, std = self._buffers_of(source, key)
        return ((x.float() - mean) / std).to(x.dtype)

    @torch.no_grad()
    def fit(self, stats: Statistics) -> list[tuple[str, str]]:
        """Install ``stats``; every entry they lack becomes the identity again. Returns the entries fitted."""
        fitted = []
        for (src, key), name in self.entries.items():
            mean_buf, std_buf = getattr(self, f"mean__{name}"), getattr(self, f"std__{name}")
            pair = stats.get(src, {}).get(key)
            if pair is None:
                mean_buf.zero_()
                std_buf.fill_(1.0)
                continue
            mean, std = (np.asarray(a, dtype=np.float64).reshape(-1) for a in pair)
            if mean.shape != mean_buf.shape or std.shape != std_buf.shape:
                raise ConfigError(
                    f"input statistics of dataset {src!r}, {key!r}: expected {mean_buf.numel()} dims (the model's), "
                    f"got mean {mean.size} / std {std.size}"
                )
            if not np.isfinite(mean).all():
                raise ConfigError(f"input statistics of dataset {src!r}, {key!r}: the mean is not finite")
            mean_buf.copy_(torch.from_numpy(mean))
            std_buf.copy_(torch.from_numpy(safe_std(mean, std)))
            fitted.append((src, key))
        return fitted

    def statistics(self) -> Statistics:
        """The installed ``{source: {key: (mean, std)}}`` (float32 numpy copies)."""
        out: Statistics = {}
        for (src, key), name in self.entries.items():
            mean, std = getattr(self, f"mean__{name}"), getattr(self, f"std__{name}")
            out.setdefault(src, {})[key] = (mean.cpu().numpy().copy(), std.cpu().numpy().copy())
        return out


def fit_input_statistics(model: nn.Module, stats: Statistics) -> int:
    """Fit every :class:`FeatureStandardizer` inside ``model`` to ``stats``; returns how many there were.

    The one entry point the trainer calls (once, before training). A model with its own
    ``fit_input_statistics(stats)`` method is called instead, so a model that standardises differently can say so.
    """
    own = getattr(model, "fit_input_statistics", None)
    if callable(own):
        own(stats)
        return 1
    found = [m for m in model.modules() if isinstance(m, FeatureStandardizer)]
    for m in found:
        m.fit(stats)
    return len(found)
