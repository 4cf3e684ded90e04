"""Loader for CHERMA (DESIGN.md, "CHERMA"): json records plus per-utterance npy features, Chinese, 7 emotions.

Files read from the folder ``path`` (the layout of the public feature release)::

    train.json  test.json      a list of records:
        audio_file    "<id>.wav"  (the sample id is this name without ".wav", as the authors' code does)
        video_file    "<id>.mp4"
        txt_label, audio_label, visual_label   unimodal labels  -> extra_labels "T", "A", "V"
        video_label   the multimodal label (the target); all labels are one of 愤怒 厌恶 恐惧 高兴 平静 悲伤 惊奇
        text          the transcript (see below)
    text/{train,test}/{id}.npy        [81, 1024] in the release
    audio/{train,test}/{id}.npy       [51, 1024]
    visual/{train,test}/{id}.mp4.npy  [17, 2048]

The authors' loader (LFMIM, ``data_prepare.py``) reads only the fields above and the features; it names
no transcript field. We assume ``text`` and let ``text_field=NAME`` pick another; ``text_field=None``
loads a release without transcripts (empty ``Sample.text``; the text features still carry the text).
A missing feature file leaves that modality ``None`` for that utterance (counted and logged); a missing
modality folder leaves it ``None`` everywhere.

CHERMA has no official valid split: ``valid`` is carved from train, stratified by ``video_label``,
``valid_fraction`` of each label (default 0.1) chosen with ``seed`` (default 0), so a run is reproducible.

Usage::

    data = load_dataset("cherma", "CHERMA0723", valid_fraction=0.1, seed=1111)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from egmf.data import validate as V
from egmf.data.readers import FeatureSet, load_feature_files, read_json
from egmf.data.registry import register_dataset
from egmf.data.schema import CHERMA_EMOTIONS, BenchmarkData, DatasetInfo, Sample
from egmf.errors import ConfigError, DataFormatError

FILE_SPLITS = ("train", "test")
LABEL_FIELDS = {"video_label": None, "txt_label": "T", "audio_label": "A", "visual_label": "V"}
RECORD_FIELDS = ("audio_file", "video_file", *LABEL_FIELDS)
# modality -> (folder, file suffix)
FEATURE_LAYOUT = {"text": ("text", ".npy"), "audio": ("audio", ".npy"), "vision": ("visual", ".mp4.npy")}


def record_id(audio_file: str) -> str:
    """``"a/b/0001_02.wav"`` -> ``"0001_02"``: the name the feature files use."""
    name = Path(audio_file).name
    return name[:-4] if name.lower().endswith(".wav") else Path(name).stem


def read_records(file: Path, text_field: str | None) -> list[dict[str, Any]]:
    """Read and check one json file; returns records with ``id``, ``text`` and the four labels."""
    raw = read_json(file)
    if not isinstance(raw, list):
        raise DataFormatError(file, "top level", "a list of records", type(raw).__name__)
    if not raw:
        raise DataFormatError(file, "top level", "at least one record", "an empty list")
    out, seen = [], set()
    for i, rec in enumerate(raw):
        where = f"[{i}]"
        if not isinstance(rec, Mapping):
            raise DataFormatError(file, where, "a record (json object)", type(rec).__name__)
        keys = RECORD_FIELDS + ((text_field,) if text_field else ())
        missing = [k for k in keys if k not in rec]
        if missing:
            hint = " (pass text_field=NAME, or text_field=None for no transcripts)" if missing[0] == text_field else ""
            raise DataFormatError(file, f"{where}.{missing[0]}", f"fields {list(keys)}{hint}", f"missing {missing}")
        audio_file = V.require_text(rec["audio_file"], file, f"{where}.audio_file")
        V.require_text(rec["video_file"], file, f"{where}.video_file")
        labels = {k: V.require_label(rec[k], CHERMA_EMOTIONS, file, f"{where}.{k}") for k in LABEL_FIELDS}
        text = V.require_text(rec[text_field], file, f"{where}.{text_field}").strip() if text_field else ""
        rid = record_id(audio_file)
        if rid in seen:
            raise DataFormatError(file, f"{where}.audio_file", "a unique file name per record", audio_file)
        seen.add(rid)
        out.append({"id": rid, "text": text, **labels})
    return out


def stratified_valid(labels: list[str], fraction: float, seed: int) -> np.ndarray:
    """Indices of the valid part: ``round(fraction * n)`` of each label (at least 1 when it has 2+)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for lab in sorted(set(labels)):
        idx = np.flatnonzero(np.asarray(labels) == lab)
        k = int(round(fraction * idx.size))
        if k == 0 and idx.size >= 2:
            k = 1
        chosen.extend(rng.permutation(idx)[:k].tolist())
    return np.sort(np.asarray(chosen, dtype=np.int64))


def _features(path: Path, split: str, ids: list[str], nan: str) -> dict[str, FeatureSet]:
    out = {}
    for m, (folder, suffix) in FEATURE_LAYOUT.items():
        base = path / folder / split
        if base.is_dir():
            out[m] = load_feature_files({i: base / f"{i}{suffix}" for i in ids}, m, nan, where=str(base))
    return out


def load_cherma(
    path: Path,
    valid_fraction: float = 0.1,
    seed: int = 0,
    text_field: str | None = "text",
    nan: str = "error",
    **options: Any,
) -> BenchmarkData:
    """Load CHERMA from the folder ``path``; see the module docstring for files and options."""
    if options:
        raise ConfigError(f"cherma: unknown loader options {sorted(options)}; valid: valid_fraction, seed, text_field, nan")
    if not 0.0 < float(valid_fraction) < 1.0:
        raise ConfigError(f"valid_fraction: expected a fraction in (0, 1), got {valid_fraction!r}")
    V.check_nan_policy(nan)
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(path, "path", "a folder holding train.json and test.json")
    records = {s: read_records(path / f"{s}.json", text_field) for s in FILE_SPLITS}
    feats = {s: _features(path, s, [r["id"] for r in records[s]], nan) for s in FILE_SPLITS}
    for m, (folder, _) in FEATURE_LAYOUT.items():
        dims = {s: feats[s][m].dim for s in FILE_SPLITS if m in feats[s] and feats[s][m].dim}
        V.require_same_dim(dims, path / folder, f"{m} feature dim")

    info = DatasetInfo(name="cherma", task="erc", lang="zh", labels=CHERMA_EMOTIONS, metric_family="erc")

    def sample(rec: dict[str, Any], split: str) -> Sample:
        arr = {m: fs.arrays.get(rec["id"]) for m, fs in feats[split].items()}
        return Sample(
            id=rec["id"],
            text=rec["text"],
            label=rec["video_label"],
            dataset="cherma",
            task="erc",
            lang="zh",
            text_feats=arr.get("text"),
            audio=arr.get("audio"),
            vision=arr.get("vision"),
            extra_labels={short: rec[k] for k, short in LABEL_FIELDS.items() if short},
        )

    train = [sample(r, "train") for r in records["train"]]
    valid_idx = set(stratified_valid([s.label for s in train], float(valid_fraction), int(seed)).tolist())
    splits = {
        "train": [s for i, s in enumerate(train) if i not in valid_idx],
        "valid": [s for i, s in enumerate(train) if i in valid_idx],
        "test": [sample(r, "test") for r in records["test"]],
    }
    return BenchmarkData(info=info, splits=splits, source=str(path))


def register() -> None:
    register_dataset("cherma", load_cherma, "CHERMA (json + npy features), Chinese, 7 emotions, seeded valid split")
