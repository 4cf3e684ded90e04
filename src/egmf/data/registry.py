"""Datasets register by name; :func:`load_dataset` is the one entry point the rest of EGMF calls.

The registry is a plain dict filled by an explicit call (:func:`register_builtin_datasets`), so importing
this module costs nothing and a user adds a dataset with one :func:`register_dataset` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from egmf.data.schema import BenchmarkData
from egmf.errors import ConfigError, DataFormatError

Loader = Callable[..., BenchmarkData]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its loader and a one-line description for ``--help`` and errors."""

    name: str
    loader: Loader
    description: str = ""


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, loader: Loader, description: str = "") -> None:
    if name in DATASETS and DATASETS[name].loader is not loader:
        raise ValueError(f"dataset {name!r} is already registered")
    DATASETS[name] = DatasetSpec(name, loader, description)


def register_builtin_datasets() -> None:
    """Fill the registry with the datasets that ship with EGMF (idempotent)."""
    from egmf.data import cherma, custom, meld, mmsa

    for module in (mmsa, meld, cherma, custom):
        module.register()


def dataset_names() -> list[str]:
    register_builtin_datasets()
    return sorted(DATASETS)


def load_dataset(name: str, path: str | Path, **options: Any) -> BenchmarkData:
    """Load dataset ``name`` from ``path``, which may also be a folder written by ``egmf data convert``."""
    from egmf.data import safe_format

    register_builtin_datasets()
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; valid choices: {', '.join(sorted(DATASETS))}")
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "path", "an existing file or folder")
    if safe_format.is_safe_dataset(path):
        return safe_format.read(path, expected_name=name)
    return DATASETS[name].loader(path, **options)
