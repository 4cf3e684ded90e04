"""Loader for a user's own data (the ``custom`` format; ``egmf extract`` writes it from raw media).

A folder ``path`` (or the path of its ``data.csv``) holds::

    data.csv        UTF-8; required columns  id, text, label, split ; optional  speaker, dialogue
                      id        unique, used as the feature file name (no "/" or "\\")
                      text      the utterance, non-empty
                      label     an emotion word (ERC) or a number (MSA)
                      split     train, valid or test ("dev", "val", "validation" mean valid)
                      speaker   who speaks (goes into Sample.speaker and the context)
                      dialogue  rows with the same value, in file order and within a split, form a
                                dialogue: each row's context is the earlier rows, as (speaker, text)
    features/       optional; one folder per modality present:
        text/{id}.npy  audio/{id}.npy  vision/{id}.npy      float arrays [T, d], or [d] = one frame
                      a missing file leaves that modality None for that row (counted and logged)
        pooled/{set}/{id}.npy  optional; one utterance-level vector [1, d] (or [d]) per set, e.g. the
                      eGeMAPS functionals, mean+std of mfcc/whisper frames, the sentence embedding that
                      ``egmf extract`` writes; into Sample.pooled[set] as [1, d] (feature dims key
                      "pooled:{set}"); a missing file leaves the set out for that row
    dataset.yaml    optional:
        name: mydata            # Sample.dataset and DatasetInfo.name (default "custom")
        task: erc               # erc | msa
        lang: en                # en | zh
        labels: [neutral, joy]  # ERC: the label words, in this order (the prompt lists them so)
        score_range: [-3, 3]    # MSA: labels must lie inside it
        metric_family: erc      # erc (for erc) | mosi | sims (for msa)

Without ``dataset.yaml`` everything is inferred: labels that are all numbers mean ``msa`` with
``score_range`` from the loader options (default [-3, 3]), otherwise ``erc`` with the label words sorted
by frequency (most frequent first); ``lang`` is ``zh`` when the text holds CJK characters, else ``en``;
``metric_family`` is ``sims`` for an MSA range of [-1, 1], else ``mosi``. Loader options (the same names
as the yaml keys) override the yaml. A ``train`` split is required; ``valid`` or ``test`` may be empty.

Usage::

    data = load_dataset("custom", "my_data/")
    data = load_dataset("custom", "my_data/data.csv", task="msa", score_range=(-1, 1))
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

import yaml

from egmf.data import validate as V
from egmf.data.readers import FeatureSet, load_feature_files, read_csv, read_utf8
from egmf.data.registry import register_dataset
from egmf.data.schema import MODALITIES, SPLITS, BenchmarkData, DatasetInfo, Sample, pooled_key
from egmf.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

CSV_NAME = "data.csv"
YAML_NAME = "dataset.yaml"
FEATURES_DIR = "features"
POOLED_DIR = "pooled"
REQUIRED_COLUMNS = ("id", "text", "label", "split")
SPEC_KEYS = ("name", "task", "lang", "labels", "score_range", "metric_family")
TASKS = ("erc", "msa")
LANGS = ("en", "zh")
FAMILIES = {"erc": ("erc",), "msa": ("mosi", "sims")}
SPLIT_ALIASES = {"train": "train", "valid": "valid", "dev": "valid", "val": "valid", "validation": "valid", "test": "test"}
_CJK = re.compile(r"[\u3400-\u9fff]")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _locate(path: Path) -> tuple[Path, Path]:
    """(folder, csv file) from a folder or a path to its ``data.csv``."""
    path = Path(path)
    if path.is_file():
        return path.parent, path
    csv_file = path / CSV_NAME
    if not csv_file.is_file():
        raise DataFormatError(csv_file, "path", f"a folder holding {CSV_NAME} (columns {', '.join(REQUIRED_COLUMNS)})", "no such file")
    return path, csv_file


def _read_yaml(file: Path) -> dict[str, Any]:
    if not file.is_file():
        return {}
    try:
        raw = yaml.safe_load(read_utf8(file))
    except yaml.YAMLError as e:
        raise DataFormatError(file, "yaml", "a valid YAML document", str(e).splitlines()[0]) from e
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise DataFormatError(file, "top level", f"a mapping with keys {', '.join(SPEC_KEYS)}", type(raw).__name__)
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise DataFormatError(file, unknown[0], f"one of the keys {', '.join(SPEC_KEYS)}", "an unknown key")
    return dict(raw)


def _resolve_spec(from_yaml: dict[str, Any], options: dict[str, Any], yaml_file: Path,
                  rows: list[dict[str, str]]) -> DatasetInfo:
    """Merge yaml and options (options win), infer what is missing, and check every value.

    A bad value raises :class:`DataFormatError` naming the yaml when it came from the yaml, and
    :class:`ConfigError` when it came from a loader option.
    """
    spec = {**from_yaml, **{k: v for k, v in options.items() if v is not None}}

    def bad(key: str, expected: str) -> Exception:
        if key in options and options[key] is not None:
            return ConfigError(f"custom: {key}: expected {expected}, got {spec[key]!r}")
        return DataFormatError(yaml_file, key, expected, repr(spec[key]))

    labels_raw = [r["label"].strip() for r in rows]
    if "task" not in spec:
        spec["task"] = "msa" if all(_NUMBER.match(v) for v in labels_raw) else "erc"
    if spec["task"] not in TASKS:
        raise bad("task", f"one of {', '.join(TASKS)}")
    if "lang" not in spec:
        spec["lang"] = "zh" if any(_CJK.search(r["text"]) for r in rows) else "en"
    if spec["lang"] not in LANGS:
        raise bad("lang", f"one of {', '.join(LANGS)}")
    name = spec.get("name", "custom")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise bad("name", "a name of letters, digits, '_', '.' or '-'")

    labels: tuple[str, ...] = ()
    score_range = None
    if spec["task"] == "erc":
        if "labels" in spec:
            raw = spec["labels"]
            if (not isinstance(raw, (list, tuple)) or not raw or len(set(map(str, raw))) != len(raw)
                    or not all(isinstance(x, str) and x.strip() for x in raw)):
                raise bad("labels", "a list of distinct, non-empty label words")
            labels = tuple(x.strip() for x in raw)
        else:  # most frequent first; ties in order of first appearance
            labels = tuple(w for w, _ in Counter(labels_raw).most_common())
    else:
        raw = spec.get("score_range", (-3.0, 3.0))
        spec["score_range"] = raw
        try:
            lo, hi = (float(x) for x in raw)
        except (TypeError, ValueError):
            lo = hi = float("nan")
        if not lo < hi:
            raise bad("score_range", "two numbers [low, high] with low < high")
        score_range = (lo, hi)
    family = spec.get("metric_family")
    if family is None:
        family = "erc" if spec["task"] == "erc" else ("sims" if score_range == (-1.0, 1.0) else "mosi")
    elif family not in FAMILIES[spec["task"]]:
        raise bad("metric_family", f"one of {', '.join(FAMILIES[spec['task']])} for task {spec['task']}")
    return DatasetInfo(name=name, task=spec["task"], lang=spec["lang"], labels=labels, score_range=score_range,
                       metric_family=family)


def _check_rows(rows: list[dict[str, str]], info: DatasetInfo, file: Path) -> list[dict[str, Any]]:
    out, seen = [], set()
    for i, r in enumerate(rows):
        where = f"row {i + 2}"
        rid = V.require_text(r["id"], file, f"{where}.id").strip()
        if "/" in rid or "\\" in rid or rid in (".", ".."):
            raise DataFormatError(file, f"{where}.id", "an id usable as a file name (no '/' or '\\')", repr(rid))
        if rid in seen:
            raise DataFormatError(file, f"{where}.id", "a unique id per row", repr(rid))
        seen.add(rid)
        split = SPLIT_ALIASES.get(r["split"].strip().lower())
        if split is None:
            raise DataFormatError(file, f"{where}.split", f"one of {', '.join(SPLIT_ALIASES)}", repr(r["split"]))
        text = V.require_text(r["text"], file, f"{where}.text").strip()
        raw = r["label"].strip()
        if info.task == "erc":
            label: str | float = V.require_label(raw, info.labels, file, f"{where}.label")
        else:
            if not _NUMBER.match(raw):
                raise DataFormatError(file, f"{where}.label", "a number (task msa)", repr(raw))
            label = V.require_score(float(raw), *info.score_range, file, f"{where}.label")
        speaker = (r.get("speaker") or "").strip() or None
        dialogue = (r.get("dialogue") or "").strip() or None
        out.append({"id": rid, "split": split, "text": text, "label": label, "speaker": speaker, "dialogue": dialogue})
    if not any(r["split"] == "train" for r in out):
        raise DataFormatError(file, "split", "at least one row in the train split", "none")
    return out


def load_custom(path: Path, nan: str = "error", **options: Any) -> BenchmarkData:
    """Load a custom dataset folder; see the module docstring for the format and the options."""
    unknown = sorted(set(options) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"custom: unknown loader options {unknown}; valid: nan, {', '.join(SPEC_KEYS)}")
    V.check_nan_policy(nan)
    folder, csv_file = _locate(Path(path))
    raw_rows = read_csv(csv_file, REQUIRED_COLUMNS)
    if not raw_rows:
        raise DataFormatError(csv_file, "rows", "at least one row", "an empty table")
    yaml_file = folder / YAML_NAME
    info = _resolve_spec(_read_yaml(yaml_file), options, yaml_file, raw_rows)
    rows = _check_rows(raw_rows, info, csv_file)

    feats: dict[str, dict[str, FeatureSet]] = {s: {} for s in SPLITS}
    for m in MODALITIES:
        base = folder / FEATURES_DIR / m
        if not base.is_dir():
            continue
        for s in SPLITS:
            ids = [r["id"] for r in rows if r["split"] == s]
            feats[s][m] = load_feature_files({i: base / f"{i}.npy" for i in ids}, m, nan, where=f"{base} ({s})")
        V.require_same_dim({s: feats[s][m].dim for s in SPLITS if feats[s][m].dim}, base, f"{m} feature dim")
    pooled = _load_pooled(folder / FEATURES_DIR / POOLED_DIR, rows, nan)

    out: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    history: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for r in rows:
        context: list[tuple[str, str]] = []
        if r["dialogue"] is not None:
            turns = history.setdefault((r["split"], r["dialogue"]), [])
            context = list(turns)
            turns.append((r["speaker"] or "", r["text"]))
        arr = {m: fs.arrays.get(r["id"]) for m, fs in feats[r["split"]].items()}
        vectors = {n: by_split[r["split"]].arrays.get(r["id"]) for n, by_split in pooled.items()}
        out[r["split"]].append(
            Sample(id=r["id"], text=r["text"], label=r["label"], dataset=info.name, task=info.task, lang=info.lang,
                   speaker=r["speaker"], context=context, text_feats=arr.get("text"), audio=arr.get("audio"),
                   vision=arr.get("vision"),
                   pooled={n: a for n, a in vectors.items() if a is not None})
        )
    for s in ("valid", "test"):
        if not out[s]:
            logger.warning("%s: no rows in the %s split", csv_file, s)
    return BenchmarkData(info=info, splits=out, source=str(folder))


def _load_pooled(base: Path, rows: list[dict[str, Any]], nan: str) -> dict[str, dict[str, FeatureSet]]:
    """``{set: {split: FeatureSet}}`` of ``features/pooled/{set}/{id}.npy``; each array checked to be one vector."""
    if not base.is_dir():
        return {}
    out: dict[str, dict[str, FeatureSet]] = {}
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        name = folder.name
        out[name] = {}
        for s in SPLITS:
            ids = [r["id"] for r in rows if r["split"] == s]
            fs = load_feature_files({i: folder / f"{i}.npy" for i in ids}, pooled_key(name), nan, where=f"{folder} ({s})")
            for i, a in fs.arrays.items():
                if a is not None and a.shape[0] != 1:
                    raise DataFormatError(folder / f"{i}.npy", "shape", "one pooled vector, [1, d] or [d]",
                                          list(a.shape))
            out[name][s] = fs
        V.require_same_dim({s: out[name][s].dim for s in SPLITS if out[name][s].dim}, folder, "pooled feature dim")
    return out


def register() -> None:
    register_dataset("custom", load_custom, "your own data: data.csv (+ features/, dataset.yaml); ERC or MSA")
