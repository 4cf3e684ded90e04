"""File readers shared by the MELD, CHERMA and custom loaders: strict UTF-8 CSV and JSON, and
per-utterance ``.npy`` feature files.

Each reader raises :class:`DataFormatError` naming the file, the field and the expectation, so a loader
can read and check every file first and only then build samples (nothing half-loaded).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Iterable, Mapping

import numpy as np

from egmf.data import validate as V
from egmf.errors import DataFormatError

logger = logging.getLogger(__name__)


def read_utf8(file: Path) -> str:
    """The text of ``file``, decoded as strict UTF-8 (a leading BOM is dropped)."""
    file = Path(file)
    if not file.is_file():
        raise DataFormatError(file, "path", "an existing file", "no such file")
    data = file.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad = data[e.start : e.start + 1].hex()
        raise DataFormatError(
            file, "encoding", "UTF-8 text (re-save the file as UTF-8)", f"byte 0x{bad} at offset {e.start}"
        ) from e


def read_csv(file: Path, required: Iterable[str]) -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV as dicts; every column in ``required`` must be in the header."""
    text = read_utf8(file)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = list(reader)
    except csv.Error as e:
        raise DataFormatError(file, "csv", "a well-formed CSV file", str(e)) from e
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(file, missing[0], f"columns {list(required)}", f"header {header}")
    for i, row in enumerate(rows):
        if None in row or any(v is None for v in row.values()):  # more / fewer cells than the header
            raise DataFormatError(file, f"row {i + 2}", f"{len(header)} cells (as the header)", "a different count")
    return rows


def read_json(file: Path) -> Any:
    text = read_utf8(file)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(file, "json", "a complete JSON document", f"{e.msg} at line {e.lineno}") from e


def load_array(file: Path, nan: str = "error") -> tuple[np.ndarray, dict[str, int]]:
    """A ``[T, d]`` float32 feature array from ``file`` (a ``[d]`` vector becomes one frame).

    Returns the array with ``±inf`` set to 0 (NaN raises unless ``nan="zero"``; ``nan="keep"`` leaves both)
    and the counts of non-finite values found before cleaning.
    """
    try:
        arr = np.load(file, allow_pickle=False)
    except FileNotFoundError:
        raise DataFormatError(file, "path", "an existing .npy file", "no such file") from None
    except (ValueError, EOFError, OSError) as e:  # truncated, corrupt or pickled-object files
        raise DataFormatError(file, "npy", "a complete .npy array file", f"{type(e).__name__}: {e}") from e
    if not isinstance(arr, np.ndarray):
        raise DataFormatError(file, "npy", "a single array (.npy), not an archive", type(arr).__name__)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise DataFormatError(file, "shape", "[T, d] or [d]", arr.shape)
    if arr.dtype.kind not in "fiu":
        raise DataFormatError(file, "dtype", "numbers (float or int)", str(arr.dtype))
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataFormatError(file, "shape", "at least one frame and one feature", arr.shape)
    counts = V.count_nonfinite(arr)
    return V.clean_features(arr, file, "values", nan=nan), counts


@dataclass
class FeatureSet:
    """The arrays of one modality in one split, keyed like the samples; ``None`` = file missing."""

    modality: str
    arrays: dict[Hashable, np.ndarray | None]
    dim: int = 0
    missing: list[Hashable] = field(default_factory=list)
    nonfinite: dict[str, int] = field(default_factory=lambda: {"nan": 0, "neg_inf": 0, "pos_inf": 0})


def load_feature_files(
    files: Mapping[Hashable, Path], modality: str, nan: str = "error", where: str = ""
) -> FeatureSet:
    """Read one ``.npy`` per key; a missing file leaves that key ``None`` (counted in ``missing``).

    All arrays of one modality must share their feature dim; the first file read sets it.
    """
    out = FeatureSet(modality, {})
    first: Path | None = None
    for key, file in files.items():
        if not Path(file).is_file():
            out.arrays[key] = None
            out.missing.append(key)
            continue
        arr, counts = load_array(Path(file), nan=nan)
        for k, v in counts.items():
            out.nonfinite[k] += v
        if first is None:
            first, out.dim = Path(file), int(arr.shape[1])
        elif arr.shape[1] != out.dim:
            raise DataFormatError(file, f"{modality} feature dim", f"{out.dim} (as {first.name})", arr.shape[1])
        out.arrays[key] = arr
    if out.missing:
        shown = ", ".join(str(k) for k in out.missing[:3])
        logger.warning("%s%s: %d of %d feature files missing (%s...): modality set to None for them",
                       f"{where}: " if where else "", modality, len(out.missing), len(files), shown)
    if out.nonfinite["neg_inf"] or out.nonfinite["pos_inf"] or out.nonfinite["nan"]:
        done = "kept" if nan == "keep" else "set to 0"
        logger.info("%s%s: non-finite values %s: %s", f"{where}: " if where else "", modality, done, out.nonfinite)
    return out
