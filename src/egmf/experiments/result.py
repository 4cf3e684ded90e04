"""What a run returns: its folder and, per seed, the metrics it wrote to ``seed_<s>/metrics.json``.

``egmf train``, the ablation and transfer runners and the benchmarks read a run through these accessors
instead of picking a nested dict apart. The metrics themselves stay the plain dict saved on disk
(``{"valid": {dataset: metrics}, "test": {...}, "training": {...}}``), so a finished seed read back from its
folder and one just trained are the same object.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egmf.evaluation.aggregate import aggregate_seeds


@dataclass(frozen=True)
class SeedResult:
    """One seed of a run: its ``metrics.json`` content."""

    seed: int
    metrics: dict[str, Any]

    @classmethod
    def read(cls, seed: int, path: Path) -> "SeedResult":
        return cls(seed, json.loads(Path(path).read_text(encoding="utf-8")))

    @property
    def test(self) -> dict[str, dict[str, Any]]:
        """Test metrics per dataset (with each dataset's ``baseline``)."""
        return self.metrics.get("test", {})

    @property
    def valid(self) -> dict[str, dict[str, Any]]:
        return self.metrics.get("valid", {})

    @property
    def scores(self) -> dict[str, dict[str, Any]]:
        """The metrics a run reports per dataset: test, or valid when the data has no test split."""
        return self.metrics.get("test", self.valid)

    @property
    def training(self) -> dict[str, Any]:
        """What ``fit`` reports: steps, best step, train seconds, ..."""
        return self.metrics.get("training", {})

    @property
    def train_seconds(self) -> float | None:
        value = self.training.get("train_seconds")
        return None if value is None else float(value)

    @property
    def steps(self) -> int:
        return int(self.training.get("steps", 0))

    def baseline(self, dataset: str) -> dict[str, Any]:
        """The train split's majority label scored on ``dataset``'s test split (``{}`` if absent)."""
        return self.test.get(dataset, {}).get("baseline", {})


@dataclass(frozen=True)
class RunResult:
    """A run: its folder and its seeds in training order.

    ``main_process`` is False in the other processes of a multi-process launch, which train but neither
    write the run's summary files nor print.
    """

    run_dir: Path
    seeds: dict[int, SeedResult]
    main_process: bool = True

    @property
    def datasets(self) -> list[str]:
        """Datasets scored by any seed, in order of appearance."""
        return list(dict.fromkeys(d for r in self.seeds.values() for d in r.scores))

    def scores_by_seed(self, dataset: str) -> dict[int, dict[str, Any]]:
        """``{seed: metrics}`` of ``dataset`` (test, else valid) for the seeds that scored it."""
        return {s: r.scores[dataset] for s, r in self.seeds.items() if dataset in r.scores}

    @property
    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{dataset: {metric: {"mean", "std"}}}`` over the seeds (population std, as MMSA)."""
        return {d: aggregate_seeds(list(self.scores_by_seed(d).values())) for d in self.datasets}

    @property
    def train_seconds(self) -> float:
        """Mean training seconds per seed (NaN when no seed reports it)."""
        values = [r.train_seconds for r in self.seeds.values() if r.train_seconds is not None]
        return sum(values) / len(values) if values else math.nan

    @property
    def steps(self) -> int:
        """The most optimiser steps any seed took."""
        return max((r.steps for r in self.seeds.values()), default=0)
