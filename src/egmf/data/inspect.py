"""``egmf data inspect``: what a dataset holds, before anyone trains on it.

:func:`inspect_dataset` loads a dataset through the registry (native files or a converted safe folder)
and reports, per split: the number of samples; per modality the feature dim(s), how many samples have
it or miss it, and frame-count statistics; the label distribution (ERC: counts per label word; MSA:
mean/std/min/max plus counts in the bins of the dataset's own metric, Acc-7 classes for MOSI/MOSEI
and Acc-5 bins for SIMS); secondary labels likewise; and NaN / -inf / +inf counts.

Non-finite counts are honest about where they come from: when the loader's module offers
``scan_nonfinite(path, **options)`` (MMSA does, because loading sets ``-inf`` to 0 as MMSA does), the
raw file is scanned before any cleaning. A native dataset is loaded with ``nan="keep"`` (unless the
caller passes ``nan``), so a file holding NaN is counted, not refused, and its arrays are counted as read;
a converted folder's arrays are counted as stored. The report says which in ``nonfinite_counted_in``.
Loading for training keeps refusing NaN (the loaders' default ``nan="error"``). :func:`render` turns a report into rich tables for the terminal.

Usage::

    report = inspect_dataset("mosei", "MOSEI/Processed/unaligned_50.pkl")
    for table in render(report):
        rich.print(table)
"""

from __future__ import annotations

import inspect as pyinspect
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rich.table import Table

from egmf.data.registry import DATASETS, load_dataset
from egmf.data.schema import MODALITIES, BenchmarkData, DatasetInfo, Sample

RAW = "raw file (before the loader's cleaning)"
LOADED = "loaded arrays (after the loader's cleaning)"
# The bins of each metric family's coarsest multi-class accuracy (DESIGN.md, metrics).
SIMS_BINS = ("[-1,-0.7]", "(-0.7,-0.1]", "(-0.1,0.1]", "(0.1,0.7]", "(0.7,1]")
SIMS_EDGES = (-0.7, -0.1, 0.1, 0.7)


def score_histogram(values: np.ndarray, info: DatasetInfo) -> dict[str, int]:
    """Counts per metric bin: MOSI/MOSEI Acc-7 classes (-3..3), SIMS Acc-5 bins, else 5 equal bins."""
    v = np.asarray(values, dtype=np.float64)
    if info.metric_family == "mosi":
        classes = np.round(np.clip(v, -3.0, 3.0)).astype(int)
        return {f"{k:+d}" if k else "0": int((classes == k).sum()) for k in range(-3, 4)}
    if info.metric_family == "sims":
        # Right-closed bins, as MMSA's SIMS metrics use: (a, b] except the first, which includes -1.
        idx = np.searchsorted(np.asarray(SIMS_EDGES), np.clip(v, -1.0, 1.0), side="left")
        return {name: int((idx == k).sum()) for k, name in enumerate(SIMS_BINS)}
    if info.score_range is not None:
        lo, hi = info.score_range
    else:
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
    hi = max(hi, lo + 1e-9)  # np.histogram needs a non-empty range
    counts, edges = np.histogram(np.clip(v, lo, hi), bins=5, range=(lo, hi))
    return {f"[{edges[k]:.2g},{edges[k + 1]:.2g}{']' if k == 4 else ')'}": int(c) for k, c in enumerate(counts)}


def _label_summary(values: Sequence[Any], info: DatasetInfo, words: Sequence[str] = ()) -> dict[str, Any]:
    labelled = [v for v in values if v is not None]
    out: dict[str, Any] = {"unlabelled": len(values) - len(labelled)}
    if labelled and all(isinstance(v, str) for v in labelled):
        counts = {w: 0 for w in words}
        for v in labelled:
            counts[v] = counts.get(v, 0) + 1
        out.update(kind="counts", counts=counts)
        return out
    scores = np.asarray(labelled, dtype=np.float64)
    out.update(kind="scores", n=int(scores.size))
    if scores.size:
        out.update(
            mean=float(scores.mean()),
            std=float(scores.std()),
            min=float(scores.min()),
            max=float(scores.max()),
            histogram=score_histogram(scores, info),
        )
    return out


def _modality_summary(samples: list[Sample], m: str) -> dict[str, Any]:
    arrays = [s.features(m) for s in samples]
    present = [a for a in arrays if a is not None]
    dims = sorted({int(a.shape[1]) for a in present})
    frames = np.asarray([a.shape[0] for a in present], dtype=np.int64)
    return {
        # One dim is the normal case; a list shows data that mixes dims (a user's custom data can).
        "dim": dims[0] if len(dims) == 1 else (dims or 0),
        "present": len(present),
        "missing": len(arrays) - len(present),
        "empty": int((frames == 0).sum()),
        "frames": (
            {"min": int(frames.min()), "mean": float(frames.mean()), "max": int(frames.max())} if frames.size else None
        ),
    }


def _count_loaded(samples: list[Sample], m: str) -> dict[str, int]:
    out = {"nan": 0, "neg_inf": 0, "pos_inf": 0}
    for s in samples:
        a = s.features(m)
        if a is not None and a.dtype.kind == "f":
            out["nan"] += int(np.isnan(a).sum())
            out["neg_inf"] += int(np.isneginf(a).sum())
            out["pos_inf"] += int(np.isposinf(a).sum())
    return out


def _raw_scanner(name: str):
    """The ``scan_nonfinite`` of the module that defines dataset ``name``'s loader, if it has one."""
    module = pyinspect.getmodule(DATASETS[name].loader)
    return getattr(module, "scan_nonfinite", None)


def _takes_nan(name: str) -> bool:
    params = pyinspect.signature(DATASETS[name].loader).parameters
    return "nan" in params


def inspect_dataset(name: str, path: str | Path, **options: Any) -> dict[str, Any]:
    """Load dataset ``name`` from ``path`` (loader ``options`` pass through) and describe it as a dict."""
    from egmf.data import safe_format
    from egmf.data.registry import register_builtin_datasets

    register_builtin_datasets()
    safe = safe_format.is_safe_dataset(path)
    kept = not safe and "nan" not in options and name in DATASETS and _takes_nan(name)
    # Inspecting is how a user finds NaN: load the values as read and count them instead of refusing the file.
    data: BenchmarkData = load_dataset(name, path, **({**options, "nan": "keep"} if kept else options))
    scanner = None if safe else _raw_scanner(name)
    raw_counts = scanner(Path(path), **options) if scanner else None
    info = data.info
    report: dict[str, Any] = {
        "dataset": name,
        "source": data.source,
        "format": "egmf-safe" if safe else "native",
        "task": info.task,
        "lang": info.lang,
        "metric_family": info.metric_family,
        "labels": list(info.labels),
        "score_range": list(info.score_range) if info.score_range else None,
        "nonfinite_counted_in": RAW if raw_counts is not None or kept else LOADED,
        "splits": {},
    }
    for split, samples in data.splits.items():
        extra_keys = list(dict.fromkeys(k for s in samples for k in s.extra_labels))
        nonfinite = {
            m: (raw_counts.get(split, {}).get(m, {"nan": 0, "neg_inf": 0, "pos_inf": 0}) if raw_counts is not None
                else _count_loaded(samples, m))
            for m in MODALITIES
        }
        report["splits"][split] = {
            "n": len(samples),
            "modalities": {m: _modality_summary(samples, m) for m in MODALITIES},
            "labels": _label_summary([s.label for s in samples], info, info.labels),
            "extra_labels": {k: _label_summary([s.extra_labels.get(k) for s in samples], info) for k in extra_keys},
            "nonfinite": nonfinite,
        }
    return report


# ---- rendering --------------------------------------------------------------------------------------
def _dim(v: Any) -> str:
    return "/".join(map(str, v)) if isinstance(v, list) else (str(v) if v else "-")


def _labels_table(report: dict[str, Any], key: str, title: str) -> Table | None:
    splits = report["splits"]
    summaries = {s: (r["labels"] if key == "" else r["extra_labels"].get(key)) for s, r in splits.items()}
    summaries = {s: v for s, v in summaries.items() if v is not None}
    if not summaries:
        return None
    table = Table(title=title)
    first = next(iter(summaries.values()))
    if first.get("kind") == "counts":
        table.add_column("label")
        for s in summaries:
            table.add_column(s, justify="right")
        words = list(dict.fromkeys(w for v in summaries.values() for w in v.get("counts", {})))
        for w in words:
            table.add_row(w, *(str(v.get("counts", {}).get(w, 0)) for v in summaries.values()))
    else:
        bins = list(dict.fromkeys(b for v in summaries.values() for b in v.get("histogram", {})))
        table.add_column("split")
        for col in ("mean", "std", "min", "max", *bins):
            table.add_column(col, justify="right")
        for s, v in summaries.items():
            stats = [f"{v[c]:.3f}" if c in v else "-" for c in ("mean", "std", "min", "max")]
            table.add_row(s, *stats, *(str(v.get("histogram", {}).get(b, 0)) for b in bins))
    if any(v.get("unlabelled") for v in summaries.values()):
        table.caption = "unlabelled: " + ", ".join(f"{s} {v['unlabelled']}" for s, v in summaries.items())
    return table


def render(report: dict[str, Any]) -> list[Table]:
    """Rich tables for a report: overview, frame counts, labels (and secondary labels), non-finite values."""
    splits = report["splits"]
    overview = Table(title=f"{report['dataset']} ({report['task']}, {report['lang']}) from {report['source']}")
    overview.add_column("split")
    overview.add_column("samples", justify="right")
    for m in MODALITIES:
        overview.add_column(f"{m} dim", justify="right")
        overview.add_column(f"{m} missing", justify="right")
    for s, r in splits.items():
        cells = []
        for m in MODALITIES:
            mod = r["modalities"][m]
            cells += [_dim(mod["dim"]), str(mod["missing"])]
        overview.add_row(s, str(r["n"]), *cells)

    lengths = Table(title="frames per sample (min / mean / max)")
    lengths.add_column("split")
    for m in MODALITIES:
        lengths.add_column(m, justify="right")
    for s, r in splits.items():
        cells = []
        for m in MODALITIES:
            f = r["modalities"][m]["frames"]
            cells.append(f"{f['min']} / {f['mean']:.1f} / {f['max']}" if f else "-")
        lengths.add_row(s, *cells)

    nonfinite = Table(title=f"NaN / -inf / +inf, counted in the {report['nonfinite_counted_in']}")
    nonfinite.add_column("split")
    for m in MODALITIES:
        nonfinite.add_column(m, justify="right")
    for s, r in splits.items():
        nonfinite.add_row(s, *("{nan} / {neg_inf} / {pos_inf}".format(**r["nonfinite"][m]) for m in MODALITIES))

    tables = [overview, lengths]
    labels = _labels_table(report, "", "labels")
    if labels is not None:
        tables.append(labels)
    extra_keys = list(dict.fromkeys(k for r in splits.values() for k in r["extra_labels"]))
    for k in extra_keys:
        t = _labels_table(report, k, f"secondary label {k}")
        if t is not None:
            tables.append(t)
    tables.append(nonfinite)
    return tables
