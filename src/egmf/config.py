"""The run config: what to load, which model, how to train and evaluate. One YAML file per benchmark.

``egmf train --config configs/meld.yaml --set train.epochs=2 --set model.fusion.num_pseudo_tokens=8``
loads the YAML, applies the overrides, and validates every key and value before any data is read. The
resolved config is saved beside the results (``config.yaml``), so a run folder reproduces its numbers.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from egmf.errors import ConfigError
from egmf.model.config import ModelConfig
from egmf.typed_config import apply_overrides, check_choices, from_dict, read_yaml, to_dict, write_yaml

logger = logging.getLogger(__name__)


@dataclass
class DatasetEntry:
    name: str = field(metadata={"help": "a registered dataset: mosi, mosei, sims, simsv2, meld, cherma, custom"})
    path: str = field(metadata={"help": "the file or folder the loader reads (relative paths: from the working dir)"})
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "loader options, e.g. {nan: zero}"})

    def __post_init__(self):
        from egmf.data.registry import dataset_names

        names = dataset_names()
        if self.name not in names:
            raise ConfigError(f"data.datasets.name: unknown dataset {self.name!r}; valid choices: {', '.join(names)}")


@dataclass
class DataConfig:
    datasets: list[DatasetEntry] = field(
        default_factory=list, metadata={"help": "datasets trained together; a batch may mix them"}
    )
    max_frames: dict[str, int] = field(
        default_factory=dict, metadata={"help": "truncate a modality to this many frames, e.g. {audio: 400}"}
    )
    limit: dict[str, int] = field(
        default_factory=dict, metadata={"help": "use at most N samples of a split per dataset (quick runs), e.g. {valid: 200}"}
    )
    speaker_normalization: bool = field(
        default=False,
        metadata={"help": "standardise each speaker's audio/vision frames and acoustic pooled sets (not text) with "
                          "that speaker's own per-dimension mean/std, per dataset and split, before the model's "
                          "train-split standardisation: removes voice and recording differences between speakers "
                          "(speaker-level normalisation, common in speech emotion work). Uses no labels but needs "
                          "each speaker's clips together, so the speaker of a test clip must be known; speakers with "
                          "fewer than 10 samples in a split are normalised together. `egmf predict --audio/--video` "
                          "(one clip) refuses such a model"},
    )

    def __post_init__(self):
        bad = sorted(set(self.max_frames) - {"text", "audio", "vision"})
        if bad:
            raise ConfigError(f"data.max_frames: unknown modality {bad[0]!r}; valid choices: text, audio, vision")
        bad = sorted(set(self.limit) - {"train", "valid", "test"})
        if bad:
            raise ConfigError(f"data.limit: unknown split {bad[0]!r}; valid choices: train, valid, test")


@dataclass
class TrainConfig:
    epochs: int = field(default=3, metadata={"help": "passes over the train split"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many optimiser steps (0 = epochs decide)"})
    time_limit_minutes: float = field(default=0.0, metadata={"help": "stop training after this long (0 = no limit)"})
    batch_size: int = field(default=8, metadata={"help": "samples per device per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimiser step"})
    # The four optimisation fields below default to null = the model's own default (its registry entry's
    # TrainDefaults, filled in by RunConfig): a baseline without an LLM wants other rates than EGMF.
    lr_lora: float | None = field(
        default=None, metadata={"help": "learning rate of the LoRA weights (null = the model's default; egmf 2e-4)"}
    )
    lr_fusion: float | None = field(
        default=None,
        metadata={"help": "learning rate of everything else: the fusion (encoders, experts, gates, projector) or a "
                          "baseline's whole network (null = the model's default; egmf 1e-3)"},
    )
    weight_decay: float | None = field(
        default=None,
        metadata={"help": "AdamW weight decay of weight matrices and kernels; norms, biases, embeddings, queries and "
                          "gate logits never decay (null = the model's default; egmf 0.01)"},
    )
    warmup_ratio: float | None = field(
        default=None,
        metadata={"help": "fraction of the steps spent warming up, then cosine decay (null = the model's default; "
                          "egmf 0.06)"},
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0 = off)"})
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = field(
        default="auto", metadata={"help": "auto = bf16 where the device supports it"}
    )
    seed: int = field(default=1111, metadata={"help": "seed of this run (egmf train --seeds overrides)"})
    eval_every: int = field(
        default=0, metadata={"help": "evaluate on valid every N steps, and after the last (0 = once per epoch)"}
    )
    num_evals: int = field(
        default=0,
        metadata={"help": "evaluate on valid this many times, evenly spread, the last at the final step "
                          "(0 = eval_every decides); overrides eval_every"},
    )
    length_bucketing: bool = field(
        default=True,
        metadata={"help": "batch training samples of similar prompt length (less padding; models with "
                          "prompt_length only, the others shuffle plainly)"},
    )
    bucket_batches: int = field(
        default=50,
        metadata={"help": "length bucketing: batches per length-sorted bucket (larger = less padding, less random)"},
    )
    threads: int = field(
        default=0,
        metadata={"help": "torch CPU threads per process (0 = OMP_NUM_THREADS if set, else the cores available "
                          "to this process divided by the processes on this machine)"},
    )
    save_every: int = field(default=50, metadata={"help": "write the resumable 'last' checkpoint every N steps"})
    patience: int = field(default=3, metadata={"help": "early stopping: evaluations without improvement (0 = off)"})
    log_every: int = field(default=10, metadata={"help": "log loss and learning rate every N steps"})

    def __post_init__(self):
        check_choices(self, "train")
        for name in ("epochs", "batch_size", "grad_accum", "save_every", "log_every", "bucket_batches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}: expected an integer >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "eval_every", "num_evals", "patience", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name}: expected an integer >= 0, got {getattr(self, name)}")
        if self.warmup_ratio is not None and not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"train.warmup_ratio: expected a value in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise ConfigError(f"train.weight_decay: expected a value >= 0, got {self.weight_decay}")
        for name in ("lr_lora", "lr_fusion"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ConfigError(f"train.{name}: expected a positive learning rate, got {getattr(self, name)}")

    def with_model_defaults(self, model_name: str) -> "TrainConfig":
        """This config with every optimisation field left null set to model ``model_name``'s default
        (:func:`egmf.model.registry.train_defaults`); the fields a config set stay as they are."""
        from egmf.model.registry import train_defaults

        unset = {k: v for k, v in train_defaults(model_name).as_dict().items() if getattr(self, k) is None}
        return dataclasses.replace(self, **unset) if unset else self


@dataclass
class EvalConfig:
    decoding: Literal["constrained", "free"] = field(
        default="constrained", metadata={"help": "constrained: always a valid label/score; free: generate + parse"}
    )
    batch_size: int = field(default=16, metadata={"help": "samples per evaluation batch"})
    main_metric: str = field(default="", metadata={"help": "metric selecting the best checkpoint on valid ('' = per task)"})
    plots: bool = field(default=True, metadata={"help": "write PNG plots (confusion matrix, scores, gate weights)"})

    def __post_init__(self):
        check_choices(self, "eval")
        if self.batch_size < 1:
            raise ConfigError(f"eval.batch_size: expected an integer >= 1, got {self.batch_size}")


@dataclass
class RunConfig:
    name: str = field(default="run", metadata={"help": "run name: the folder under output_dir"})
    output_dir: str = field(default="runs", metadata={"help": "where run folders are created"})
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self):
        if not self.data.datasets:
            raise ConfigError("data.datasets: expected at least one dataset entry {name, path}")
        # Resolved here, where the model is known, so the saved config.yaml holds the rates the run used.
        self.train = self.train.with_model_defaults(self.model.name)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML config (or start from defaults when ``path`` is None), apply overrides, validate."""
    data = read_yaml(path) if path else {"data": {"datasets": []}}
    apply_overrides(data, list(overrides))
    try:
        return from_dict(RunConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None


def save_config(cfg: RunConfig, path: str | Path) -> None:
    write_yaml(to_dict(cfg), path)


# Keys older versions wrote into a checkpoint's config.yaml that no longer exist: (section, key) -> why.
RETIRED_KEYS = {
    ("model", "decoding"): "it was never read (every caller passes eval.decoding, which stays)",
}


# Fields whose default changed since configs were first saved without them: (section, key) -> the value such a
# config was trained with (its run folders and checkpoints must keep meaning that, not today's default).
ABSENT_MEANS = {
    ("model", "fusion_head_weight"): 0.0,  # the fusion head was off until it became the default
}


def saved_config_from_dict(data: dict) -> RunConfig:
    """A config read back from a run folder or checkpoint: :func:`config_from_dict`, with each field of
    :data:`ABSENT_MEANS` it lacks at the value it was trained with."""
    if isinstance(data, dict):
        for (section, key), value in ABSENT_MEANS.items():
            part = data.get(section)
            if isinstance(part, dict) and key not in part:
                data = {**data, section: {**part, key: value}}
    return config_from_dict(data)


def config_from_dict(data: dict) -> RunConfig:
    """A saved config (a checkpoint's or run folder's ``config.yaml``) -> RunConfig.

    Keys that older versions wrote and this one retired (:data:`RETIRED_KEYS`) are dropped with a log note,
    so an old checkpoint still loads; any other unknown key is refused as usual.
    """
    for (section, key), why in RETIRED_KEYS.items():
        part = data.get(section) if isinstance(data, dict) else None
        if isinstance(part, dict) and key in part:
            data = {**data, section: {k: v for k, v in part.items() if k != key}}
            logger.info("config: ignoring %s.%s from an older version: %s", section, key, why)
    return from_dict(RunConfig, data)
