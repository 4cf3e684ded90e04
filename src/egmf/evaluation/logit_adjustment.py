"""Post-hoc logit adjustment: a trained classifier's answers re-chosen with the train split's class prior
divided out, by a strength chosen on the valid split (Menon et al. 2021, "Long-tail learning via logit
adjustment", ICLR).

A model trained on imbalanced labels (MELD is 47% ``neutral``, 3% ``fear``) answers the frequent classes more
often than they occur. Its adjusted answer is ``argmax_y log p(y|x) - tau * log pi_y`` with ``pi`` the train
split's label frequencies: ``tau = 0`` keeps the model's answers, ``tau = 1`` removes the train prior in full
(balanced error), values between trade the two. ``tau`` is the only thing fitted, on the valid split's main
metric (:func:`egmf.evaluation.metrics.main_metric`), then applied unchanged to the test split; no test label
is read. It needs the per-label probabilities constrained decoding (and every non-LLM model) writes; it leaves
sentiment scores (MSA) alone.

Unlike :mod:`egmf.evaluation.label_shift`, which moves answers to another dataset's class prior estimated
without labels, this corrects a model towards the metric on its own label distribution.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from egmf.data.schema import DatasetInfo, Sample
from egmf.errors import ConfigError, RunFolderExistsError
from egmf.evaluation.label_shift import probability_matrix
from egmf.evaluation.metrics import compute_metrics, is_improvement, main_metric
from egmf.model.base import Prediction

# The strengths tried on valid: 0 (the model as trained) to 1.5 in steps of 0.05; past 1 the prior is
# over-corrected, which weighted F1 rarely prefers, but the grid lets valid say so.
TAUS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(31))


@dataclasses.dataclass
class LogitAdjustment:
    """A fitted adjustment: the labels (the order of ``prior``), the train prior, the strength chosen and the
    valid split's main metric at every strength tried (``metric`` names it)."""

    labels: tuple[str, ...]
    prior: np.ndarray
    tau: float
    metric: str
    valid_curve: dict[float, float]

    def to_json(self) -> dict:
        return {"tau": self.tau, "metric": self.metric, "prior": dict(zip(self.labels, map(float, self.prior))),
                "valid_curve": {str(t): float(v) for t, v in self.valid_curve.items()}}


def train_prior(train_labels: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Label frequencies of the train split in ``labels``' order, add-one smoothed (a label train never shows
    keeps a finite log prior)."""
    counts = Counter(train_labels)
    smoothed = np.array([counts[lab] for lab in labels], dtype=float) + 1.0
    return smoothed / smoothed.sum()


def adjusted_scores(probabilities: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """``log p - tau * log prior`` per row (the scores the adjusted answer is the argmax of)."""
    return np.log(np.clip(probabilities, 1e-12, None)) - tau * np.log(prior)


def _answers(scores: np.ndarray, labels: Sequence[str], original: Sequence[str]) -> list[str]:
    """The argmax labels of ``scores`` (:func:`adjusted_scores`); where the model's own answer ties the maximum it
    stays, so ``tau = 0`` returns the model's answers exactly (first-token scoring can give two labels one
    probability)."""
    best = scores.max(axis=1)
    index = {lab: i for i, lab in enumerate(labels)}
    out = []
    for row, top, own in zip(scores, best, original):
        i = index.get(own)
        out.append(own if i is not None and row[i] >= top - 1e-12 else labels[int(np.argmax(row))])
    return out


def _matrix(preds: Sequence[Prediction], labels: Sequence[str], what: str) -> np.ndarray:
    # Probabilities from the constrained decoder sum to 1 over the labels only up to float rounding.
    rows = [p.probabilities for p in preds]
    matrix = probability_matrix(rows, labels, what)
    return matrix / matrix.sum(axis=1, keepdims=True)


def fit_logit_adjustment(valid: Sequence[Prediction], truths: Sequence[str], info: DatasetInfo,
                         train_labels: Sequence[str], taus: Sequence[float] = TAUS) -> LogitAdjustment:
    """The strength in ``taus`` whose adjusted valid answers score best on ``info``'s main metric; a tie goes to
    the smaller strength (the least change to the model)."""
    if info.task != "erc":
        raise ConfigError(f"logit adjustment: {info.name} is {info.task.upper()}; it adjusts label answers (ERC) only")
    if len(valid) != len(truths) or not valid:
        raise ConfigError(f"logit adjustment: {len(valid)} valid predictions for {len(truths)} valid labels of "
                          f"{info.name}; expected one prediction per labelled valid sample")
    if not taus or min(taus) < 0:
        raise ConfigError(f"logit adjustment: strengths must be a non-empty list of values >= 0, got {list(taus)}")
    labels = tuple(info.labels)
    prior = train_prior(train_labels, labels)
    probs = _matrix(valid, labels, f"logit adjustment: {info.name} valid")
    key, mode = main_metric(info)
    original = [str(p.prediction) for p in valid]
    curve, best_tau, best = {}, None, None
    for tau in sorted(float(t) for t in taus):
        answers = _answers(adjusted_scores(probs, prior, tau), labels, original)
        value = float(compute_metrics(info, answers, list(truths))[key])
        curve[tau] = value
        if is_improvement(value, best, mode):
            best_tau, best = tau, value
    return LogitAdjustment(labels, prior, best_tau if best_tau is not None else 0.0, key, curve)


def apply_logit_adjustment(preds: Sequence[Prediction], adjustment: LogitAdjustment, what: str) -> list[Prediction]:
    """``preds`` with answers re-chosen under ``adjustment`` and probabilities renormalised from the adjusted
    scores (``what`` names the predictions in the error a row without probabilities gets)."""
    labels = list(adjustment.labels)
    probs = _matrix(preds, labels, what)
    scores = adjusted_scores(probs, adjustment.prior, adjustment.tau)
    answers = _answers(scores, labels, [str(p.prediction) for p in preds])
    scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    scores /= scores.sum(axis=1, keepdims=True)
    return [dataclasses.replace(p, prediction=a, probabilities={lab: float(x) for lab, x in zip(labels, row)})
            for p, a, row in zip(preds, answers, scores)]


def adjust_run_predictions(run_dir: Path, infos: dict[str, DatasetInfo], splits: dict[str, list[Sample]],
                           out_dir: Path, taus: Sequence[float] = TAUS) -> dict:
    """Logit adjustment of a finished seed folder (``predictions_valid.jsonl`` and ``predictions_test.jsonl``, as
    ``egmf train`` writes them from its best checkpoint): per ERC dataset the strength is fitted on valid with
    ``splits["train"]``'s prior, then both splits are re-answered and scored. ``splits`` holds the run's labelled
    ``train``, ``valid`` and ``test`` samples. Writes ``metrics.json`` (the adjusted metrics beside those as
    trained, and each fitted adjustment) and the adjusted predictions into ``out_dir``, which must not exist;
    returns the metrics record. MSA datasets keep their answers."""
    from egmf.atomic import write_json_atomic
    from egmf.evaluation.evaluate import score
    from egmf.evaluation.report import read_predictions, write_predictions

    if out_dir.exists():
        raise RunFolderExistsError(f"{out_dir}: exists; choose another output folder (results are never overwritten)")
    preds: dict[str, list[Prediction]] = {}
    for split in ("valid", "test"):
        file = run_dir / f"predictions_{split}.jsonl"
        if not file.is_file():
            raise ConfigError(f"{file}: not found; logit adjustment reads a finished run's seed folder (the one "
                              "holding predictions_valid.jsonl and predictions_test.jsonl)")
        preds[split] = read_predictions(file)
    by_id = {split: {s.id: s for s in splits.get(split, []) if s.label is not None} for split in ("valid", "test")}
    for split, rows in preds.items():
        unknown = [p.id for p in rows if p.id not in by_id[split]]
        if unknown:
            raise ConfigError(f"{run_dir / f'predictions_{split}.jsonl'}: prediction id {unknown[0]!r} is not a "
                              f"labelled {split} sample of the run's data ({len(unknown)} such); expected the data "
                              "the run was trained with")
    record: dict = {"logit_adjustment": {}, "as_trained": {}, "valid": {}, "test": {}}
    adjusted = {split: list(rows) for split, rows in preds.items()}
    for name, info in infos.items():
        if info.task != "erc":
            continue
        valid = [p for p in preds["valid"] if p.dataset == name]
        if not valid:
            continue
        train_labels = [str(s.label) for s in splits.get("train", []) if s.dataset == name and s.label is not None]
        if not train_labels:
            raise ConfigError(f"logit adjustment: {name} has no labelled train samples to take its class prior from")
        fitted = fit_logit_adjustment(valid, [by_id["valid"][p.id].label for p in valid], info, train_labels, taus)
        record["logit_adjustment"][name] = fitted.to_json()
        for split, rows in adjusted.items():
            mine = [i for i, p in enumerate(rows) if p.dataset == name]
            new = apply_logit_adjustment([rows[i] for i in mine], fitted, f"{run_dir} {split} {name}")
            for i, p in zip(mine, new):
                rows[i] = p
    out_dir.mkdir(parents=True)
    for split in ("valid", "test"):
        samples = [by_id[split][p.id] for p in preds[split]]
        record["as_trained"][split] = score(preds[split], samples, infos)
        record[split] = score(adjusted[split], samples, infos)
        write_predictions(adjusted[split], out_dir / f"predictions_{split}.jsonl")
    write_json_atomic(out_dir / "metrics.json", record, default=float)
    return record
