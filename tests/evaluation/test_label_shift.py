"""``egmf.evaluation.label_shift``: EM recovers a known class prior from exact posteriors, leaves source-distributed
data alone, re-weights by Bayes' rule, and refuses malformed probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from egmf.errors import ConfigError
from egmf.evaluation.label_shift import (adapt_to_label_shift, mean_probabilities, probability_matrix, reweight)

MEANS = np.array([-2.0, 0.0, 2.0])  # three classes, unit-variance Gaussians on a line


def _posteriors(x: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """The exact p(y | x) of the Gaussian classes under ``prior``: what a perfectly calibrated model outputs."""
    lik = np.exp(-0.5 * (x[:, None] - MEANS[None, :]) ** 2) * prior
    return lik / lik.sum(axis=1, keepdims=True)


def _draw(prior, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(len(MEANS), size=n, p=prior)
    return MEANS[y] + rng.standard_normal(n), y


SOURCE = np.array([0.5, 0.3, 0.2])


@pytest.mark.parametrize("target", [[0.1, 0.1, 0.8], [0.0, 0.5, 0.5], [0.6, 0.3, 0.1]])
def test_em_recovers_the_prior_of_shifted_data(target):
    x, y = _draw(np.array(target), 20000, seed=3)
    shift = adapt_to_label_shift(_posteriors(x, SOURCE), SOURCE)
    assert shift.converged
    assert np.allclose(shift.prior, target, atol=0.03)
    # The adapted posteriors are the exact posteriors under the true target prior, up to the prior's error.
    assert np.abs(shift.probabilities - _posteriors(x, shift.prior)).max() < 1e-6
    before = (_posteriors(x, SOURCE).argmax(1) == y).mean()
    assert (shift.probabilities.argmax(1) == y).mean() >= before


def test_adapting_to_a_prior_with_an_absent_class_raises_accuracy():
    """The transfer's case: a 3-way model on data without the middle class (a 'neutral' on binary reviews)."""
    x, y = _draw(np.array([0.5, 0.0, 0.5]), 5000, seed=4)
    p = _posteriors(x, SOURCE)
    shift = adapt_to_label_shift(p, SOURCE)
    assert shift.prior[1] < 0.02
    assert (shift.probabilities.argmax(1) == 1).mean() < (p.argmax(1) == 1).mean() / 5
    assert (shift.probabilities.argmax(1) == y).mean() > (p.argmax(1) == y).mean() + 0.05


def test_data_distributed_as_the_source_keeps_its_prior_and_answers():
    x, _ = _draw(SOURCE, 20000, seed=5)
    p = _posteriors(x, SOURCE)
    shift = adapt_to_label_shift(p, mean_probabilities(p))
    assert shift.converged and shift.iterations == 1
    assert np.array_equal(shift.probabilities.argmax(1), p.argmax(1))


def test_reweight_is_bayes_rule():
    p = np.array([[0.5, 0.5], [0.2, 0.8]])
    out = reweight(p, np.array([0.5, 0.5]), np.array([0.9, 0.1]))
    assert out[0] == pytest.approx([0.9, 0.1])
    assert out[1] == pytest.approx([0.18 / 0.26, 0.08 / 0.26])
    # A row whose every probable class is ruled out keeps its answer rather than becoming 0/0.
    assert reweight(np.array([[0.0, 1.0]]), np.array([0.5, 0.5]), np.array([1.0, 0.0]))[0] == pytest.approx([0, 1])


def test_probability_matrix_orders_columns_by_label():
    rows = [{"neutral": 0.2, "positive": 0.5, "negative": 0.3}, {"negative": 1.0, "positive": 0.0, "neutral": 0.0}]
    assert probability_matrix(rows, ["positive", "negative", "neutral"], "x").tolist() == [[0.5, 0.3, 0.2],
                                                                                         [0.0, 1.0, 0.0]]


@pytest.mark.parametrize("call, match", [
    (lambda: probability_matrix([None], ["a", "b"], "run/seed_1"),
     r"run/seed_1: prediction 0 has probabilities for none; .* one per label \(a, b\): score with constrained"),
    (lambda: probability_matrix([{"a": 1.0}], ["a", "b"], "x"), r"prediction 0 has probabilities for a;"),
    (lambda: adapt_to_label_shift(np.array([[0.5, 0.6]]), np.array([0.5, 0.5])), r"row 0 sums to 1.1000"),
    (lambda: adapt_to_label_shift(np.array([[0.5, 0.5]]), np.array([0.5, 0.3, 0.2])),
     r"source prior: expected 2 class probabilities, got shape \(3,\)"),
    (lambda: adapt_to_label_shift(np.array([[0.5, 0.5]]), np.array([1.0, 0.0])),
     r"source prior: expected positive values summing to 1"),
    (lambda: adapt_to_label_shift(np.zeros((0, 2)), np.array([0.5, 0.5])), r"0 inputs"),
    (lambda: adapt_to_label_shift(np.array([0.5, 0.5]), np.array([0.5, 0.5])), r"\(inputs x classes\) matrix"),
    (lambda: mean_probabilities(np.array([[np.nan, 1.0]])), r"finite non-negative"),
])
def test_malformed_input_is_refused(call, match):
    with pytest.raises(ConfigError, match=match):
        call()
