"""Loaders for the MMSA pickles: CMU-MOSI, CMU-MOSEI, CH-SIMS and CH-SIMS v2 (DESIGN.md, "MMSA pickle").

A file is a dict ``{train, valid, test}``; each split holds ``raw_text``, ``id`` ("video$_$clip"),
``text`` (N, L, 768 BERT features), optionally ``text_bert`` (N, 3, L: ids, mask, segment),
``audio`` (N, Ta, da), ``vision`` (N, Tv, dv), ``audio_lengths``/``vision_lengths`` (unaligned files),
``regression_labels`` (N,) and, for SIMS and SIMS v2, ``regression_labels_T``/``_A``/``_V``.

The whole file is validated before any :class:`Sample` is built, so a bad file raises one
:class:`DataFormatError` naming file and field and nothing is half-loaded. ``-inf`` (which real MOSEI
audio holds) is set to 0 exactly as MMSA does and logged; NaN is an error unless ``nan="zero"``.
Dims and lengths come from the arrays, never from a config.

Usage::

    from egmf.data import load_dataset
    data = load_dataset("mosei", "MOSEI/Processed/unaligned_50.pkl")
    data = load_dataset("mosi", "MOSI/Processed", variant="aligned")  # folder holding aligned_50.pkl
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from egmf.data import validate as V
from egmf.data.registry import register_dataset
from egmf.data.safe_pickle import safe_load
from egmf.data.schema import SPLITS, BenchmarkData, DatasetInfo, Sample
from egmf.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

VARIANTS = ("aligned", "unaligned")
FEATURE_KEYS = {"text": "text", "audio": "audio", "vision": "vision"}  # sample field -> pickle key
LENGTH_KEYS = {"audio": "audio_lengths", "vision": "vision_lengths"}
UNIMODAL = ("T", "A", "V")


@dataclass(frozen=True)
class Flavour:
    """What differs between the four MMSA datasets: language, score range, metric family, T/A/V labels."""

    name: str
    lang: str
    score_range: tuple[float, float]
    metric_family: str
    unimodal_labels: bool
    description: str

    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=self.name,
            task="msa",
            lang=self.lang,  # type: ignore[arg-type]
            score_range=self.score_range,
            metric_family=self.metric_family,
        )


FLAVOURS: dict[str, Flavour] = {
    "mosi": Flavour("mosi", "en", (-3.0, 3.0), "mosi", False, "CMU-MOSI (MMSA pickle), English, scores in [-3, 3]"),
    "mosei": Flavour("mosei", "en", (-3.0, 3.0), "mosi", False, "CMU-MOSEI (MMSA pickle), English, scores in [-3, 3]"),
    "sims": Flavour("sims", "zh", (-1.0, 1.0), "sims", True, "CH-SIMS (MMSA pickle), Chinese, [-1, 1] + T/A/V labels"),
    "simsv2": Flavour(
        "simsv2", "zh", (-1.0, 1.0), "sims", True, "CH-SIMS v2 (MMSA pickle), Chinese, [-1, 1] + T/A/V labels"
    ),
}


def required_keys(flavour: Flavour) -> list[str]:
    keys = ["raw_text", "id", "text", "audio", "vision", "regression_labels"]
    if flavour.unimodal_labels:
        keys += [f"regression_labels_{m}" for m in UNIMODAL]
    return keys


def resolve_pickle(path: Path, variant: str | None = None) -> Path:
    """The pickle to read: ``path`` itself, or the one pickle in folder ``path`` that matches ``variant``.

    MMSA folders hold ``aligned_50.pkl`` and ``unaligned_50.pkl`` (MOSI, MOSEI), ``unaligned_39.pkl``
    (SIMS) or a single ``ch-simsv2s.pkl`` (SIMS v2), so a folder with one pickle needs no variant.
    """
    if variant is not None and variant not in VARIANTS:
        raise ConfigError(f"variant: expected one of {', '.join(VARIANTS)}, got {variant!r}")
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataFormatError(path, "path", "an MMSA .pkl file or a folder holding one")
    found = sorted(p for p in path.glob("*.pkl") if p.is_file())
    if variant is not None:
        found = [p for p in found if p.name.startswith(f"{variant}_")]
    if len(found) == 1:
        return found[0]
    names = [p.name for p in found]
    if not found:
        want = f"a {variant}_*.pkl file" if variant else "an MMSA .pkl file (aligned_50.pkl, unaligned_50.pkl)"
        raise DataFormatError(path, "path", want, "none in the folder")
    raise DataFormatError(path, "path", "exactly one pickle (pass variant='aligned' or 'unaligned')", names)


def _string_list(value: Any, file: Path, field: str) -> list[str]:
    """``raw_text`` and ``id`` are lists or 1-D numpy arrays of strings (object or unicode dtype)."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise DataFormatError(file, field, "a 1-D list of strings", f"shape {value.shape}")
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise DataFormatError(file, field, "a list of strings", type(value).__name__)
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bytes):  # Python 2 pickles may hold byte strings
            v = v.decode("utf-8", errors="strict")
        out.append(V.require_text(v, file, f"{field}[{i}]"))
    return out


def _float_vector(value: Any, file: Path, field: str) -> np.ndarray:
    arr = np.asarray(value) if isinstance(value, (list, tuple)) else value
    return V.require_array(arr, file, field, ndim=1, dtype_kind="fiu").astype(np.float64)


def _lengths(value: Any, file: Path, field: str, n: int, t_max: int) -> np.ndarray:
    arr = np.asarray(value) if isinstance(value, (list, tuple)) else value
    arr = V.require_array(arr, file, field, ndim=1, dtype_kind="fiu")
    if arr.shape[0] != n:
        raise DataFormatError(file, field, f"{n} entries (one per sample)", arr.shape[0])
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise DataFormatError(file, field, "whole numbers", "non-integer values")
    lengths = arr.astype(np.int64)
    bad = np.flatnonzero((lengths < 0) | (lengths > t_max))
    if bad.size:
        i = int(bad[0])
        raise DataFormatError(
            file, f"{field}[{i}]", f"a length in [0, {t_max}] (the sequence length)", int(lengths[i])
        )
    return lengths


@dataclass
class _Split:
    """One split after validation: arrays with a common N, plus the per-sample frame counts."""

    ids: list[str]
    texts: list[str]
    feats: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]
    labels: np.ndarray
    extra: dict[str, np.ndarray]


def _check_split(raw: Any, split: str, file: Path, flavour: Flavour) -> _Split:
    if not isinstance(raw, Mapping):
        raise DataFormatError(file, split, "a dict of arrays", type(raw).__name__)
    V.require_keys(raw, required_keys(flavour), file, where=split)
    lo, hi = flavour.score_range
    labels = _float_vector(raw["regression_labels"], file, f"{split}.regression_labels")
    n = labels.shape[0]

    def same_n(field: str, got: int) -> None:
        if got != n:
            raise DataFormatError(file, f"{split}.{field}", f"{n} samples (as regression_labels)", got)

    texts = _string_list(raw["raw_text"], file, f"{split}.raw_text")
    same_n("raw_text", len(texts))
    ids = _string_list(raw["id"], file, f"{split}.id")
    same_n("id", len(ids))
    feats = {}
    for field, key in FEATURE_KEYS.items():
        arr = V.require_array(raw[key], file, f"{split}.{key}", ndim=3, dtype_kind="fiu")
        same_n(key, arr.shape[0])
        feats[field] = arr

    lengths: dict[str, np.ndarray] = {}
    t_text = feats["text"].shape[1]
    if "text_bert" in raw:
        bert = raw["text_bert"]
        bert = V.require_array(np.asarray(bert) if isinstance(bert, list) else bert, file, f"{split}.text_bert", 3, "fiu")
        same_n("text_bert", bert.shape[0])
        if bert.shape[1] != 3 or bert.shape[2] != t_text:
            raise DataFormatError(
                file, f"{split}.text_bert", f"shape (N, 3, {t_text}) (ids, mask, segment; L as text)", bert.shape
            )
        mask = bert[:, 1, :]
        if not np.isin(mask, (0, 1)).all():
            raise DataFormatError(file, f"{split}.text_bert[:, 1]", "an attention mask of 0 and 1", "other values")
        lengths["text"] = mask.sum(axis=1).astype(np.int64)
    else:
        lengths["text"] = np.full(n, t_text, dtype=np.int64)
    for field, key in LENGTH_KEYS.items():
        t_max = feats[field].shape[1]
        if key in raw:
            lengths[field] = _lengths(raw[key], file, f"{split}.{key}", n, t_max)
        else:  # aligned files: every sample uses the full (word-aligned) sequence
            lengths[field] = np.full(n, t_max, dtype=np.int64)

    for i, v in enumerate(labels):
        V.require_score(v, lo, hi, file, f"{split}.regression_labels[{i}]")
    extra = {}
    if flavour.unimodal_labels:
        for m in UNIMODAL:
            key = f"regression_labels_{m}"
            vec = _float_vector(raw[key], file, f"{split}.{key}")
            same_n(key, vec.shape[0])
            for i, v in enumerate(vec):
                V.require_score(v, lo, hi, file, f"{split}.{key}[{i}]")
            extra[m] = vec
    return _Split(ids, texts, feats, lengths, labels, extra)


def _clean(splits: dict[str, _Split], file: Path, nan: str) -> dict[str, dict[str, int]]:
    """Replace ±inf by 0 (MMSA does ``audio[audio == -inf] = 0``); NaN raises unless ``nan="zero"``.

    Returns what was cleaned, per ``split.key``, so callers can log it.
    """
    cleaned: dict[str, dict[str, int]] = {}
    for split, s in splits.items():
        for field, arr in s.feats.items():
            counts = V.count_nonfinite(arr)
            s.feats[field] = V.clean_features(arr, file, f"{split}.{FEATURE_KEYS[field]}", nan=nan)
            if any(counts.values()):
                cleaned[f"{split}.{FEATURE_KEYS[field]}"] = counts
    return cleaned


def load_mmsa(path: Path, flavour: str, nan: str = "error", variant: str | None = None, **options: Any) -> BenchmarkData:
    """Load an MMSA pickle of ``flavour`` (mosi, mosei, sims, simsv2); see the module docstring."""
    if options:
        raise ConfigError(f"{flavour}: unknown loader options {sorted(options)}; valid: nan, variant")
    V.check_nan_policy(nan)
    fl = FLAVOURS[flavour]
    file = resolve_pickle(Path(path), variant)
    raw = safe_load(file)
    if not isinstance(raw, Mapping):
        raise DataFormatError(file, "top level", "a dict with train, valid, test", type(raw).__name__)
    V.require_keys(raw, SPLITS, file)
    splits = {name: _check_split(raw[name], name, file, fl) for name in SPLITS}
    for field, key in FEATURE_KEYS.items():
        V.require_same_dim({name: s.feats[field].shape[2] for name, s in splits.items()}, file, key)
    cleaned = _clean(splits, file, nan)
    for where, counts in cleaned.items():
        done = "kept" if nan == "keep" else "set to 0"
        logger.info("%s: %s: %s non-finite values %s", file, where, counts, done)

    info = fl.info()
    out: dict[str, list[Sample]] = {}
    for name, s in splits.items():
        samples = []
        for i in range(len(s.ids)):
            feats = {m: s.feats[m][i, : int(s.lengths[m][i])] for m in FEATURE_KEYS}
            samples.append(
                Sample(
                    id=s.ids[i],
                    text=s.texts[i],
                    label=float(s.labels[i]),
                    dataset=info.name,
                    task=info.task,
                    lang=info.lang,
                    text_feats=feats["text"],
                    audio=feats["audio"],
                    vision=feats["vision"],
                    extra_labels={m: float(v[i]) for m, v in s.extra.items()},
                )
            )
        out[name] = samples
    return BenchmarkData(info=info, splits=out, source=str(file))


def scan_nonfinite(path: Path, variant: str | None = None, **_: Any) -> dict[str, dict[str, dict[str, int]]]:
    """Count NaN, -inf and +inf in the raw feature arrays, before any cleaning: ``{split: {key: counts}}``.

    :mod:`egmf.data.inspect` reports these, since a loaded dataset no longer holds them.
    """
    file = resolve_pickle(Path(path), variant)
    raw = safe_load(file)
    out: dict[str, dict[str, dict[str, int]]] = {}
    if not isinstance(raw, Mapping):
        return out
    for split in SPLITS:
        part = raw.get(split)
        if not isinstance(part, Mapping):
            continue
        out[split] = {
            key: V.count_nonfinite(part[key])
            for key in FEATURE_KEYS.values()
            if isinstance(part.get(key), np.ndarray)
        }
    return out


def load_mosi(path: Path, nan: str = "error", **options: Any) -> BenchmarkData:
    return load_mmsa(path, "mosi", nan=nan, **options)


def load_mosei(path: Path, nan: str = "error", **options: Any) -> BenchmarkData:
    return load_mmsa(path, "mosei", nan=nan, **options)


def load_sims(path: Path, nan: str = "error", **options: Any) -> BenchmarkData:
    return load_mmsa(path, "sims", nan=nan, **options)


def load_simsv2(path: Path, nan: str = "error", **options: Any) -> BenchmarkData:
    return load_mmsa(path, "simsv2", nan=nan, **options)


LOADERS = {"mosi": load_mosi, "mosei": load_mosei, "sims": load_sims, "simsv2": load_simsv2}


def register() -> None:
    for name, loader in LOADERS.items():
        register_dataset(name, loader, FLAVOURS[name].description)
