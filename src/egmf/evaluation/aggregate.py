"""Results over several seeds: mean and std per metric, the results CSV, and the one table path.

MMSA runs 5 seeds (1111..1115) and reports ``np.mean`` and ``np.std`` of each metric, i.e. the
*population* std (``ddof=0``), not the sample std. We do the same so our numbers compare with MMSA's
tables; with 5 seeds the sample std is sqrt(5/4) = 1.118 times larger.

MMSA's CSV holds one row per model with ``(mean, std)`` tuples in percent. Ours keeps every seed: one row
per seed, then a ``mean`` row and a ``std`` row, with values as fractions (0.8512) at full precision, so a
script can read it back; :func:`format_cell` is where percents and rounding happen.

Every table EGMF writes (the metric tables here and in ``egmf train``'s console output, the ablation and
transfer tables, the benchmark sections) is a DataFrame of cells from :func:`format_cell`, rendered by
:func:`to_markdown` and saved with :func:`write_csv` / ``egmf.atomic``.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from egmf.atomic import atomic_file
from egmf.evaluation.metrics import FAMILY_KEYS

# Keys left out of tables and CSVs by default: counts and the confusion matrix are not per-seed scores.
DEFAULT_SKIP = ("confusion_matrix", "support")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def flatten_metrics(metrics: Mapping[str, Any], skip: Sequence[str] = DEFAULT_SKIP) -> dict[str, float]:
    """Scalar metrics plus one level of nested numbers as ``parent.child`` (``f1_per_class.joy``)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if key in skip:
            continue
        if _is_number(value):
            flat[key] = float(value)
        elif isinstance(value, Mapping):
            for sub, v in value.items():
                if _is_number(v):
                    flat[f"{key}.{sub}"] = float(v)
    return flat


def aggregate_seeds(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std"}}`` over the numeric top-level keys of each seed's metrics.

    std is the population std (``np.std``, ddof=0), as MMSA reports it. A NaN in any seed makes that
    metric's mean and std NaN (an undefined metric stays visible). Every result must carry the same
    numeric keys.
    """
    if not results:
        raise ValueError("aggregate_seeds: no results to aggregate")
    numeric = [{k: float(v) for k, v in r.items() if _is_number(v)} for r in results]
    keys = list(numeric[0])
    for i, r in enumerate(numeric[1:], start=1):
        if set(r) != set(keys):
            missing = sorted(set(keys) - set(r))
            extra = sorted(set(r) - set(keys))
            raise ValueError(
                f"aggregate_seeds: result {i} has other metrics than result 0 (missing {missing}, extra {extra})"
            )
    out = {}
    for k in keys:
        values = np.array([r[k] for r in numeric], dtype=np.float64)
        out[k] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    return out


def results_table(rows: Mapping[Any, Mapping[str, Any]], summary: bool = True) -> pd.DataFrame:
    """One row per seed (``rows`` maps seed -> metrics), then ``mean`` and ``std`` rows when ``summary``.

    Columns: ``seed`` then the flattened metrics (:func:`flatten_metrics`) in the first seed's order.
    """
    if not rows:
        raise ValueError("results_table: no rows")
    flat = {seed: flatten_metrics(m) for seed, m in rows.items()}
    columns = list(next(iter(flat.values())))
    records = [{"seed": str(seed), **{c: m.get(c, math.nan) for c in columns}} for seed, m in flat.items()]
    if summary:
        agg = aggregate_seeds([{c: m.get(c, math.nan) for c in columns} for m in flat.values()])
        records.append({"seed": "mean", **{c: agg[c]["mean"] for c in columns}})
        records.append({"seed": "std", **{c: agg[c]["std"] for c in columns}})
    return pd.DataFrame.from_records(records, columns=["seed", *columns])


def write_results_csv(
    path: str | Path, per_seed: Mapping[int, Mapping[str, Any]], model: str | None = None, summary: bool = True
) -> Path:
    """Write :func:`results_table` to ``path`` (UTF-8), with a leading ``model`` column when ``model`` is given.

    Written atomically (``egmf.atomic``), so a crash never leaves half a CSV.
    """
    df = results_table(per_seed, summary=summary)
    if model is not None:
        df.insert(0, "model", model)
    return write_csv(df, path)


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """``df`` as a UTF-8 CSV without the index, written atomically."""
    with atomic_file(path, newline="") as fh:
        df.to_csv(fh, index=False)
    return Path(path)


# --------------------------------------------------------------------------------------------- the table
# Metrics printed raw (4 decimals); every other score is a fraction printed as a percent (2 decimals).
RAW_METRICS = frozenset({"mae", "corr", "loss"})

# key -> header per family, in the order papers print them.
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "mosi": {
        "acc2_has0": "Acc-2 has0", "acc2_non0": "Acc-2 non0", "f1_has0": "F1 has0", "f1_non0": "F1 non0",
        "acc7": "Acc-7", "acc5": "Acc-5", "acc3": "Acc-3", "mae": "MAE", "corr": "Corr",
    },
    "sims": {"acc2": "Acc-2", "f1": "F1", "acc3": "Acc-3", "acc5": "Acc-5", "mae": "MAE", "corr": "Corr"},
    "erc": {"accuracy": "Acc", "weighted_f1": "w-F1", "macro_f1": "macro-F1"},
}


def is_percent(key: str) -> bool:
    return key not in RAW_METRICS


def _fmt(value: float, percent: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value * 100:.2f}" if percent else f"{value:.4f}"


def format_cell(value: Any, percent: bool, std: bool = True) -> str:
    """The one table cell: a number, or ``mean ± std`` of an :func:`aggregate_seeds` entry (``std=False``
    prints the mean alone, for one seed); percent with 2 decimals or raw with 4; ``-`` when absent."""
    if isinstance(value, Mapping) and "mean" in value:
        mean = _fmt(value["mean"], percent)
        return f"{mean} ± {_fmt(value.get('std', math.nan), percent)}" if std else mean
    return _fmt(value, percent) if _is_number(value) else "-"


def metric_cells(metrics: Mapping[str, Any], family: str) -> dict[str, str]:
    """``{header: cell}`` of a family's table columns (one run's metrics or an aggregate)."""
    return {header: format_cell(metrics.get(key), is_percent(key)) for key, header in _columns(family).items()}


def metric_numbers(summary: Mapping[str, Mapping[str, float]], family: str) -> dict[str, float]:
    """``{key_mean, key_std}`` of a family's columns in an aggregate, unrounded (the CSV beside a table)."""
    return {f"{k}_{s}": summary[k][s] for k in _columns(family) if k in summary for s in ("mean", "std")}


def _columns(family: str) -> dict[str, str]:
    if family not in TABLE_COLUMNS:
        raise ValueError(f"unknown family {family!r}; valid choices: {sorted(TABLE_COLUMNS)}")
    return TABLE_COLUMNS[family]


def to_markdown(df: pd.DataFrame, labels: int = 1) -> str:
    """``df`` as a markdown table: the first ``labels`` columns (names) left-aligned, the rest (numbers)
    right-aligned; cells are printed as given (pre-formatted strings are never re-parsed as numbers)."""
    align = ["left"] * labels + ["right"] * (len(df.columns) - labels)
    return df.astype(str).to_markdown(index=False, colalign=align, disable_numparse=True)


def format_table(metrics: Mapping[str, Any], family: str) -> str:
    """A compact markdown table: accuracies and F1 in percent (2 decimals), MAE and Corr raw (4 decimals).

    ``metrics`` is one run's metrics, an :func:`aggregate_seeds` result (cells read ``mean ± std``), or
    named rows ``{"EGMF": metrics, "majority": metrics}`` of either kind (a first column holds the names).
    """
    try:
        keys = FAMILY_KEYS[family]
    except KeyError:
        raise ValueError(f"format_table: unknown family {family!r}; valid choices: {sorted(TABLE_COLUMNS)}") from None
    named = not any(k in metrics for k in keys)
    rows = dict(metrics) if named else {"": metrics}
    records = []
    for name, row in rows.items():
        if not isinstance(row, Mapping):
            raise ValueError(f"format_table: row {name!r} is not a metrics mapping")
        records.append(({"run": str(name)} if named else {}) | metric_cells(row, family))
    return to_markdown(pd.DataFrame.from_records(records), labels=1 if named else 0)
