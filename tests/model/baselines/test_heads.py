"""``BaselineModel`` and its task heads (egmf.model.baselines.heads), through both baselines (late fusion,
MulT) on ERC, MSA and mixed batches: shapes, learning, padding, masks, losses, save/load."""

from __future__ import annotations

import pytest
import torch

from egmf.data.collate import collate
from egmf.errors import ConfigError, DataFormatError
from egmf.model.base import ModelOutput, Prediction, TaskModel
from egmf.model.class_weights import class_weights

from .conftest import CASES, DIMS, ERC, MODELS_UNDER_TEST, SETS, build, make_samples, small_cfg


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, one thread


@pytest.mark.parametrize("model_name,set_name", CASES)
def test_forward_and_predict_shapes(model_name, set_name):
    model, infos = build(model_name, set_name)
    batch = collate(make_samples(infos.values(), n_per=3))
    assert isinstance(model, TaskModel)
    out = model(batch)
    assert isinstance(out, ModelOutput) and out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.task_loss is out.loss and out.gates == {}
    assert model.encode(batch).shape == (len(batch), 16)
    preds = model.predict(batch, "free")
    assert [p.id for p in preds] == [s.id for s in batch.samples]
    for p, s in zip(preds, batch.samples):
        assert isinstance(p, Prediction) and p.dataset == s.dataset and p.task == s.task
        info = infos[s.dataset]
        if info.task == "erc":
            assert p.prediction in info.labels and set(p.probabilities) == set(info.labels)
            assert abs(sum(p.probabilities.values()) - 1) < 1e-5
            assert p.prediction == max(p.probabilities, key=p.probabilities.get)
        else:
            assert isinstance(p.prediction, float) and p.score == p.prediction
            assert info.score_range[0] <= p.score <= info.score_range[1]
    assert set(model.param_groups()) == {"fusion"}
    assert sum(p.numel() for p in model.param_groups()["fusion"]) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("model_name,set_name", CASES)
def test_loss_decreases_with_adam(model_name, set_name):
    model, infos = build(model_name, set_name, dropout=0.0)
    batch = collate(make_samples(infos.values(), n_per=6))
    opt = torch.optim.Adam(model.param_groups()["fusion"], lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # Fitted classes go to ~0; MulT's MSA fit is the slowest (about 0.57 x the first loss after 30 steps).
    assert losses[-1] < 0.7 * losses[0], losses


# MulT under both of its ways to a vector; late fusion always takes the mean.
POOLED_CASES = [(m, s, pool) for m, s in CASES for pool in (("mean", "last") if m == "mult" else ("mean",))]


@pytest.mark.parametrize("max_frames", [None, 4])
@pytest.mark.parametrize("model_name,set_name,pooling", POOLED_CASES)
def test_padding_never_changes_a_sample_output(model_name, set_name, pooling, max_frames):
    model, infos = build(model_name, set_name, max_frames=max_frames, pooling=pooling)
    model.eval()
    samples = make_samples(infos.values(), n_per=3, seed=1)
    alone = torch.cat([model.encode(collate([s])) for s in samples])
    together = model.encode(collate(samples))
    # A long companion forces more padding on every other sample.
    long = make_samples(infos.values(), n_per=1, seed=2, lengths=(30, 30))
    padded = model.encode(collate(samples + long))[: len(samples)]
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_name,set_name", CASES)
def test_missing_modality_is_a_mask(model_name, set_name):
    model, infos = build(model_name, set_name)
    model.eval()
    samples = make_samples(infos.values(), n_per=2)
    full = model.encode(collate(samples))
    samples[0].audio = None  # one modality gone
    for m in ("text", "audio", "vision"):  # and every modality gone from another sample
        setattr(samples[1], "text_feats" if m == "text" else m, None)
    out = model(collate(samples))
    assert torch.isfinite(out.loss)
    enc = model.encode(collate(samples))
    assert torch.isfinite(enc).all()
    assert not torch.allclose(enc[0], full[0])  # the flag and the zeros do change that sample
    torch.testing.assert_close(enc[2:], full[2:], atol=1e-5, rtol=0)  # and nobody else
    assert len(model.predict(collate(samples))) == len(samples)


@pytest.mark.parametrize("model_name,set_name", CASES)
def test_state_dict_round_trip_reproduces_outputs(model_name, set_name):
    model, infos = build(model_name, set_name)
    batch = collate(make_samples(infos.values(), n_per=3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):  # move away from the initialisation so the copy is not trivially equal
        opt.zero_grad()
        model(batch).loss.backward()
        opt.step()
    state = model.trainable_state_dict()
    torch.manual_seed(123)
    fresh = MODELS_UNDER_TEST[model_name](model.cfg, infos, {n: DIMS[n] for n in infos})
    assert not torch.equal(fresh.eval().encode(batch), model.eval().encode(batch))
    fresh.load_trainable_state_dict(state)
    assert torch.equal(fresh.encode(batch), model.encode(batch))
    assert [p.to_json() for p in fresh.predict(batch)] == [p.to_json() for p in model.predict(batch)]


def test_predict_restores_training_mode_and_is_deterministic():
    model, infos = build("mult", "mixed", dropout=0.5)
    batch = collate(make_samples(infos.values(), n_per=2))
    model.train()
    a = [p.to_json() for p in model.predict(batch)]
    assert model.training
    assert a == [p.to_json() for p in model.predict(batch)]


@pytest.mark.parametrize("loss", ["l1", "mse"])
def test_regression_loss_matches_definition(loss):
    model, infos = build("late_fusion", "msa", regression_loss=loss)
    batch = collate(make_samples(infos.values(), n_per=4))
    model.eval()
    scores = model.heads.outputs(model.encode(batch), "msa.b")
    y = torch.tensor([s.label for s in batch.samples])
    want = (scores - y).abs().mean() if loss == "l1" else ((scores - y) ** 2).mean()
    torch.testing.assert_close(model(batch).loss, want)


def test_erc_loss_is_cross_entropy_over_own_labels():
    model, infos = build("late_fusion", "mixed")
    model.eval()
    samples = make_samples(infos.values(), n_per=3)
    batch = collate(samples)
    h = model.encode(batch)
    erc_rows = [i for i, s in enumerate(samples) if s.dataset == "erc_a"]
    msa_rows = [i for i, s in enumerate(samples) if s.dataset == "msa.b"]
    ce = torch.nn.functional.cross_entropy(
        model.heads.outputs(h[erc_rows], "erc_a"),
        torch.tensor([ERC.labels.index(samples[i].label) for i in erc_rows]), reduction="sum")
    l1 = (model.heads.outputs(h[msa_rows], "msa.b") - torch.tensor([samples[i].label for i in msa_rows])).abs().sum()
    torch.testing.assert_close(model(batch).loss, (ce + l1) / len(samples))


@pytest.mark.parametrize("model_name", MODELS_UNDER_TEST)
@pytest.mark.parametrize("mode", ["none", "balanced", "sqrt"])
def test_class_weights_scale_each_erc_sample_and_leave_msa_at_one(model_name, mode):
    torch.manual_seed(0)
    infos = {i.name: i for i in SETS["mixed"]}
    model = MODELS_UNDER_TEST[model_name](small_cfg(), infos, {n: DIMS[n] for n in infos}, class_weighting=mode)
    samples = make_samples(infos.values(), n_per=3)
    erc_train = make_samples([ERC], n_per=9)  # 3 of each label ...
    for s in erc_train[:4]:
        s.label = "neutral"  # ... made 5 neutral, 2 joy, 2 anger
    model.fit_class_weights(erc_train + [s for s in samples if s.dataset == "msa.b"])
    w = class_weights({"neutral": 5, "joy": 2, "anger": 2}, ERC.labels, mode)
    assert model.class_weights == ({} if mode == "none" else {"erc_a": pytest.approx(w)})
    if mode != "none":
        assert w["neutral"] < 1 < w["joy"] == pytest.approx(w["anger"])
    model.eval()
    batch = collate(samples)
    h = model.encode(batch)
    erc = [i for i, s in enumerate(samples) if s.dataset == "erc_a"]
    msa = [i for i, s in enumerate(samples) if s.dataset == "msa.b"]
    ce = torch.nn.functional.cross_entropy(model.heads.outputs(h[erc], "erc_a"),
                                           torch.tensor([ERC.labels.index(samples[i].label) for i in erc]),
                                           reduction="none")
    by_hand = (ce * torch.tensor([w[samples[i].label] for i in erc])).sum()
    l1 = (model.heads.outputs(h[msa], "msa.b") - torch.tensor([samples[i].label for i in msa])).abs().sum()
    torch.testing.assert_close(model(batch).loss, (by_hand + l1) / len(samples))


def test_unknown_class_weighting_is_refused():
    infos = {ERC.name: ERC}
    with pytest.raises(ConfigError, match="model.class_weighting: got 'inverse'; valid choices: none, balanced, sqrt"):
        MODELS_UNDER_TEST["late_fusion"](small_cfg(), infos, {ERC.name: DIMS[ERC.name]}, class_weighting="inverse")


def test_unlabelled_samples_are_skipped_and_an_all_unlabelled_batch_is_refused():
    model, infos = build("late_fusion", "erc")
    samples = make_samples(infos.values(), n_per=3)
    labelled = model.eval()(collate(samples[:1])).loss
    samples[1].label = samples[2].label = None
    torch.testing.assert_close(model(collate(samples)).loss, labelled)
    with pytest.raises(DataFormatError, match="at least one labelled sample"):
        model(collate(samples[1:]))


def test_checkpoint_from_other_datasets_is_refused():
    model, _ = build("late_fusion", "erc")
    other, _ = build("late_fusion", "mixed")
    with pytest.raises(ConfigError, match="checkpoint does not match this model"):
        model.load_trainable_state_dict(other.trainable_state_dict())
