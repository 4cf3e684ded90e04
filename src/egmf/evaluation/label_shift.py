"""Label shift: a classifier's class probabilities moved to the class prior of new data, estimated from that
data's unlabelled inputs by EM (Saerens, Latinne & Decaestecker 2002, "Adjusting the outputs of a classifier to
new a priori probabilities: a simple procedure", Neural Computation 14(1)).

Under label shift p(x | y) stays and p(y) changes, so the new posterior is the old one times the prior ratio,
renormalised; the new prior is the mean of the new posteriors, and iterating the two is EM on the likelihood of
the unlabelled inputs. No label of the new data is read. It is what a model trained on one label distribution
needs on data with another, e.g. a 3-way (neutral, positive, negative) English model on Chinese reviews that
are all positive or negative (``egmf.experiments.transfer``, ``label_prior="em"``).

The source prior is the one the model's probabilities are calibrated to: the mean of its probabilities on
inputs of its own data (:func:`mean_probabilities`), which also absorbs class weighting in training; with
it, data distributed as the source's gives back (nearly) the source prior and leaves the answers as they were.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from egmf.errors import ConfigError


@dataclasses.dataclass
class LabelShift:
    """What :func:`adapt_to_label_shift` found: the new data's estimated prior, the adapted probabilities (one row
    per input), the EM iterations taken and whether the prior stopped moving (within ``tol``)."""

    prior: np.ndarray
    probabilities: np.ndarray
    iterations: int
    converged: bool


def probability_matrix(rows: Sequence[dict[str, float] | None], labels: Sequence[str], what: str) -> np.ndarray:
    """Per-label probabilities (``Prediction.probabilities``) as an (n, len(labels)) matrix in ``labels``' order.
    ``what`` names the predictions in the error a missing or partial row gets."""
    out = np.zeros((len(rows), len(labels)))
    for i, row in enumerate(rows):
        if not row or any(lab not in row for lab in labels):
            have = "none" if not row else ", ".join(sorted(row))
            raise ConfigError(f"{what}: prediction {i} has probabilities for {have}; label-shift adaptation needs "
                              f"one per label ({', '.join(labels)}): score with constrained decoding")
        out[i] = [row[lab] for lab in labels]
    return _check_rows(out, what)


def mean_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """The prior a model answers with on some inputs: the mean of its probabilities over them."""
    p = _check_rows(np.asarray(probabilities, dtype=float), "probabilities")
    return p.mean(axis=0)


def reweight(probabilities: np.ndarray, source_prior: np.ndarray, target_prior: np.ndarray) -> np.ndarray:
    """Bayes' rule under label shift: each row times ``target_prior / source_prior``, renormalised."""
    p = _check_rows(np.asarray(probabilities, dtype=float), "probabilities")
    return _reweight(p, _check_prior(source_prior, p.shape[1], "source prior"),
                     _check_prior(target_prior, p.shape[1], "target prior", positive=False))


def _reweight(p: np.ndarray, src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """:func:`reweight` on checked arrays (the EM loop checks its input once, not every iteration)."""
    w = p * (tgt / src)
    total = w.sum(axis=1, keepdims=True)
    # A row whose every class got weight 0 (its mass sat on classes the new prior rules out) keeps its old answer.
    return np.where(total > 0, w / np.where(total > 0, total, 1.0), p)


def adapt_to_label_shift(probabilities: np.ndarray, source_prior: np.ndarray, max_iter: int = 10000,
                         tol: float = 1e-7) -> LabelShift:
    """EM for the prior of the inputs behind ``probabilities`` (n x classes, rows summing to 1, computed by a
    model whose probabilities follow ``source_prior``), started at the source prior; returns that prior with the
    probabilities re-weighted to it."""
    p = _check_rows(np.asarray(probabilities, dtype=float), "probabilities")
    if len(p) == 0:
        raise ConfigError("label shift: no probabilities to estimate a prior from (0 inputs)")
    src = _check_prior(source_prior, p.shape[1], "source prior")
    prior = src.copy()
    for iteration in range(1, max_iter + 1):
        new = _reweight(p, src, prior).mean(axis=0)
        moved = float(np.abs(new - prior).max())
        prior = new
        if moved < tol:
            return LabelShift(prior, _reweight(p, src, prior), iteration, True)
    return LabelShift(prior, _reweight(p, src, prior), max_iter, False)


def _check_rows(p: np.ndarray, what: str) -> np.ndarray:
    if p.ndim != 2 or p.shape[1] < 2:
        raise ConfigError(f"{what}: expected an (inputs x classes) matrix with at least 2 classes, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ConfigError(f"{what}: expected finite non-negative probabilities")
    sums = p.sum(axis=1)
    if len(p) and not np.allclose(sums, 1.0, atol=1e-3):
        i = int(np.argmax(np.abs(sums - 1.0)))
        raise ConfigError(f"{what}: row {i} sums to {sums[i]:.4f}; expected each row to sum to 1")
    return p


def _check_prior(prior, n: int, what: str, positive: bool = True) -> np.ndarray:
    q = np.asarray(prior, dtype=float)
    if q.shape != (n,):
        raise ConfigError(f"{what}: expected {n} class probabilities, got shape {q.shape}")
    if not np.isfinite(q).all() or (q <= 0 if positive else q < 0).any() or not np.isclose(q.sum(), 1.0, atol=1e-3):
        raise ConfigError(f"{what}: expected {'positive' if positive else 'non-negative'} values summing to 1, "
                          f"got {np.round(q, 4).tolist()}")
    return q
