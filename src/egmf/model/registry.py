"""Models register by name; :func:`build_model` is how the trainer and the CLI get one.

A plain dict filled by an explicit call (:func:`register_builtin_models`), as peft's mapping does: importing
this module loads no model code. ``egmf train --model NAME`` picks an entry.

Each entry carries the model's own optimisation defaults (:class:`TrainDefaults`): a non-LLM baseline that
finishes an epoch in seconds wants other rates than the LoRA-adapted LLM. A run config's ``train.lr_lora``,
``lr_fusion``, ``weight_decay`` and ``warmup_ratio`` left unset (null) take them
(:func:`egmf.config.RunConfig` fills them in when it is built, so the saved config holds the values used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Callable

from egmf.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from egmf.data.schema import DatasetInfo

Builder = Callable[..., "nn.Module"]


@dataclass(frozen=True)
class TrainDefaults:
    """A model's defaults for the ``train`` fields of the same names (what a config leaves null gets these).

    The defaults of the class itself are EGMF's; each model registers its own where they differ."""

    lr_lora: float = 2e-4
    lr_fusion: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"TrainDefaults.{f.name}: expected a finite number >= 0, got {v!r}")
        if self.lr_lora <= 0 or self.lr_fusion <= 0 or not self.warmup_ratio < 1:
            raise ConfigError(f"TrainDefaults: expected positive learning rates and warmup_ratio < 1, got {self}")

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Builder
    description: str = ""
    train_defaults: TrainDefaults = field(default_factory=TrainDefaults)


MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, builder: Builder, description: str = "",
                   train_defaults: TrainDefaults | None = None) -> None:
    if name in MODELS and MODELS[name].builder is not builder:
        raise ValueError(f"model {name!r} is already registered")
    MODELS[name] = ModelSpec(name, builder, description, train_defaults or TrainDefaults())


def register_builtin_models() -> None:
    """Fill the registry with the models that ship with EGMF (idempotent)."""
    from egmf.model import baselines, egmf

    egmf.register()
    baselines.register()


def model_names() -> list[str]:
    register_builtin_models()
    return sorted(MODELS)


def model_spec(name: str) -> ModelSpec:
    """The registry entry of model ``name``; an unknown name is refused with the valid choices."""
    register_builtin_models()
    if name not in MODELS:
        raise ConfigError(f"model.name: unknown model {name!r}; valid choices: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def train_defaults(name: str) -> TrainDefaults:
    """Model ``name``'s own optimisation defaults (:class:`TrainDefaults`)."""
    return model_spec(name).train_defaults


def build_model(cfg, infos: "dict[str, DatasetInfo]", feature_dims: dict[str, dict[str, int]]) -> "nn.Module":
    """Build model ``cfg.name`` for the datasets described by ``infos`` and ``feature_dims``."""
    return model_spec(cfg.name).builder(cfg, infos, feature_dims)
