"""Results over several seeds: mean and std per metric, the results CSV, and a console/markdown table.

MMSA runs 5 seeds (1111..1115) and reports ``np.mean`` and ``np.std`` of each metric, i.e. the
*population* std (``ddof=0``), not the sample std. We do the same so our numbers compare with MMSA's
tables; with 5 seeds the sample std is sqrt(5/4) = 1.118 times larger.

MMSA's CSV holds one row per model with ``(mean, std)`` tuples in percent. Ours keeps every seed: one row
per seed, then a ``mean`` row and a ``std`` row, with values as fractions (0.8512) at full precision, so a
script can read it back; :func:`format_table` is where percents and rounding happen.
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

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

    The file is written to a temporary name and renamed, so a crash never leaves half a CSV.
    """
    path = Path(path)
    df = results_table(per_seed, summary=summary)
    if model is not None:
        df.insert(0, "model", model)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            df.to_csv(fh, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------------------------- the table
# (key, header, percent?) per family, in the order papers print them.
TABLE_COLUMNS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "mosi": (
        ("acc2_has0", "Acc-2 has0", True),
        ("acc2_non0", "Acc-2 non0", True),
        ("f1_has0", "F1 has0", True),
        ("f1_non0", "F1 non0", True),
        ("acc7", "Acc-7", True),
        ("acc5", "Acc-5", True),
        ("acc3", "Acc-3", True),
        ("mae", "MAE", False),
        ("corr", "Corr", False),
    ),
    "sims": (
        ("acc2", "Acc-2", True),
        ("f1", "F1", True),
        ("acc3", "Acc-3", True),
        ("acc5", "Acc-5", True),
        ("mae", "MAE", False),
        ("corr", "Corr", False),
    ),
    "erc": (
        ("accuracy", "Acc", True),
        ("weighted_f1", "w-F1", True),
        ("macro_f1", "macro-F1", True),
    ),
}


def _fmt(value: float, percent: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value * 100:.2f}" if percent else f"{value:.4f}"


def _cell(value: Any, percent: bool) -> str:
    if isinstance(value, Mapping) and "mean" in value:
        return f"{_fmt(value['mean'], percent)} ± {_fmt(value.get('std', math.nan), percent)}"
    return _fmt(value, percent) if _is_number(value) else "-"


def format_table(metrics: Mapping[str, Any], family: str) -> str:
    """A compact markdown table: accuracies and F1 in percent (2 decimals), MAE and Corr raw (4 decimals).

    ``metrics`` is one run's metrics, an :func:`aggregate_seeds` result (cells read ``mean ± std``), or
    named rows ``{"EGMF": metrics, "majority": metrics}`` of either kind (a first column holds the names).
    """
    if family not in TABLE_COLUMNS:
        raise ValueError(f"format_table: unknown family {family!r}; valid choices: {sorted(TABLE_COLUMNS)}")
    cols = TABLE_COLUMNS[family]
    is_row = any(k in metrics for k in FAMILY_KEYS[family])
    rows = {"": metrics} if is_row else dict(metrics)
    named = not is_row
    header = (["run"] if named else []) + [h for _, h, _ in cols]
    align = (["---"] if named else []) + ["---:"] * len(cols)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for name, row in rows.items():
        if not isinstance(row, Mapping):
            raise ValueError(f"format_table: row {name!r} is not a metrics mapping")
        cells = ([str(name)] if named else []) + [_cell(row.get(k), pct) for k, _, pct in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
