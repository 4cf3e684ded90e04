"""``egmf.experiments.result``: the typed run result's accessors, computed from per-seed metrics written out here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from egmf.experiments.result import RunResult, SeedResult


def seed(s: int, f1: float, seconds: float | None, steps: int, split: str = "test") -> SeedResult:
    training = {"steps": steps} | ({} if seconds is None else {"train_seconds": seconds})
    scores = {"meld": {"weighted_f1": f1, "accuracy": 0.5, "baseline": {"weighted_f1": 0.3}}}
    return SeedResult(s, {split: scores, "training": training})


def test_summary_is_mean_and_population_std_per_dataset():
    result = RunResult(Path("r"), {1: seed(1, 0.4, 10.0, 5), 2: seed(2, 0.6, 20.0, 7)})
    assert result.datasets == ["meld"]
    assert result.summary["meld"]["weighted_f1"]["mean"] == pytest.approx(0.5)
    assert result.summary["meld"]["weighted_f1"]["std"] == pytest.approx(0.1)  # np.std of (0.4, 0.6)
    assert result.train_seconds == pytest.approx(15.0) and result.steps == 7
    assert result.scores_by_seed("meld")[2]["weighted_f1"] == 0.6
    assert result.seeds[1].baseline("meld") == {"weighted_f1": 0.3} and result.seeds[1].baseline("mosei") == {}


def test_a_run_without_a_test_split_reports_valid_and_missing_times_are_nan():
    result = RunResult(Path("r"), {1: seed(1, 0.4, None, 3, split="valid")})
    assert result.seeds[1].test == {} and result.seeds[1].scores == result.seeds[1].valid
    assert result.summary["meld"]["weighted_f1"]["mean"] == pytest.approx(0.4)
    assert math.isnan(result.train_seconds) and result.seeds[1].train_seconds is None


def test_a_seed_reads_back_its_metrics_json(tmp_path):
    metrics = {"test": {"meld": {"weighted_f1": 0.25}}, "training": {"steps": 4, "train_seconds": 1.5}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    back = SeedResult.read(1111, tmp_path / "metrics.json")
    assert back == SeedResult(1111, metrics) and back.steps == 4 and back.train_seconds == 1.5
