"""Checkpoints: the trainable weights in safetensors, the resolved config, and what rebuilds the model.

A checkpoint folder holds
  ``trainable.safetensors``  LoRA + fusion weights only (the frozen LLM is referenced, never copied),
  ``config.yaml``            the resolved run config,
  ``meta.json``              dataset facts (labels, ranges, feature dims), the LLM reference, step, metric,
and, for the resumable ``last`` checkpoint, ``optimizer.pt`` and ``trainer_state.json`` (step, epoch, RNG).
Every write goes to a temporary sibling folder first and is renamed into place, so a run killed in the middle
of a save leaves the previous checkpoint intact, never a half-written one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from egmf.data.schema import DatasetInfo
from egmf.errors import DataFormatError

WEIGHTS = "trainable.safetensors"
META = "meta.json"
CONFIG = "config.yaml"
OPTIMIZER = "optimizer.pt"
STATE = "trainer_state.json"


def save_checkpoint(
    path: Path,
    weights: dict[str, torch.Tensor],
    config: dict,
    infos: dict[str, DatasetInfo],
    feature_dims: dict[str, dict[str, int]],
    extra_meta: dict[str, Any] | None = None,
    optimizer_state: dict | None = None,
    trainer_state: dict | None = None,
) -> Path:
    """Write a checkpoint folder at ``path`` atomically (replacing an older one of the same name)."""
    from egmf.typed_config import write_yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        save_file({k: v.detach().to("cpu").contiguous() for k, v in weights.items()}, str(tmp / WEIGHTS))
        write_yaml(config, tmp / CONFIG)
        meta = {
            "format": "egmf-checkpoint/1",
            "datasets": {name: _info_to_json(info) for name, info in infos.items()},
            "feature_dims": feature_dims,
            **(extra_meta or {}),
        }
        (tmp / META).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        if optimizer_state is not None:
            torch.save(optimizer_state, tmp / OPTIMIZER)
        if trainer_state is not None:
            (tmp / STATE).write_text(json.dumps(trainer_state), encoding="utf-8")
        _fsync_dir(tmp)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def recover_interrupted_save(path: Path) -> str | None:
    """Put back the checkpoint a kill caught between :func:`save_checkpoint`'s two renames.

    A save moves the previous folder aside (``.NAME.old-PID``) and then renames the new one into place; a kill
    between the two leaves ``path`` missing while the previous checkpoint, complete, sits aside. Unfinished
    ``.NAME.tmp-*`` folders of a killed save are removed. Returns what was done, for the log, or ``None``.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return None
    done = None
    aside = sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not path.exists() and aside:
        os.replace(aside.pop(), path)
        done = f"restored {path} from a save interrupted between its renames"
    for stale in [*aside, *path.parent.glob(f".{path.name}.tmp-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    return done


def _fsync_dir(folder: Path) -> None:
    for p in folder.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())


def _info_to_json(info: DatasetInfo) -> dict:
    d = asdict(info)
    d["labels"] = list(info.labels)
    d["score_range"] = list(info.score_range) if info.score_range else None
    return d


def _info_from_json(d: dict) -> DatasetInfo:
    return DatasetInfo(
        name=d["name"],
        task=d["task"],
        lang=d["lang"],
        labels=tuple(d.get("labels") or ()),
        score_range=tuple(d["score_range"]) if d.get("score_range") else None,
        metric_family=d.get("metric_family", ""),
    )


def read_meta(path: Path) -> tuple[dict, dict[str, DatasetInfo], dict[str, dict[str, int]]]:
    """``(meta, infos, feature_dims)`` of a checkpoint folder, with a clear error if it is not one."""
    path = Path(path)
    file = path / META
    if not file.is_file() or not (path / WEIGHTS).is_file():
        raise DataFormatError(path, "checkpoint", f"a folder holding {WEIGHTS} and {META} (written by egmf train)")
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(file, "json", "a readable checkpoint manifest", str(e)) from None
    infos = {name: _info_from_json(d) for name, d in meta["datasets"].items()}
    return meta, infos, meta["feature_dims"]


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    file = Path(path) / WEIGHTS
    try:
        return load_file(str(file))
    except Exception as e:  # safetensors raises its own error types for truncated files
        raise DataFormatError(file, "safetensors", "a complete safetensors file", f"{type(e).__name__}: {e}") from None


def load_optimizer_state(path: Path) -> dict:
    return torch.load(Path(path) / OPTIMIZER, weights_only=True)


def load_trainer_state(path: Path) -> dict:
    return json.loads((Path(path) / STATE).read_text(encoding="utf-8"))


def rng_state() -> dict:
    """The RNG states dropout and shuffling depend on, JSON-safe (lists of ints)."""
    np_state = np.random.get_state()
    return {
        "python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state().tolist(),
    }


def set_rng_state(state: dict) -> None:
    inner, version, gauss = state["python"]
    random.setstate((version, tuple(inner), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))


def load_model(path: Path):
    """Rebuild a trained model from a checkpoint folder: ``(model, run_config, infos)``.

    The frozen LLM is loaded from its reference (the embedded SmolLM2's cache, a name or a path) and the
    trainable weights from ``trainable.safetensors``; no dataset needs to be read.
    """
    from egmf.config import config_from_dict
    from egmf.model.registry import build_model
    from egmf.typed_config import read_yaml

    path = Path(path)
    _, infos, dims = read_meta(path)
    cfg = config_from_dict(read_yaml(path / CONFIG))
    model = build_model(cfg.model, infos, dims)
    model.load_trainable_state_dict(load_weights(path))
    model.eval()
    return model, cfg, infos
