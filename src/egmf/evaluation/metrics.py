"""Metrics exactly as papers report them (DESIGN.md, "Metrics").

The MSA definitions follow MMSA's ``utils/metricsTop.py`` (``__eval_mosei_regression`` and
``__eval_sims_regression``), the file behind the published MOSI/MOSEI/SIMS tables:

* MOSI/MOSEI: Acc-7/5/3 clip both arrays to [-3,3] / [-2,2] / [-1,1], then ``np.round`` (round half to
  even: 2.5 -> 2, -0.5 -> -0, 1.5 -> 2) and count equal classes. Has0 Acc-2/F1 binarise ``>= 0`` on all
  samples; Non0 Acc-2/F1 drop the samples whose *truth* is exactly 0 and binarise ``> 0`` (so a prediction
  of exactly 0 counts as negative there). F1 is scikit-learn's weighted F1. MAE and Pearson Corr use the
  unclipped values.
* SIMS/SIMS v2: clip both to [-1,1] first (MAE and Corr use the clipped values). Bins are left-open,
  right-closed: Acc-2 [-1,0], (0,1]; Acc-3 [-1,-0.1], (-0.1,0.1], (0.1,1]; Acc-5 [-1,-0.7], (-0.7,-0.1],
  (-0.1,0.1], (0.1,0.7], (0.7,1]. F1 is the weighted F1 of the two Acc-2 bins.

Differences from MMSA, all deliberate: values are not rounded to 4 decimals (round for display only,
see :func:`egmf.evaluation.aggregate.format_table`); MAE and Corr are computed in float64 (MMSA uses the
tensor's float32, a difference below 1e-6). Bin and class comparisons stay in the input's own float dtype,
as in MMSA, so float32 labels such as ``np.float32(0.1)`` land in the same bin as MMSA puts them.

Undefined values are NaN, never a crash: Pearson Corr of a constant array (or of one sample) is NaN,
silently (an untrained model predicting a constant would otherwise warn at every evaluation); Non0
Acc-2/F1 when every truth is exactly 0 is NaN with a :class:`MetricWarning`. Inputs that cannot be scored
raise ``ValueError``: empty input, lengths that differ, non-finite scores, ERC labels outside the label set.

All values are fractions (0.8512), never percents.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from typing import Any, Literal, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from egmf.data.schema import DatasetInfo
from egmf.errors import ConfigError

MOSI_KEYS = ("acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc3", "acc5", "acc7", "mae", "corr")
SIMS_KEYS = ("acc2", "acc3", "acc5", "f1", "mae", "corr")
ERC_KEYS = ("accuracy", "weighted_f1", "macro_f1", "f1_per_class", "confusion_matrix", "support")
ERC_SCALAR_KEYS = ("accuracy", "weighted_f1", "macro_f1")
FAMILY_KEYS: dict[str, tuple[str, ...]] = {"erc": ERC_SCALAR_KEYS, "mosi": MOSI_KEYS, "sims": SIMS_KEYS}

# Interior bin edges of the SIMS metrics (MMSA's ms_2/ms_3/ms_5 without the outer -1.01/1.01, which only
# enclose the clipped range). A value equal to an edge belongs to the lower bin.
SIMS_EDGES = {2: (0.0,), 3: (-0.1, 0.1), 5: (-0.7, -0.1, 0.1, 0.7)}

# Model selection on the valid split. ERC: weighted F1, the number papers report. MSA: MAE, because MMSA
# selects regression models on the valid L1 loss (``KeyEval: "Loss"``), which is the MAE; our generative
# model's loss is token cross-entropy, so the MAE of the decoded scores stands in for it.
MAIN_METRIC: dict[str, tuple[str, Literal["max", "min"]]] = {
    "erc": ("weighted_f1", "max"),
    "mosi": ("mae", "min"),
    "sims": ("mae", "min"),
}
_LOWER_IS_BETTER = {"mae"}


class MetricWarning(UserWarning):
    """A metric is undefined on this input and was reported as NaN."""


# ----------------------------------------------------------------------------------------------- inputs
def _vector(values: Any, name: str) -> np.ndarray:
    """A 1-D float array; float32/float64 inputs keep their dtype (bins compare in it, as MMSA does)."""
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:  # a [N, 1] regression head output
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of scores, got shape {arr.shape}")
    if arr.dtype.kind == "f" and arr.dtype.itemsize >= 4:
        return arr
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected numeric scores, got dtype {arr.dtype}") from exc


def _check_lengths(n_pred: int, n_true: int) -> None:
    if n_pred != n_true:
        raise ValueError(f"predictions has {n_pred} values but truths has {n_true}; they must match")
    if n_pred == 0:
        raise ValueError("no samples to score: predictions and truths are empty")


def _scores(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = _vector(pred, "predictions"), _vector(true, "truths")
    _check_lengths(len(p), len(t))
    for name, arr in (("predictions", p), ("truths", t)):
        bad = int((~np.isfinite(arr)).sum())
        if bad:
            raise ValueError(f"{name}: {bad} of {len(arr)} values are NaN or infinite; scores must be finite")
    return p, t


# ------------------------------------------------------------------------------------------- primitives
def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation as ``np.corrcoef``; NaN (without a warning) when either side is constant or n < 2."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with np.errstate(all="ignore"):
        r = float(np.corrcoef(x, y)[0, 1])
    return r if math.isfinite(r) else math.nan


def _weighted_f1(true: np.ndarray, pred: np.ndarray) -> float:
    # zero_division=0 gives the numbers of sklearn's default ("warn", which also scores 0) without the warning.
    return float(f1_score(true, pred, average="weighted", zero_division=0))


def _round_acc(pred: np.ndarray, true: np.ndarray, bound: float) -> float:
    """MMSA's ``__multiclass_acc`` after clipping to [-bound, bound]: ``np.round`` is round half to even."""
    p = np.clip(pred, -bound, bound)
    t = np.clip(true, -bound, bound)
    return float(np.mean(np.round(p) == np.round(t)))


def sims_bins(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each (already clipped) value: bin i holds ``edge[i-1] < v <= edge[i]``."""
    # Edges in the values' dtype, so float32 labels compare against float32 edges (as in MMSA).
    edges = np.asarray(SIMS_EDGES[n_bins], dtype=values.dtype)
    return np.searchsorted(edges, values, side="left")


# ---------------------------------------------------------------------------------------------- families
def mosi_metrics(pred: Any, true: Any) -> dict[str, float]:
    """MOSI/MOSEI regression metrics (MMSA ``__eval_mosei_regression``), keys :data:`MOSI_KEYS`."""
    p, t = _scores(pred, true)
    out: dict[str, float] = {}
    bt, bp = t >= 0, p >= 0
    out["acc2_has0"] = float(accuracy_score(bt, bp))
    out["f1_has0"] = _weighted_f1(bt, bp)
    nz = t != 0
    if nz.any():
        out["acc2_non0"] = float(accuracy_score(t[nz] > 0, p[nz] > 0))
        out["f1_non0"] = _weighted_f1(t[nz] > 0, p[nz] > 0)
    else:
        warnings.warn(
            "every truth is exactly 0, so Non0 Acc-2/F1 have no samples; reported as NaN",
            MetricWarning,
            stacklevel=2,
        )
        out["acc2_non0"] = out["f1_non0"] = math.nan
    out["acc3"] = _round_acc(p, t, 1.0)
    out["acc5"] = _round_acc(p, t, 2.0)
    out["acc7"] = _round_acc(p, t, 3.0)
    p64, t64 = p.astype(np.float64), t.astype(np.float64)
    out["mae"] = float(np.mean(np.abs(p64 - t64)))
    out["corr"] = pearson(p64, t64)
    return {k: out[k] for k in MOSI_KEYS}


def sims_metrics(pred: Any, true: Any) -> dict[str, float]:
    """SIMS/SIMS v2 regression metrics (MMSA ``__eval_sims_regression``), keys :data:`SIMS_KEYS`."""
    p, t = _scores(pred, true)
    p = np.clip(p, -1.0, 1.0)
    t = np.clip(t, -1.0, 1.0)
    out: dict[str, float] = {}
    for n in (2, 3, 5):
        out[f"acc{n}"] = float(np.mean(sims_bins(p, n) == sims_bins(t, n)))
    out["f1"] = _weighted_f1(sims_bins(t, 2), sims_bins(p, 2))
    p64, t64 = p.astype(np.float64), t.astype(np.float64)
    out["mae"] = float(np.mean(np.abs(p64 - t64)))
    out["corr"] = pearson(p64, t64)
    return {k: out[k] for k in SIMS_KEYS}


def erc_metrics(pred_labels: Sequence[str], true_labels: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Emotion-recognition metrics over the label words ``labels`` (their order sets the matrix order).

    ``accuracy``, ``weighted_f1`` (support-weighted, the MELD/CHERMA headline), ``macro_f1`` (over the labels
    that occur in truth or prediction, scikit-learn's default), ``f1_per_class`` ({label: F1}, 0.0 for a
    label that occurs in neither), ``confusion_matrix`` (rows = truth, columns = prediction, in ``labels``
    order) and ``support`` ({label: count in truth}).
    """
    labels = [str(x) for x in labels]
    if not labels:
        raise ValueError("labels: expected at least one label word, got none")
    if len(set(labels)) != len(labels):
        dup = sorted(k for k, c in Counter(labels).items() if c > 1)
        raise ValueError(f"labels: expected distinct label words, got duplicates {dup}")
    pred = [str(x) for x in pred_labels]
    true = [str(x) for x in true_labels]
    _check_lengths(len(pred), len(true))
    allowed = set(labels)
    for name, values in (("predictions", pred), ("truths", true)):
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(f"{name}: labels {unknown[:5]} are not in the label set {labels}")
    per_class = f1_score(true, pred, labels=labels, average=None, zero_division=0)
    counts = Counter(true)
    return {
        "accuracy": float(accuracy_score(true, pred)),
        "weighted_f1": float(f1_score(true, pred, labels=labels, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(true, pred, average="macro", zero_division=0)),
        "f1_per_class": {lab: float(f) for lab, f in zip(labels, per_class)},
        "confusion_matrix": confusion_matrix(true, pred, labels=labels).tolist(),
        "support": {lab: int(counts.get(lab, 0)) for lab in labels},
    }


# ----------------------------------------------------------------------------------------------- dispatch
def _plain(values: Sequence[Any], attr: str) -> list[Any]:
    """Accept plain values or objects carrying them (``Prediction.prediction``, ``Sample.label``)."""
    return [getattr(v, attr) if hasattr(v, attr) else v for v in values]


def _family(info: DatasetInfo | str) -> str:
    family = info if isinstance(info, str) else info.metric_family
    if family not in FAMILY_KEYS:
        name = family if isinstance(info, str) else f"{info.name}.metric_family={family!r}"
        raise ConfigError(f"unknown metric family {name}; valid choices: {sorted(FAMILY_KEYS)}")
    return family


def compute_metrics(info: DatasetInfo, predictions: Sequence[Any], truths: Sequence[Any]) -> dict[str, Any]:
    """The metrics of ``info.metric_family`` (``erc``, ``mosi`` or ``sims``).

    ``predictions`` may be plain values or :class:`egmf.model.base.Prediction` objects; ``truths`` plain
    values or :class:`egmf.data.schema.Sample` objects.
    """
    family = _family(info)
    pred = _plain(predictions, "prediction")
    true = _plain(truths, "label")
    if family == "erc":
        return erc_metrics(pred, true, info.labels)
    if family == "mosi":
        return mosi_metrics(pred, true)
    return sims_metrics(pred, true)


def main_metric(info: DatasetInfo | str, override: str | None = None) -> tuple[str, Literal["max", "min"]]:
    """``(key, "max"|"min")`` used to select a checkpoint on the valid split; ``override`` picks another key."""
    family = _family(info)
    if override is None:
        return MAIN_METRIC[family]
    if override not in FAMILY_KEYS[family]:
        raise ConfigError(
            f"main metric {override!r} is not a {family} metric; valid choices: {list(FAMILY_KEYS[family])}"
        )
    return override, ("min" if override in _LOWER_IS_BETTER else "max")


def is_improvement(value: float, best: float | None, mode: Literal["max", "min"]) -> bool:
    """Whether ``value`` beats ``best`` (``None`` = nothing yet). NaN never improves; ties do not either."""
    if value is None or not math.isfinite(value):
        return False
    if best is None or not math.isfinite(best):
        return True
    return value > best if mode == "max" else value < best
