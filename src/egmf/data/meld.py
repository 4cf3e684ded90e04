"""Loader for MELD (DESIGN.md, "MELD"): the official CSVs plus optional per-utterance features.

Files read from the folder ``path``::

    train_sent_emo.csv  dev_sent_emo.csv  test_sent_emo.csv
        columns: Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID,
                 Season, Episode, StartTime, EndTime   (strict UTF-8)
    features/{train,valid,test}/{text,audio,vision}/dia{D}_utt{U}.npy   (optional; see ``features``)

``dev`` becomes the split ``valid``. All three CSVs are required unless ``splits`` names fewer
(``splits=("train", "valid")`` reads a folder without the test CSV; only those splits are returned).

Sample ids are ``{split}/dia{D}_utt{U}`` (e.g. ``valid/dia110_utt7``): ``dia{D}_utt{U}`` alone repeats
across splits, and this id is also the feature file's path below ``features/``. ``context`` holds the
earlier utterances of the dialogue as ``(speaker, text)``, oldest first; ``label`` is the emotion word
(``label="sentiment"`` uses the three sentiments) and the other one goes into ``extra_labels``.

Features (optional, one of):

- ``features=DIR``: per-utterance arrays ``DIR/{split}/{modality}/dia{D}_utt{U}.npy``, ``[T, d]`` or
  ``[d]``, any subset of ``text``/``audio``/``vision`` (a ``dev`` folder is accepted for ``valid``).
  ``features="auto"`` (the default) uses ``path/features`` when it exists. A missing file (MELD lacks
  dev ``dia110_utt7``; ``dia125_utt3`` is corrupt) leaves that modality ``None`` for that utterance,
  counted and logged.
- ``dialoguegcn=FILE``: the DialogueGCN/MMGCN pickle, a tuple ``(videoIDs, videoSpeakers, videoLabels,
  videoText, videoAudio[, videoVisual], videoSentence, trainVid, testVid[, sentiment labels])`` or a dict
  with those names, read with the restricted unpickler. Its dialogue keys are the CSV dialogue ids with
  offsets train 0, dev 1039, test 1153 (train+dev = ``trainVid``, 1153 dialogues; test = ``testVid``),
  its labels use the order ``neutral surprise fear sadness joy disgust anger``. Every matched label must
  agree with the CSV, which proves the alignment; each utterance gets one frame per modality.

Usage::

    data = load_dataset("meld", "MELD.Raw")                       # three CSVs
    data = load_dataset("meld", "meld", splits=("train", "valid"))  # no test CSV
    data = load_dataset("meld", "MELD.Raw", dialoguegcn="MELD_features_raw1.pkl", label="sentiment")
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from egmf.data import validate as V
from egmf.data.readers import FeatureSet, load_feature_files, read_csv
from egmf.data.registry import register_dataset
from egmf.data.safe_pickle import safe_load
from egmf.data.schema import MELD_EMOTIONS, MELD_SENTIMENTS, MODALITIES, SPLITS, BenchmarkData, DatasetInfo, Sample
from egmf.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

# The official file names; the synthetic writer and the raw-media layout read them from here.
CSV_FILES = {"train": "train_sent_emo.csv", "valid": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
COLUMNS = ("Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
           "Season", "Episode", "StartTime", "EndTime")
LABEL_KINDS = {"emotion": ("Emotion", MELD_EMOTIONS), "sentiment": ("Sentiment", MELD_SENTIMENTS)}
# DialogueGCN/MMGCN pickle: label order and dialogue-key offset of each split.
DGCN_EMOTIONS = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
DGCN_OFFSETS = {"train": 0, "valid": 1039, "test": 1153}
DGCN_FIELDS_10 = ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "videoAudio", "videoVisual",
                  "videoSentence", "trainVid", "testVid", "videoSentiment")
DGCN_FIELDS_9 = ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "videoAudio",
                 "videoSentence", "trainVid", "testVid", "videoSentiment")
DGCN_MODALITIES = {"text": "videoText", "audio": "videoAudio", "vision": "videoVisual"}


@dataclass(frozen=True)
class Row:
    dialogue: int
    utterance: int
    text: str
    speaker: str
    emotion: str
    sentiment: str

    @property
    def name(self) -> str:
        return f"dia{self.dialogue}_utt{self.utterance}"


def _int(value: str, file: Path, field: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise DataFormatError(file, field, "a whole number", repr(value)) from None


def read_split_csv(file: Path) -> list[Row]:
    """Read and check one MELD CSV: columns, labels, non-empty text, unique (dialogue, utterance)."""
    rows = read_csv(file, COLUMNS)
    out, seen = [], set()
    for i, r in enumerate(rows):
        where = f"row {i + 2}"  # the header is line 1
        row = Row(
            dialogue=_int(r["Dialogue_ID"], file, f"{where}.Dialogue_ID"),
            utterance=_int(r["Utterance_ID"], file, f"{where}.Utterance_ID"),
            text=V.require_text(r["Utterance"], file, f"{where}.Utterance").strip(),
            speaker=V.require_text(r["Speaker"], file, f"{where}.Speaker").strip(),
            emotion=V.require_label(r["Emotion"].strip().lower(), MELD_EMOTIONS, file, f"{where}.Emotion"),
            sentiment=V.require_label(r["Sentiment"].strip().lower(), MELD_SENTIMENTS, file, f"{where}.Sentiment"),
        )
        if (row.dialogue, row.utterance) in seen:
            raise DataFormatError(file, f"{where}.Utterance_ID", "a unique (Dialogue_ID, Utterance_ID)", row.name)
        seen.add((row.dialogue, row.utterance))
        out.append(row)
    if not out:
        raise DataFormatError(file, "rows", "at least one utterance", "an empty table")
    return out


def _feature_dir(path: Path, features: Any) -> Path | None:
    if features is None or features is False:
        return None
    if isinstance(features, str) and features == "auto":
        auto = path / "features"
        return auto if auto.is_dir() else None
    folder = Path(features)
    if not folder.is_dir():
        raise DataFormatError(folder, "features", "a folder of {split}/{modality}/dia{D}_utt{U}.npy files", "no such folder")
    return folder


def _folder_features(folder: Path, rows: dict[str, list[Row]], nan: str) -> dict[str, dict[str, FeatureSet]]:
    """Per split and modality, the arrays of ``folder/{split}/{m}/dia{D}_utt{U}.npy`` (None when missing)."""
    present = [m for m in MODALITIES if any((folder / s / m).is_dir() or (folder / "dev" / m).is_dir() for s in rows)]
    if not present:
        raise DataFormatError(folder, "features", "subfolders {split}/{text,audio,vision}/", "none found")
    out: dict[str, dict[str, FeatureSet]] = {}
    for split, split_rows in rows.items():
        base = folder / split
        if split == "valid" and not base.is_dir() and (folder / "dev").is_dir():
            base = folder / "dev"
        out[split] = {
            m: load_feature_files({r.name: base / m / f"{r.name}.npy" for r in split_rows}, m, nan, where=str(base))
            for m in present
        }
    return out


def _dgcn_fields(raw: Any, file: Path) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        V.require_keys(raw, ("videoIDs", "videoLabels", "trainVid", "testVid"), file)
        return dict(raw)
    if isinstance(raw, (tuple, list)) and len(raw) in (9, 10):
        names = DGCN_FIELDS_10 if len(raw) == 10 else DGCN_FIELDS_9
        return dict(zip(names, raw))
    got = f"{type(raw).__name__} of {len(raw)}" if isinstance(raw, (tuple, list)) else type(raw).__name__
    raise DataFormatError(file, "top level", "a tuple (videoIDs, videoSpeakers, videoLabels, ...) of 9 or 10 items", got)


def _dgcn_features(file: Path, rows: dict[str, list[Row]], nan: str) -> dict[str, dict[str, FeatureSet]]:
    """Per split and modality, one frame per utterance from the DialogueGCN/MMGCN pickle."""
    fields = _dgcn_fields(safe_load(file), file)
    ids, labels = fields["videoIDs"], fields["videoLabels"]
    present = [m for m, key in DGCN_MODALITIES.items() if key in fields]
    out: dict[str, dict[str, FeatureSet]] = {}
    for split, split_rows in rows.items():
        sets = {m: FeatureSet(m, {}) for m in present}
        for r in split_rows:
            key = r.dialogue + DGCN_OFFSETS[split]
            utts = [int(u) for u in ids.get(key, [])] if isinstance(ids, Mapping) else []
            if r.utterance not in utts:
                for fs in sets.values():
                    fs.arrays[r.name] = None
                    fs.missing.append(r.name)
                continue
            pos = utts.index(r.utterance)
            lab = int(np.asarray(labels[key])[pos])
            if not 0 <= lab < len(DGCN_EMOTIONS) or DGCN_EMOTIONS[lab] != r.emotion:
                raise DataFormatError(
                    file, f"videoLabels[{key}][{pos}]",
                    f"the CSV emotion {r.emotion!r} of {split} {r.name} (label order {', '.join(DGCN_EMOTIONS)})",
                    lab,
                )
            for m, fs in sets.items():
                where = f"{DGCN_MODALITIES[m]}[{key}][{pos}]"
                vec = np.asarray(fields[DGCN_MODALITIES[m]][key][pos])
                vec = V.require_array(vec.reshape(1, -1) if vec.ndim == 1 else vec, file, where, 2, "fiu")
                for k, v in V.count_nonfinite(vec).items():
                    fs.nonfinite[k] += v
                arr = V.clean_features(vec, file, where, nan=nan)
                if fs.dim and arr.shape[1] != fs.dim:
                    raise DataFormatError(file, where, f"feature dim {fs.dim}", arr.shape[1])
                fs.dim = int(arr.shape[1])
                fs.arrays[r.name] = arr
        for fs in sets.values():
            if fs.missing:
                logger.warning("%s: %s: %d %s utterances not in the pickle: modality None for them",
                               file, fs.modality, len(fs.missing), split)
        out[split] = sets
    return out


def load_meld(
    path: Path,
    label: str = "emotion",
    splits: Sequence[str] = SPLITS,
    features: Any = "auto",
    dialoguegcn: str | Path | None = None,
    nan: str = "error",
    **options: Any,
) -> BenchmarkData:
    """Load MELD from the folder ``path``; see the module docstring for files and options."""
    if options:
        raise ConfigError(f"meld: unknown loader options {sorted(options)}; valid: label, splits, features, dialoguegcn, nan")
    if label not in LABEL_KINDS:
        raise ConfigError(f"label: expected one of {', '.join(LABEL_KINDS)}, got {label!r}")
    V.check_nan_policy(nan)
    if dialoguegcn is not None and features not in ("auto", None, False):
        raise ConfigError("meld: pass either features=DIR or dialoguegcn=FILE, not both")
    splits = tuple(splits)
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ConfigError(f"splits: expected a subset of {', '.join(SPLITS)}, got {splits}")
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(path, "path", "a folder holding train_sent_emo.csv, dev_sent_emo.csv, test_sent_emo.csv")
    for s in splits:
        if not (path / CSV_FILES[s]).is_file():
            hint = "" if s != "test" else " (pass splits=('train', 'valid') to load a folder without it)"
            raise DataFormatError(path / CSV_FILES[s], "path", f"the MELD {s} CSV{hint}", "no such file")

    rows = {s: read_split_csv(path / CSV_FILES[s]) for s in splits}
    folder = _feature_dir(path, features if dialoguegcn is None else None)
    feats: dict[str, dict[str, FeatureSet]] = {}
    if dialoguegcn is not None:
        feats = _dgcn_features(Path(dialoguegcn), rows, nan)
    elif folder is not None:
        feats = _folder_features(folder, rows, nan)
    source_file = Path(dialoguegcn) if dialoguegcn is not None else folder
    for m in MODALITIES:
        dims = {s: feats[s][m].dim for s in feats if m in feats[s] and feats[s][m].dim}
        V.require_same_dim(dims, source_file or path, f"{m} feature dim")

    _, words = LABEL_KINDS[label]
    other = "sentiment" if label == "emotion" else "emotion"
    info = DatasetInfo(name="meld", task="erc", lang="en", labels=words, metric_family="erc")
    out: dict[str, list[Sample]] = {}
    for split, split_rows in rows.items():
        history: dict[int, list[tuple[int, str, str]]] = {}
        for r in split_rows:
            history.setdefault(r.dialogue, []).append((r.utterance, r.speaker, r.text))
        samples = []
        for r in split_rows:
            earlier = sorted(h for h in history[r.dialogue] if h[0] < r.utterance)
            arr = {m: fs.arrays.get(r.name) for m, fs in feats.get(split, {}).items()}
            samples.append(
                Sample(
                    id=f"{split}/{r.name}",
                    text=r.text,
                    label=getattr(r, label),
                    dataset="meld",
                    task="erc",
                    lang="en",
                    speaker=r.speaker,
                    context=[(spk, txt) for _, spk, txt in earlier],
                    text_feats=arr.get("text"),
                    audio=arr.get("audio"),
                    vision=arr.get("vision"),
                    extra_labels={other: getattr(r, other)},
                )
            )
        out[split] = samples
    return BenchmarkData(info=info, splits=out, source=str(path))


def register() -> None:
    register_dataset("meld", load_meld, "MELD (official CSVs + optional features), English, 7 emotions / 3 sentiments")
