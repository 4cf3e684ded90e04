"""Checkpoints: the trainable weights in safetensors, the resolved config, and what rebuilds the model.

A checkpoint folder holds
  ``trainable.safetensors``  LoRA + fusion weights only (the frozen LLM is referenced, never copied),
  ``config.yaml``            the resolved run config,
  ``meta.json``              dataset facts (labels, ranges, feature dims), the LLM reference, step, metric,
and, for the resumable ``last`` checkpoint,
  ``trainer_state.json``     where training stands (step, epoch, batches done in the epoch, best so far),
  ``accelerate_state/``      ``accelerator.save_state``: optimizer, scheduler, the gradient-accumulation step,
                             and every process's RNG states (Python, NumPy, torch CPU and CUDA/XPU/MPS).
Every write goes through ``egmf.atomic.atomic_folder(..., exists="replace")``, so a run killed in the middle
of a save leaves the previous checkpoint intact, never a half-written one; ``egmf.atomic.recover_folder``
repairs a kill between the final two renames.
"""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors.torch import load_file, save_file

from egmf.atomic import atomic_folder
from egmf.data.schema import DatasetInfo
from egmf.errors import DataFormatError

WEIGHTS = "trainable.safetensors"
META = "meta.json"
CONFIG = "config.yaml"
STATE = "trainer_state.json"
ACCELERATE_STATE = "accelerate_state"

logger = logging.getLogger(__name__)


def write_checkpoint_files(
    folder: Path,
    weights: dict[str, torch.Tensor],
    config: dict,
    infos: dict[str, DatasetInfo],
    feature_dims: dict[str, dict[str, int]],
    extra_meta: dict[str, Any] | None = None,
) -> None:
    """The model part of a checkpoint into ``folder`` (a temporary folder that is published whole)."""
    from egmf.typed_config import write_yaml

    save_file({k: v.detach().to("cpu").contiguous() for k, v in weights.items()}, str(folder / WEIGHTS))
    write_yaml(config, folder / CONFIG)
    meta = {
        "format": "egmf-checkpoint/1",
        "datasets": {name: _info_to_json(info) for name, info in infos.items()},
        "feature_dims": feature_dims,
        **(extra_meta or {}),
    }
    (folder / META).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")


def save_checkpoint(
    path: Path,
    weights: dict[str, torch.Tensor],
    config: dict,
    infos: dict[str, DatasetInfo],
    feature_dims: dict[str, dict[str, int]],
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder at ``path`` atomically (replacing an older one of the same name).
    One process writes it (the main one, in training)."""
    with atomic_folder(path, exists="replace") as tmp:
        write_checkpoint_files(tmp, weights, config, infos, feature_dims, extra_meta)
    return Path(path)


def save_resumable(path: Path, accelerator, trainer_state: dict, **checkpoint) -> Path:
    """The resumable checkpoint: :func:`write_checkpoint_files` (``checkpoint`` holds its arguments),
    ``trainer_state.json`` and ``accelerator.save_state``, published atomically as one folder.

    Collective: every process calls it (each writes its own RNG file); only the main process writes the rest
    and publishes the folder, once every process has written its part.
    """
    with _collective_folder(Path(path), accelerator) as tmp:
        with _state_without_models(accelerator):
            accelerator.save_state(str(tmp / ACCELERATE_STATE))
        if accelerator.is_main_process:
            write_checkpoint_files(tmp, **checkpoint)
            (tmp / STATE).write_text(json.dumps(trainer_state), encoding="utf-8")
    return Path(path)


def is_resumable(path: Path) -> bool:
    return (Path(path) / STATE).is_file() and (Path(path) / ACCELERATE_STATE).is_dir()


def load_resumable(path: Path, accelerator) -> dict:
    """Restore what :func:`save_resumable` saved into the prepared objects of ``accelerator`` (optimizer,
    scheduler, this process's RNG states) and return the trainer state. The trainable weights are the
    caller's to load (:func:`load_weights`), as for any checkpoint."""
    from accelerate.utils import RNG_STATE_NAME

    folder = Path(path) / ACCELERATE_STATE
    if not (folder / f"{RNG_STATE_NAME}_{accelerator.process_index}.pkl").is_file():
        # Accelerate skips a missing RNG file silently; say so: the run goes on, but not bit for bit.
        logger.warning(f"{folder}: no RNG state for process {accelerator.process_index} (saved with fewer "
                       "processes?): its random draws restart from the seed")
    with _state_without_models(accelerator):
        accelerator.load_state(str(folder))
    return json.loads((Path(path) / STATE).read_text(encoding="utf-8"))


@contextmanager
def _state_without_models(accelerator) -> Iterator[None]:
    """Keep the models out of ``save_state`` / ``load_state``: they would write and read the whole model,
    frozen LLM included, while ``trainable.safetensors`` already holds all that training changed.
    Accelerate's pre-hooks may drop models from the lists it is about to save or load."""
    saving = accelerator.register_save_state_pre_hook(lambda models, weights, folder: weights.clear())
    loading = accelerator.register_load_state_pre_hook(lambda models, folder: models.clear())
    try:
        yield
    finally:
        saving.remove()
        loading.remove()


@contextmanager
def _collective_folder(path: Path, accelerator) -> Iterator[Path]:
    """``atomic_folder(path, exists="replace")`` shared by every process: the main process makes the
    temporary folder and tells the others its name; it publishes once they have all written into it."""
    from accelerate.utils import broadcast_object_list

    with ExitStack() as stack:
        name = [None]
        if accelerator.is_main_process:
            name = [str(stack.enter_context(atomic_folder(path, exists="replace")))]
        if accelerator.num_processes > 1:
            broadcast_object_list(name)
        yield Path(name[0])
        accelerator.wait_for_everyone()  # every process's files are in before the folder is published
    accelerator.wait_for_everyone()  # and it is published before any process goes on (or reads it)


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


def load_model(path: Path):
    """Rebuild a trained model from a checkpoint folder: ``(model, run_config, infos)``.

    The frozen LLM is loaded from its reference (the embedded SmolLM2's cache, a name or a path) and the
    trainable weights from ``trainable.safetensors``; no dataset needs to be read.
    """
    from egmf.config import saved_config_from_dict
    from egmf.model.registry import build_model
    from egmf.typed_config import read_yaml

    path = Path(path)
    _, infos, dims = read_meta(path)
    saved = read_yaml(path / CONFIG)
    model_cfg = saved.get("model") if isinstance(saved, dict) else None
    if isinstance(model_cfg, dict) and "sentence_encoder" not in model_cfg:
        # Saved before model.sentence_encoder existed: its sentence vectors were MiniLM's, whatever the language.
        model_cfg["sentence_encoder"] = "minilm"
    cfg = saved_config_from_dict(saved)
    model = build_model(cfg.model, infos, dims)
    model.load_trainable_state_dict(load_weights(path))
    model.eval()
    return model, cfg, infos
