"""Models register by name; :func:`build_model` is how the trainer and the CLI get one.

A plain dict filled by an explicit call (:func:`register_builtin_models`), as peft's mapping does: importing
this module loads no model code. ``egmf train --model NAME`` picks an entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from egmf.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from egmf.data.schema import DatasetInfo

Builder = Callable[..., "nn.Module"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Builder
    description: str = ""


MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, builder: Builder, description: str = "") -> None:
    if name in MODELS and MODELS[name].builder is not builder:
        raise ValueError(f"model {name!r} is already registered")
    MODELS[name] = ModelSpec(name, builder, description)


def register_builtin_models() -> None:
    """Fill the registry with the models that ship with EGMF (idempotent)."""
    from egmf.model import baselines, egmf

    egmf.register()
    baselines.register()


def model_names() -> list[str]:
    register_builtin_models()
    return sorted(MODELS)


def build_model(cfg, infos: "dict[str, DatasetInfo]", feature_dims: dict[str, dict[str, int]]) -> "nn.Module":
    """Build model ``cfg.name`` for the datasets described by ``infos`` and ``feature_dims``."""
    register_builtin_models()
    if cfg.name not in MODELS:
        raise ConfigError(f"model.name: unknown model {cfg.name!r}; valid choices: {', '.join(sorted(MODELS))}")
    return MODELS[cfg.name].builder(cfg, infos, feature_dims)
