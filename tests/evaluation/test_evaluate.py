"""The one evaluation path (egmf.evaluation.evaluate): predictions in the input order, scores per dataset,
the checkpoint-selection number, and the trivial baselines."""

from __future__ import annotations

import math

import pytest
import torch

from egmf.data.schema import DatasetInfo, Sample
from egmf.evaluation.evaluate import baseline_predictions, predict_samples, score, selection_score
from egmf.model.base import Prediction

ERC = DatasetInfo("e", "erc", "en", labels=("joy", "sad"), metric_family="erc")
MSA = DatasetInfo("m", "msa", "en", score_range=(-3.0, 3.0), metric_family="mosi")
INFOS = {"e": ERC, "m": MSA}


def erc(i, label):
    return Sample(f"e{i}", "x" * (i + 1), label, "e", "erc", "en")


def msa(i, label):
    return Sample(f"m{i}", "y" * (i + 1), label, "m", "msa", "en")


def pred(s, value):
    return Prediction(s.id, s.dataset, s.task, value)


def test_score_per_dataset_skips_unlabelled_samples():
    samples = [erc(0, "joy"), msa(0, 1.0), erc(1, "sad"), erc(2, None), msa(1, -1.0)]
    values = ["joy", 0.5, "joy", "sad", -1.5]
    out = score([pred(s, v) for s, v in zip(samples, values)], samples, INFOS)
    assert set(out) == {"e", "m"}
    assert out["e"]["accuracy"] == 0.5 and out["e"]["support"] == {"joy": 1, "sad": 1}  # e2 is unlabelled
    assert out["m"]["mae"] == pytest.approx(0.5) and out["m"]["acc2_non0"] == 1.0


def test_score_refuses_predictions_out_of_order():
    samples = [erc(0, "joy"), erc(1, "sad")]
    with pytest.raises(RuntimeError, match="prediction order broke: prediction 'e1' against sample 'e0'"):
        score([pred(samples[1], "sad"), pred(samples[0], "joy")], samples, INFOS)


def test_selection_score_is_the_mean_main_metric_with_mae_negated_and_nan_worst():
    metrics = {"e": {"weighted_f1": 0.8, "accuracy": 0.1}, "m": {"mae": 0.4}}
    assert selection_score(metrics, INFOS) == pytest.approx((0.8 - 0.4) / 2)
    assert selection_score({"e": {"weighted_f1": 0.8, "accuracy": 0.1}}, INFOS, override="accuracy") == pytest.approx(0.1)
    assert selection_score({"m": {"mae": float("nan")}}, INFOS) == -math.inf
    assert selection_score({"e": {"weighted_f1": float("nan")}}, INFOS) == -math.inf
    assert selection_score({}, INFOS) == -math.inf


def test_baseline_is_the_train_majority_label_or_mean_score():
    train = [erc(0, "sad"), erc(1, "joy"), erc(2, "sad"), erc(3, None), msa(0, 1.0), msa(1, 2.0)]
    samples = [erc(9, "joy"), msa(9, 0.0)]
    preds = baseline_predictions(train, samples, INFOS)
    assert [(p.id, p.prediction) for p in preds] == [("e9", "sad"), ("m9", 1.5)]
    only_erc = baseline_predictions(train[:3], samples, INFOS)  # no MSA labels in train: no MSA baseline
    assert [p.id for p in only_erc] == ["e9"]


class EchoModel(torch.nn.Module):
    """Predicts each sample's text length; records the batches it saw and the mode it was called in."""

    def __init__(self):
        super().__init__()
        self.batches, self.modes = [], []

    def prompt_length(self, sample):
        return len(sample.text)

    def predict(self, batch, decoding="constrained"):
        self.batches.append([s.id for s in batch.samples])
        self.modes.append((self.training, decoding))
        return [Prediction(s.id, s.dataset, s.task, float(len(s.text))) for s in batch.samples]


def test_predict_samples_batches_by_prompt_length_and_keeps_the_input_order():
    samples = [msa(4, 0.0), msa(0, 0.0), msa(2, 0.0), msa(1, 0.0), msa(3, 0.0)]
    model = EchoModel().train()
    preds = predict_samples(model, samples, batch_size=2, decoding="free")
    assert [p.id for p in preds] == [s.id for s in samples]
    assert [p.prediction for p in preds] == [5.0, 1.0, 3.0, 2.0, 4.0]
    assert model.batches == [["m0", "m1"], ["m2", "m3"], ["m4"]]  # shortest prompts first
    assert model.modes == [(False, "free")] * 3 and model.training  # eval while predicting, then restored
