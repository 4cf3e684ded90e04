"""Input layouts of ``egmf extract``: each turns a folder as distributed into a list of :class:`Item` and
the dataset facts written to ``dataset.yaml``.

- ``meld``: ``{train,dev,test}_sent_emo.csv`` and the clips ``dia{D}_utt{U}.mp4`` in the folders of
  ``MELD.Raw`` (``train_splits``, ``dev_splits_complete``, ``output_repeated_splits_test``), anywhere below
  the input folder. Ids are ``{split}_dia{D}_utt{U}`` because MELD reuses dialogue numbers across splits.
- ``simsv2``: ``label.csv`` (video_id, clip_id, text, label, label_T, label_A, label_V, mode) and
  ``Raw/{video_id}/{clip_id}.mp4``; ids ``{video_id}$_${clip_id}`` as in the MMSA pickles.
- ``cherma``: ``train.json`` / ``test.json`` (records with ``audio_file``, ``video_file``, ``video_label``
  and the utterance text) and the media they name; a seeded 10 % of train becomes ``valid``.
- ``custom``: any folder of audio/video files, with an optional ``data.csv`` (id, text, label, split,
  optional speaker, dialogue, file) or ``transcripts.csv`` (id, text).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from egmf.data.meld import CSV_FILES as MELD_CSV_FILES
from egmf.data.schema import CHERMA_EMOTIONS, MELD_EMOTIONS
from egmf.errors import ConfigError, DataFormatError
from egmf.features.media import AUDIO_SUFFIXES, VIDEO_SUFFIXES

LAYOUTS = ("meld", "simsv2", "cherma", "custom")
MELD_CLIP_DIRS = {
    "train": ("train_splits",),
    "valid": ("dev_splits_complete", "dev_splits"),
    "test": ("output_repeated_splits_test", "test_splits"),
}


@dataclass
class Item:
    """One clip to extract. ``video``/``audio`` are None when absent; ``text`` None means "transcribe"."""

    id: str
    split: str
    label: str | float | None
    text: str | None
    video: Path | None = None
    audio: Path | None = None
    speaker: str | None = None
    dialogue: str | None = None
    extra: dict[str, object] = field(default_factory=dict)  # extra data.csv columns (e.g. label_T)
    missing: str = ""  # why the media could not be found (the item then fails in the report)


def _media_index(root: Path) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    for p in root.rglob("*"):
        if p.suffix.lower() in VIDEO_SUFFIXES + AUDIO_SUFFIXES and p.is_file():
            index.setdefault(p.name, []).append(p)
    return index


def _read_csv(path: Path, required: tuple[str, ...], **kw) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, keep_default_na=False, **kw)
    except UnicodeDecodeError:  # some MELD copies are cp1252
        df = pd.read_csv(path, keep_default_na=False, encoding="cp1252", **kw)
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataFormatError(path, "columns", f"columns {list(required)}", f"missing {missing}")
    return df


def _meld(root: Path) -> tuple[list[Item], dict]:
    index = _media_index(root)
    items: list[Item] = []
    found_csv = False
    for split, csv_name in MELD_CSV_FILES.items():
        csvs = sorted(root.rglob(csv_name))
        if not csvs:
            continue
        found_csv = True
        df = _read_csv(csvs[0], ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID"))
        for row in df.itertuples(index=False):
            d, u = int(row.Dialogue_ID), int(row.Utterance_ID)
            name = f"dia{d}_utt{u}.mp4"
            cands = [p for p in index.get(name, []) if p.parent.name in MELD_CLIP_DIRS[split]]
            label = str(row.Emotion).strip()
            if label not in MELD_EMOTIONS:
                raise DataFormatError(csvs[0], "Emotion", f"one of {MELD_EMOTIONS}", repr(label))
            items.append(Item(
                id=f"{split}_dia{d}_utt{u}", split=split, label=label, text=str(row.Utterance),
                video=cands[0] if cands else None, speaker=str(row.Speaker), dialogue=f"{split}_{d}",
                extra={"sentiment": str(getattr(row, "Sentiment", ""))},
                missing="" if cands else f"{name} not found in a {'/'.join(MELD_CLIP_DIRS[split])} folder",
            ))
    if not found_csv:
        raise DataFormatError(root, "MELD CSVs", f"at least one of {list(MELD_CSV_FILES.values())} below the folder")
    info = {"name": "meld", "task": "erc", "lang": "en", "labels": list(MELD_EMOTIONS), "metric_family": "erc"}
    return items, info


def _simsv2(root: Path) -> tuple[list[Item], dict]:
    csv = root / "label.csv"
    if not csv.exists():
        raise DataFormatError(csv, "file", "label.csv with video_id, clip_id, text, label, mode")
    df = _read_csv(csv, ("video_id", "clip_id", "text", "label", "mode"), dtype=str)
    items = []
    for row in df.to_dict("records"):
        vid, clip = row["video_id"].strip(), row["clip_id"].strip()
        video = root / "Raw" / vid / f"{clip}.mp4"
        mode = row["mode"].strip().lower()
        if mode not in ("train", "valid", "test"):
            raise DataFormatError(csv, "mode", "train, valid or test", repr(row["mode"]))
        label = float(row["label"]) if row["label"].strip() else None
        extra = {k: float(row[k]) for k in ("label_T", "label_A", "label_V") if str(row.get(k, "")).strip()}
        items.append(Item(id=f"{vid}$_${clip}", split=mode, label=label, text=row["text"], video=video,
                          extra=extra, missing="" if video.exists() else f"{video} not found"))
    info = {"name": "simsv2", "task": "msa", "lang": "zh", "score_range": [-1.0, 1.0], "metric_family": "sims"}
    return items, info


def _resolve(root: Path, index: dict[str, list[Path]], name: str | None) -> Path | None:
    if not name:
        return None
    direct = root / name
    if direct.exists():
        return direct
    hits = index.get(Path(name).name, [])
    return hits[0] if len(hits) == 1 else None


def _cherma(root: Path, valid_fraction: float = 0.1, seed: int = 0) -> tuple[list[Item], dict]:
    index = _media_index(root)
    items: list[Item] = []
    for split in ("train", "test"):
        path = root / f"{split}.json"
        if not path.exists():
            raise DataFormatError(path, "file", f"{split}.json (a list of records)")
        records = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(records, list):
            raise DataFormatError(path, "top level", "a list of records", type(records).__name__)
        for i, r in enumerate(records):
            label = r.get("video_label")
            if label not in CHERMA_EMOTIONS:
                raise DataFormatError(path, f"[{i}].video_label", f"one of {CHERMA_EMOTIONS}", repr(label))
            video = _resolve(root, index, r.get("video_file"))
            audio = _resolve(root, index, r.get("audio_file"))
            ident = str(r.get("id") or Path(r.get("video_file") or r.get("audio_file") or f"{split}_{i}").stem)
            text = next((r[k] for k in ("text", "txt", "utterance", "sentence") if r.get(k)), None)
            items.append(Item(
                id=ident, split=split, label=label, text=text, video=video, audio=audio,
                extra={k: r[k] for k in ("txt_label", "audio_label", "visual_label") if k in r},
                missing="" if (video or audio) else f"neither {r.get('video_file')} nor {r.get('audio_file')} found",
            ))
    # No official valid split: a seeded draw from train, so every run and machine gets the same one.
    train = [it for it in items if it.split == "train"]
    for it in random.Random(seed).sample(train, round(valid_fraction * len(train))):
        it.split = "valid"
    info = {"name": "cherma", "task": "erc", "lang": "zh", "labels": list(CHERMA_EMOTIONS), "metric_family": "erc"}
    return items, info


def _custom(root: Path, lang: str = "en") -> tuple[list[Item], dict]:
    index = _media_index(root)
    by_stem = {Path(n).stem: ps[0] for n, ps in index.items() if len(ps) == 1}
    items: list[Item] = []
    if (root / "data.csv").exists():
        df = _read_csv(root / "data.csv", ("id",), dtype=str)
        for row in df.to_dict("records"):
            ident = row["id"].strip()
            media = _resolve(root, index, row.get("file") or None) or by_stem.get(ident)
            is_video = media is not None and media.suffix.lower() in VIDEO_SUFFIXES
            label = row.get("label", "").strip() or None
            items.append(Item(
                id=ident, split=(row.get("split", "").strip() or "test"), label=label,
                text=row["text"] if row.get("text", "").strip() else None,
                video=media if is_video else None, audio=None if is_video else media,
                speaker=row.get("speaker") or None, dialogue=row.get("dialogue") or None,
                missing="" if media or row.get("text", "").strip() else f"no media file named {ident}.*",
            ))
    else:
        texts = {}
        if (root / "transcripts.csv").exists():
            tdf = _read_csv(root / "transcripts.csv", ("id", "text"), dtype=str)
            texts = dict(zip(tdf["id"].str.strip(), tdf["text"]))
        for stem, media in sorted(by_stem.items()):
            is_video = media.suffix.lower() in VIDEO_SUFFIXES
            items.append(Item(id=stem, split="test", label=None, text=texts.get(stem),
                              video=media if is_video else None, audio=None if is_video else media))
    if not items:
        raise DataFormatError(root, "media", f"audio/video files ({', '.join(VIDEO_SUFFIXES + AUDIO_SUFFIXES)})")
    return items, infer_info(re.sub(r"[^A-Za-z0-9_.-]", "_", root.name) or "custom", items, lang)


def infer_info(name: str, items: list[Item], lang: str) -> dict:
    """dataset.yaml facts from the labels: numbers -> MSA over their range, words -> ERC over their set."""
    labels = [it.label for it in items if it.label not in (None, "")]
    try:
        scores = [float(v) for v in labels]
    except (TypeError, ValueError):
        scores = None
    if labels and scores is not None:
        for it in items:
            it.label = float(it.label) if it.label not in (None, "") else None
        lo, hi = min(scores), max(scores)
        # The two ranges the field uses, when the labels fit them; else the labels' own range.
        rng = [-1.0, 1.0] if lo >= -1 and hi <= 1 else [-3.0, 3.0] if lo >= -3 and hi <= 3 else [lo, hi]
        return {"name": name, "task": "msa", "lang": lang, "score_range": rng,
                "metric_family": "sims" if rng == [-1.0, 1.0] else "mosi"}
    words = sorted({str(v) for v in labels})
    return {"name": name, "task": "erc", "lang": lang, "labels": words, "metric_family": "erc"}


def read_layout(layout: str, root: str | Path, lang: str | None = None) -> tuple[list[Item], dict]:
    """``(items, dataset facts)`` of the input folder ``root`` in ``layout``."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise ConfigError(f"layout: unknown {layout!r}; valid choices: {', '.join(LAYOUTS)}")
    if not root.is_dir():
        raise DataFormatError(root, "input folder", "an existing folder")
    if layout == "meld":
        return _meld(root)
    if layout == "simsv2":
        return _simsv2(root)
    if layout == "cherma":
        return _cherma(root)
    return _custom(root, lang or "en")
