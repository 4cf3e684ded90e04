"""Training logs through Accelerate's trackers: TensorBoard and the run's ``train_log.jsonl``.

``fit`` logs with ``accelerator.log({"train/loss": ..., ...}, step=...)``; every tracker gets the same values:

- TensorBoard (Accelerate's own tracker) in ``<seed_dir>/tensorboard``: one scalar series per key;
- :class:`JsonLinesTracker`, ``<seed_dir>/train_log.jsonl``: one JSON line per call, ``{"step": ..., ...}``,
  with the flat keys that file has always had (``epoch``, ``loss``; ``valid_selection``, ``improved``).
  Dashboard-only series (``train/lr_lora``) stay out of it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from accelerate.tracking import GeneralTracker, TensorBoardTracker, on_main_process
from accelerate.utils import is_tensorboard_available

logger = logging.getLogger(__name__)

# tracker key -> train_log.jsonl key; keys not listed are for the dashboards only.
JSON_KEYS = {"train/epoch": "epoch", "train/loss": "loss", "valid/selection": "valid_selection",
             "valid/improved": "improved"}


class JsonLinesTracker(GeneralTracker):
    """An Accelerate tracker appending one JSON line per ``log`` call (appending: a resumed run continues it)."""

    name = "jsonl"
    requires_logging_directory = False

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self.file = None

    @property
    def tracker(self):
        return self.file

    @on_main_process
    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("a", encoding="utf-8")

    @on_main_process
    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        record = {"step": step, **{JSON_KEYS[k]: v for k, v in values.items() if k in JSON_KEYS}}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()  # a killed run keeps every line written before the kill

    @on_main_process
    def finish(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def start_trackers(accelerator, seed_dir: Path) -> None:
    """Start this seed's trackers on ``accelerator``.

    Accelerate fixes ``log_with`` when the Accelerator is built, but one accelerator serves every seed of a
    run and each seed logs into its own folder, so the trackers are set here, just before ``init_trackers``.
    """
    stop_trackers(accelerator)  # a previous seed's, if it was not stopped
    trackers: list[GeneralTracker] = [JsonLinesTracker(seed_dir / "train_log.jsonl")]
    if is_tensorboard_available():
        trackers.append(TensorBoardTracker("tensorboard", seed_dir))  # writes to seed_dir / "tensorboard"
    elif accelerator.is_main_process:  # tensorboard is a dependency; a trimmed install still trains
        logger.warning("tensorboard is not installed: no TensorBoard logs")
    accelerator.log_with, accelerator.trackers = trackers, []
    accelerator.init_trackers("egmf")


def stop_trackers(accelerator) -> None:
    """Close the trackers: ``accelerator.end_training()`` without its ``destroy_process_group``, which would
    end the processes' group while the run still evaluates (and trains further seeds) after ``fit``."""
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers = []
