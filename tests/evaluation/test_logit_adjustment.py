"""``egmf.evaluation.logit_adjustment``: with the train prior divided out in full a calibrated model gives the
class-balanced Bayes answer; the strength chosen on valid follows the valid label distribution; tau 0 keeps the
model's answers exactly; a run folder is adjusted into a new folder, never over an old one; bad input is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from egmf.data.schema import DatasetInfo, Sample
from egmf.errors import ConfigError, RunFolderExistsError
from egmf.evaluation.logit_adjustment import (LogitAdjustment, adjust_run_predictions, apply_logit_adjustment,
                                              fit_logit_adjustment, train_prior)
from egmf.evaluation.report import write_predictions
from egmf.model.base import Prediction

MEANS = np.array([-2.0, 0.0, 2.0])  # three classes, unit-variance Gaussians on a line
LABELS = ("a", "b", "c")
INFO = DatasetInfo("d", "erc", "en", labels=LABELS, metric_family="erc")
TRAIN = np.array([0.8, 0.15, 0.05])  # the imbalanced prior the model was trained under


def _likelihood(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * (x[:, None] - MEANS[None, :]) ** 2)


def _draw(prior, n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    y = rng.choice(len(MEANS), size=n, p=prior)
    return MEANS[y] + rng.standard_normal(n), [LABELS[i] for i in y]


def _predictions(x: np.ndarray, prefix: str = "") -> list[Prediction]:
    """What a perfectly calibrated model trained under TRAIN answers: the exact posteriors and their argmax."""
    post = _likelihood(x) * TRAIN
    post /= post.sum(axis=1, keepdims=True)
    return [Prediction(f"{prefix}{i}", "d", "erc", LABELS[int(row.argmax())], dict(zip(LABELS, map(float, row))))
            for i, row in enumerate(post)]


def test_full_strength_gives_the_class_balanced_bayes_answer():
    x, _ = _draw([1 / 3] * 3, 500, seed=0)
    adjusted = apply_logit_adjustment(_predictions(x), LogitAdjustment(LABELS, TRAIN, 1.0, "weighted_f1", {}), "x")
    assert [p.prediction for p in adjusted] == [LABELS[i] for i in _likelihood(x).argmax(axis=1)]
    for p in adjusted:  # renormalised from the adjusted scores, the answer on top
        assert abs(sum(p.probabilities.values()) - 1) < 1e-9
        assert p.probabilities[p.prediction] == max(p.probabilities.values())


@pytest.mark.parametrize("valid_prior, low, high", [([1 / 3] * 3, 0.8, 1.2), (TRAIN, 0.0, 0.5)])
def test_the_strength_chosen_on_valid_follows_the_valid_label_distribution(valid_prior, low, high):
    train_labels = _draw(TRAIN, 5000, seed=1)[1]
    x, y = _draw(valid_prior, 3000, seed=2)
    fitted = fit_logit_adjustment(_predictions(x), y, INFO, train_labels)
    assert low <= fitted.tau <= high
    assert fitted.metric == "weighted_f1" and fitted.valid_curve[fitted.tau] == max(fitted.valid_curve.values())
    assert fitted.valid_curve[fitted.tau] >= fitted.valid_curve[0.0]
    if valid_prior is not TRAIN:  # balanced data: dividing the prior out is worth a lot
        assert fitted.valid_curve[fitted.tau] > fitted.valid_curve[0.0] + 0.05


def test_tau_zero_keeps_every_answer_even_a_tied_one():
    # First-token scoring can give two labels one probability; the model's own choice among them stays.
    preds = [Prediction("0", "d", "erc", "b", {"a": 0.4, "b": 0.4, "c": 0.2}),
             Prediction("1", "d", "erc", "c", {"a": 0.1, "b": 0.2, "c": 0.7})]
    same = apply_logit_adjustment(preds, LogitAdjustment(LABELS, TRAIN, 0.0, "weighted_f1", {}), "x")
    assert [p.prediction for p in same] == ["b", "c"]
    # When no strength changes the score, the least change (tau 0) is chosen.
    fitted = fit_logit_adjustment(preds, ["b", "c"], INFO, ["a", "b", "c"], taus=(0.5, 0.0, 1.0))
    assert fitted.tau == 0.0 and list(fitted.valid_curve) == [0.0, 0.5, 1.0]


def test_train_prior_is_add_one_smoothed():
    assert np.allclose(train_prior(["a", "a", "b"], LABELS), [3 / 6, 2 / 6, 1 / 6])


def test_bad_input_is_refused_with_what_was_expected():
    preds = [Prediction("0", "d", "erc", "a", {"a": 0.5, "b": 0.5})]
    with pytest.raises(ConfigError, match="has probabilities for a, b; .* one per label"):
        fit_logit_adjustment(preds, ["a"], INFO, ["a"])
    with pytest.raises(ConfigError, match="1 valid predictions for 2 valid labels"):
        fit_logit_adjustment(preds, ["a", "b"], INFO, ["a"])
    msa = DatasetInfo("m", "msa", "en", score_range=(-3.0, 3.0), metric_family="mosi")
    with pytest.raises(ConfigError, match="m is MSA; it adjusts label answers"):
        fit_logit_adjustment(preds, ["a"], msa, ["a"])
    full = [Prediction("0", "d", "erc", "a", {"a": 0.5, "b": 0.3, "c": 0.2})]
    with pytest.raises(ConfigError, match="values >= 0"):
        fit_logit_adjustment(full, ["a"], INFO, ["a"], taus=(-1.0,))


def _samples(x_y, split: str) -> list[Sample]:
    return [Sample(id=f"{split}{i}", dataset="d", task="erc", lang="en", text="t", label=y)
            for i, y in enumerate(x_y[1])]


def test_a_run_folder_is_adjusted_into_a_new_folder(tmp_path):
    run = tmp_path / "seed_1111"
    run.mkdir()
    train, valid, test = _draw(TRAIN, 2000, 3), _draw([1 / 3] * 3, 600, 4), _draw([1 / 3] * 3, 600, 5)
    write_predictions(_predictions(valid[0], "valid"), run / "predictions_valid.jsonl")
    write_predictions(_predictions(test[0], "test"), run / "predictions_test.jsonl")
    splits = {"train": _samples(train, "train"), "valid": _samples(valid, "valid"), "test": _samples(test, "test")}
    record = adjust_run_predictions(run, {"d": INFO}, splits, run / "evaluations" / "adjusted")
    assert 0.8 <= record["logit_adjustment"]["d"]["tau"] <= 1.2
    assert record["test"]["d"]["weighted_f1"] > record["as_trained"]["test"]["d"]["weighted_f1"] + 0.05
    saved = json.loads((run / "evaluations" / "adjusted" / "metrics.json").read_text(encoding="utf-8"))
    assert saved["test"]["d"]["weighted_f1"] == pytest.approx(record["test"]["d"]["weighted_f1"])
    rows = (run / "evaluations" / "adjusted" / "predictions_test.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 600
    # The run's own predictions are untouched, and an existing output folder is never written over.
    assert (run / "predictions_test.jsonl").read_text(encoding="utf-8").count("\n") == 600
    with pytest.raises(RunFolderExistsError, match="never overwritten"):
        adjust_run_predictions(run, {"d": INFO}, splits, run / "evaluations" / "adjusted")
    with pytest.raises(ConfigError, match="prediction id 'valid0' is not a labelled valid sample"):
        adjust_run_predictions(run, {"d": INFO}, {**splits, "valid": splits["test"]}, tmp_path / "other")
    with pytest.raises(ConfigError, match="predictions_valid.jsonl: not found"):
        adjust_run_predictions(tmp_path, {"d": INFO}, splits, tmp_path / "third")
