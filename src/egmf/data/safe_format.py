"""The pickle-free dataset format that ``egmf data convert`` writes and every loader reads back.

A converted dataset is a folder::

    egmf_dataset.json        manifest: format version, DatasetInfo, per-sample metadata, checksums
    train.safetensors        per modality m: "{m}/lengths" int64 [N] (frames per sample, -1 = missing),
    valid.safetensors        "{m}/group" int64 [N] (which data tensor holds the sample, -1 = missing),
    test.safetensors         and data tensors "{m}/{dtype}/{dim}" [sum of frames, dim]

Variable-length ``[T, d]`` sequences are concatenated in sample order, so the offsets of sample ``i``
are the running sum of the lengths of the samples before it in the same group. Grouping by
``(dtype, dim)`` keeps a round trip exact even for data that mixes feature dims or dtypes. Loading
runs no code (JSON + safetensors only), checks every file against the manifest's SHA-256, and gives
back arrays bit-identical to those written.

Usage::

    from egmf.data import load_dataset, safe_format
    safe_format.write(load_dataset("mosei", "MOSEI/Processed/unaligned_50.pkl"), Path("mosei_safe"))
    data = load_dataset("mosei", "mosei_safe")  # the registry recognises the folder
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
from safetensors import SafetensorError

from egmf.atomic import atomic_folder
from egmf.data.schema import MODALITIES, BenchmarkData, DatasetInfo, Sample
from egmf.errors import DataFormatError, RunFolderExistsError

FORMAT = "egmf-safe-dataset"
VERSION = 1
MANIFEST = "egmf_dataset.json"
_SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]+")
_SAMPLE_KEYS = ("id", "text", "label", "dataset", "task", "lang", "speaker", "context", "extra_labels")


def is_safe_dataset(path: str | Path) -> bool:
    """True when ``path`` is a folder written by :func:`write` (it holds the manifest)."""
    path = Path(path)
    return path.is_dir() and (path / MANIFEST).is_file()


# ---- write ------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so JSON can hold them (values are unchanged)."""
    return value.item() if isinstance(value, np.generic) else value


def _sample_record(s: Sample) -> dict[str, Any]:
    return {
        "id": s.id,
        "text": s.text,
        "label": _plain(s.label),
        "dataset": s.dataset,
        "task": s.task,
        "lang": s.lang,
        "speaker": s.speaker,
        "context": [[_plain(a), _plain(b)] for a, b in s.context],
        "extra_labels": {k: _plain(v) for k, v in s.extra_labels.items()},
    }


def _pack_modality(samples: list[Sample], m: str, split: str) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Concatenate one modality's arrays per (dtype, dim) group; returns tensors and group records."""
    lengths = np.full(len(samples), -1, dtype=np.int64)
    group_of = np.full(len(samples), -1, dtype=np.int64)
    groups: dict[tuple[str, int], list[np.ndarray]] = {}
    for i, s in enumerate(samples):
        a = s.features(m)
        if a is None:
            continue
        if not isinstance(a, np.ndarray) or a.ndim != 2:
            got = f"shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise DataFormatError(f"{split}[{i}] ({s.id})", m, "a [T, d] numpy array or None", got)
        key = (a.dtype.str.lstrip("<>=|"), int(a.shape[1]))
        if key not in groups:
            groups[key] = []
        group_of[i] = list(groups).index(key)
        groups[key].append(a)
        lengths[i] = a.shape[0]
    tensors = {f"{m}/lengths": lengths, f"{m}/group": group_of}
    records = []
    for (dtype, dim), arrays in groups.items():
        name = f"{m}/{dtype}/{dim}"
        tensors[name] = np.ascontiguousarray(np.concatenate(arrays, axis=0))
        records.append({"key": name, "dtype": str(arrays[0].dtype), "dim": dim, "frames": int(tensors[name].shape[0])})
    return tensors, records


def _sha256(file: Path) -> str:
    h = hashlib.sha256()
    with file.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_output_folder(out: str | Path) -> None:
    """Refuse an output path that exists as a file or a non-empty folder (RunFolderExistsError)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunFolderExistsError(
            f"{out}: refusing to overwrite an existing {'folder' if out.is_dir() else 'file'}; "
            "choose a new output folder or remove this one"
        )


def write(data: BenchmarkData, out: str | Path, loader: str | None = None) -> Path:
    """Write ``data`` into the new folder ``out`` (which must not exist or be empty); returns ``out``.

    ``loader`` is the registry name the data was loaded with (default ``data.info.name``); it differs
    from the dataset's own name for ``custom`` data, and :func:`read` accepts either.

    Everything is written into a temporary sibling folder that is renamed to ``out`` only when
    complete, so an interrupted conversion never leaves a half-written dataset behind.
    """
    out = Path(out)
    check_output_folder(out)
    for split in data.splits:
        if not _SPLIT_NAME.fullmatch(split):
            raise DataFormatError(out, "split name", "letters, digits, '_' or '-'", repr(split))
    # check again at publishing: someone may have written to out while tmp was filled
    with atomic_folder(out, exists="error", check=check_output_folder) as tmp:
        info = data.info
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "info": {
                "name": info.name,
                "task": info.task,
                "lang": info.lang,
                "labels": list(info.labels),
                "score_range": list(info.score_range) if info.score_range is not None else None,
                "metric_family": info.metric_family,
            },
            "loader": loader or info.name,
            "converted_from": data.source,
            "splits": {},
        }
        for split, samples in data.splits.items():
            tensors: dict[str, np.ndarray] = {}
            modalities = {}
            for m in MODALITIES:
                t, groups = _pack_modality(samples, m, split)
                tensors.update(t)
                modalities[m] = groups
            file = tmp / f"{split}.safetensors"
            safetensors.numpy.save_file(tensors, str(file), metadata={"format": FORMAT, "split": split})
            manifest["splits"][split] = {
                "file": file.name,
                "sha256": _sha256(file),
                "n": len(samples),
                "modalities": modalities,
                "samples": [_sample_record(s) for s in samples],
            }
        text = json.dumps(manifest, ensure_ascii=False, allow_nan=False, indent=1)
        (tmp / MANIFEST).write_text(text, encoding="utf-8")
    return out


# ---- read -------------------------------------------------------------------------------------------
def _read_manifest(folder: Path) -> dict[str, Any]:
    file = folder / MANIFEST
    if not file.is_file():
        raise DataFormatError(folder, MANIFEST, "a folder written by `egmf data convert`", "no manifest")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataFormatError(file, "json", "a complete, valid JSON manifest", f"{type(e).__name__}: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataFormatError(file, "format", repr(FORMAT), manifest.get("format") if isinstance(manifest, dict) else None)
    if manifest.get("version") != VERSION:
        raise DataFormatError(file, "version", f"{VERSION} (written by this EGMF version)", manifest.get("version"))
    for key in ("info", "splits"):
        if not isinstance(manifest.get(key), dict):
            raise DataFormatError(file, key, "an object", type(manifest.get(key)).__name__)
    return manifest


def _info(raw: dict[str, Any], file: Path) -> DatasetInfo:
    try:
        return DatasetInfo(
            name=raw["name"],
            task=raw["task"],
            lang=raw["lang"],
            labels=tuple(raw.get("labels") or ()),
            score_range=tuple(raw["score_range"]) if raw.get("score_range") is not None else None,
            metric_family=raw.get("metric_family", ""),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise DataFormatError(file, "info", "name, task, lang, labels, score_range, metric_family", repr(e)) from e


def _load_tensors(file: Path, expected_sha: str | None, verify: bool) -> dict[str, np.ndarray]:
    if not file.is_file():
        raise DataFormatError(file, "path", "the split file the manifest lists", "no such file")
    if verify and expected_sha is not None:
        got = _sha256(file)
        if got != expected_sha:
            raise DataFormatError(file, "sha256", f"{expected_sha} (as in {MANIFEST}); the file is corrupt", got)
    try:
        return safetensors.numpy.load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise DataFormatError(file, "safetensors", "a complete, readable safetensors file", str(e)) from e


def _unpack_modality(tensors: dict, groups: list[dict], m: str, n: int, file: Path) -> list[np.ndarray | None]:
    for key in (f"{m}/lengths", f"{m}/group"):
        if key not in tensors or tensors[key].shape != (n,):
            got = tensors[key].shape if key in tensors else "missing"
            raise DataFormatError(file, key, f"an int64 vector of {n} entries", got)
    lengths, group_of = tensors[f"{m}/lengths"], tensors[f"{m}/group"]
    data, cursor = [], []
    for g, rec in enumerate(groups):
        arr = tensors.get(rec["key"])
        if arr is None or arr.ndim != 2 or arr.shape[1] != rec["dim"] or str(arr.dtype) != rec["dtype"]:
            got = "missing" if arr is None else f"{arr.dtype} {arr.shape}"
            raise DataFormatError(file, rec["key"], f"{rec['dtype']} [frames, {rec['dim']}]", got)
        used = int(lengths[group_of == g].sum())
        if used != arr.shape[0] or rec.get("frames", used) != used:
            raise DataFormatError(file, rec["key"], f"{used} frames (the sum of its samples' lengths)", arr.shape[0])
        data.append(arr)
        cursor.append(0)
    out: list[np.ndarray | None] = []
    for i in range(n):
        g, t = int(group_of[i]), int(lengths[i])
        if g == -1 and t == -1:
            out.append(None)
            continue
        if not 0 <= g < len(data) or t < 0:
            raise DataFormatError(file, f"{m}/group[{i}]", f"a group in [0, {len(data)}) and a length >= 0", (g, t))
        out.append(data[g][cursor[g] : cursor[g] + t])
        cursor[g] += t
    return out


def _sample(rec: Any, arrays: dict[str, np.ndarray | None], file: Path, where: str) -> Sample:
    if not isinstance(rec, dict) or any(k not in rec for k in _SAMPLE_KEYS):
        missing = [k for k in _SAMPLE_KEYS if not isinstance(rec, dict) or k not in rec]
        raise DataFormatError(file, where, f"a sample record with {', '.join(_SAMPLE_KEYS)}", f"missing {missing}")
    return Sample(
        id=rec["id"],
        text=rec["text"],
        label=rec["label"],
        dataset=rec["dataset"],
        task=rec["task"],
        lang=rec["lang"],
        speaker=rec["speaker"],
        context=[tuple(c) for c in rec["context"]],
        text_feats=arrays["text"],
        audio=arrays["audio"],
        vision=arrays["vision"],
        extra_labels=dict(rec["extra_labels"]),
    )


def read(path: str | Path, expected_name: str | None = None, verify: bool = True) -> BenchmarkData:
    """Read a folder written by :func:`write`.

    ``expected_name`` (the dataset the caller asked for) must match the stored dataset's name, so
    ``load_dataset("mosi", folder_of_mosei)`` fails instead of silently using the wrong metric.
    ``verify`` checks each split file's SHA-256 first (a flipped byte is a clear error, not bad data).
    """
    folder = Path(path)
    manifest = _read_manifest(folder)
    mfile = folder / MANIFEST
    info = _info(manifest["info"], mfile)
    loader = manifest.get("loader", info.name)
    if expected_name is not None and expected_name not in (info.name, loader):
        raise DataFormatError(
            folder, "info.name", f"a converted {expected_name!r} dataset", f"{info.name!r} (use --dataset {loader})"
        )
    splits: dict[str, list[Sample]] = {}
    for split, entry in manifest["splits"].items():
        if not _SPLIT_NAME.fullmatch(split) or not isinstance(entry, dict):
            raise DataFormatError(mfile, f"splits.{split}", "a split entry with file, n, modalities, samples", entry)
        try:
            n, records, groups = int(entry["n"]), entry["samples"], entry["modalities"]
            file = folder / Path(entry["file"]).name  # never outside the folder
        except (KeyError, TypeError, ValueError) as e:
            raise DataFormatError(mfile, f"splits.{split}", "file, n, modalities, samples", repr(e)) from e
        if len(records) != n:
            raise DataFormatError(mfile, f"splits.{split}.samples", f"{n} records", len(records))
        tensors = _load_tensors(file, entry.get("sha256"), verify)
        per_mod = {m: _unpack_modality(tensors, groups.get(m, []), m, n, file) for m in MODALITIES}
        splits[split] = [
            _sample(rec, {m: per_mod[m][i] for m in MODALITIES}, mfile, f"splits.{split}.samples[{i}]")
            for i, rec in enumerate(records)
        ]
    return BenchmarkData(info=info, splits=splits, source=str(folder))
