"""Checks shared by the loaders. Each raises :class:`DataFormatError` naming file, field and expectation.

Loaders validate everything before they build any :class:`Sample`, so a bad file is never half-loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from egmf.errors import ConfigError, DataFormatError

# What a loader does with NaN in features (its ``nan`` option): "error" (the default: refuse, naming the file),
# "zero" (replace by 0), "keep" (leave NaN and ±inf as read: what ``egmf data inspect`` loads with, so that
# it can count them; training refuses it, see :func:`refuse_kept_nan`).
NAN_POLICIES = ("error", "zero", "keep")


def check_nan_policy(nan: str) -> None:
    if nan not in NAN_POLICIES:
        raise ConfigError(f"nan: expected one of {', '.join(NAN_POLICIES)}, got {nan!r}")


def refuse_kept_nan(options: Mapping, where: str) -> None:
    """Training and conversion need finite features: ``nan="keep"`` is for inspection only."""
    if options.get("nan") == "keep":
        raise ConfigError(f"{where}: nan=keep leaves NaN and inf in the features, for egmf data inspect only; "
                          "valid choices here: error, zero")


def require_keys(obj: Mapping, keys: Iterable[str], file: str | Path, where: str = "") -> None:
    missing = [k for k in keys if k not in obj]
    if missing:
        field = f"{where}.{missing[0]}" if where else missing[0]
        raise DataFormatError(file, field, f"keys {sorted(keys)}", f"missing {missing}")


def require_array(value, file: str | Path, field: str, ndim: int, dtype_kind: str = "f") -> np.ndarray:
    """``value`` must be a numpy array with ``ndim`` dims and a dtype of kind ``dtype_kind`` (f, i, u, b...)."""
    if not isinstance(value, np.ndarray):
        raise DataFormatError(file, field, f"a numpy array with {ndim} dims", type(value).__name__)
    if value.ndim != ndim:
        raise DataFormatError(file, field, f"{ndim} dims", f"shape {value.shape}")
    if dtype_kind and value.dtype.kind not in dtype_kind:
        raise DataFormatError(file, field, f"dtype kind {dtype_kind!r}", str(value.dtype))
    return value


def clean_features(array: np.ndarray, file: str | Path, field: str, nan: str = "error") -> np.ndarray:
    """Return float32 features with ``±inf`` set to 0 (as MMSA does); NaN raises, or becomes 0 if ``nan="zero"``.

    ``nan="keep"`` returns the values as read, NaN and ±inf included (for counting them, never for training).
    """
    out = np.asarray(array, dtype=np.float32)
    if nan == "keep":
        return out
    n_nan = int(np.isnan(out).sum())
    if n_nan and nan == "error":
        raise DataFormatError(file, field, "finite values (pass nan='zero' to replace NaN by 0)", f"{n_nan} NaN")
    if n_nan or not np.isfinite(out).all():
        out = np.where(np.isfinite(out), out, 0.0).astype(np.float32)
    return out


def count_nonfinite(array: np.ndarray) -> dict[str, int]:
    a = np.asarray(array)
    if a.dtype.kind != "f":
        return {"nan": 0, "neg_inf": 0, "pos_inf": 0}
    return {"nan": int(np.isnan(a).sum()), "neg_inf": int(np.isneginf(a).sum()), "pos_inf": int(np.isposinf(a).sum())}


def require_same_dim(dims: Mapping[str, int], file: str | Path, field: str) -> int:
    """All splits must agree on a feature dim; ``dims`` maps split name to dim."""
    values = set(dims.values())
    if len(values) > 1:
        raise DataFormatError(file, field, "the same feature dim in every split", dict(dims))
    return values.pop() if values else 0


def require_score(value: float, lo: float, hi: float, file: str | Path, field: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v < lo or v > hi:
        raise DataFormatError(file, field, f"a score in [{lo}, {hi}]", value)
    return v


def require_label(value: str, labels: Iterable[str], file: str | Path, field: str) -> str:
    labels = tuple(labels)
    if value not in labels:
        raise DataFormatError(file, field, f"one of {', '.join(labels)}", repr(value))
    return value


def require_text(value, file: str | Path, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataFormatError(file, field, "a non-empty string", repr(value))
    return value
