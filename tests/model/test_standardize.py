"""Input standardisation (egmf.model.standardize): the buffers, fitting, and that every model becomes blind
to the scale and offset of a feature dimension once it is fitted on the train split.

Run: .venv/bin/python -m pytest tests/model/test_standardize.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egmf.data.collate import collate
from egmf.data.schema import DatasetInfo, Sample
from egmf.errors import ConfigError
from egmf.model.baselines import BaselineConfig, LateFusionMLP, MulT
from egmf.model.fusion import ExpertFusion
from egmf.model.standardize import FeatureStandardizer, fit_input_statistics
from egmf.training.data import feature_statistics

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, one thread

INFO = DatasetInfo("erc_a", "erc", "en", labels=("neutral", "joy", "anger"), metric_family="erc")
DIMS = {"erc_a": {"text": 0, "audio": 6, "vision": 5, "pooled:egemaps": 4}}


# --- the module ----------------------------------------------------------------------------------------


def test_an_unfitted_standardizer_is_the_identity_and_its_buffers_are_state():
    st = FeatureStandardizer({"a": {"audio": 3, "vision": 0}, "b.c": {"audio": 2, "pooled:x": 4}})
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(st(x, "a", "audio"), x)
    assert set(st.state_dict()) == {
        "mean__a__audio", "std__a__audio", "mean__b_c__audio", "std__b_c__audio",
        "mean__b_c__pooled_x", "std__b_c__pooled_x",
    }  # no entry for a dim-0 modality; names safe for a state dict
    with pytest.raises(ConfigError, match="no statistics slot for dataset 'a', 'vision'"):
        st(x, "a", "vision")


def test_fit_installs_mean_and_std_and_treats_constant_dims_as_unit_std():
    st = FeatureStandardizer({"a": {"audio": 3, "text": 2}})
    fitted = st.fit({"a": {"audio": (np.array([1.0, -2.0, 5.0]), np.array([2.0, 0.5, 0.0]))}})
    assert fitted == [("a", "audio")]
    x = torch.tensor([[[3.0, -1.0, 5.0]]])
    # (3-1)/2, (-1+2)/0.5, and the constant third dim only centred (std 0 -> 1)
    torch.testing.assert_close(st(x, "a", "audio"), torch.tensor([[[1.0, 2.0, 0.0]]]))
    # a near-constant dim (std at float rounding size of a large mean) is constant too
    st.fit({"a": {"audio": (np.array([2767.0, 0.0, 0.0]), np.array([1e-9, 1e-3, 1.0]))}})
    assert st.std__a__audio.tolist() == pytest.approx([1.0, 1e-3, 1.0])
    # an entry the statistics lack is reset to the identity
    st.fit({"a": {"text": (np.array([1.0, 1.0]), np.array([2.0, 2.0]))}})
    assert st.mean__a__audio.abs().sum() == 0 and torch.all(st.std__a__audio == 1)


def test_fit_refuses_statistics_of_another_width():
    st = FeatureStandardizer({"a": {"audio": 3}})
    with pytest.raises(ConfigError, match="dataset 'a', 'audio': expected 3 dims .*got mean 4"):
        st.fit({"a": {"audio": (np.zeros(4), np.ones(4))}})


def test_fit_input_statistics_finds_every_standardizer_or_defers_to_the_model():
    model = torch.nn.ModuleDict({"x": FeatureStandardizer({"a": {"audio": 2}}),
                                 "y": FeatureStandardizer({"a": {"audio": 2}})})
    stats = {"a": {"audio": (np.array([1.0, 2.0]), np.array([3.0, 4.0]))}}
    assert fit_input_statistics(model, stats) == 2
    for m in model.values():
        assert m.mean__a__audio.tolist() == [1.0, 2.0] and m.std__a__audio.tolist() == [3.0, 4.0]

    class Own(torch.nn.Module):
        seen = None

        def fit_input_statistics(self, s):
            self.seen = s

    own = Own()
    assert fit_input_statistics(own, stats) == 1 and own.seen is stats


# --- scale invariance of every model -------------------------------------------------------------------


def make_samples(n: int, seed: int, scale: float = 1.0, offset: float = 0.0) -> list[Sample]:
    """ERC samples whose audio dim 0 carries the label at scale ``scale`` (+ ``offset``); the other dims are
    small noise, and the pooled set repeats the signal, so a model that reads dim 0 well can learn."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c = i % 3
        t = 2 + i % 5
        audio = (0.1 * rng.standard_normal((t, 6))).astype(np.float32)
        audio[:, 0] = (c + 0.3 * rng.standard_normal(t)) * scale + offset
        vision = rng.standard_normal((t + 1, 5)).astype(np.float32)
        pooled = rng.standard_normal((1, 4)).astype(np.float32)
        pooled[0, 1] = (c + 0.1 * rng.standard_normal()) * scale + offset
        out.append(Sample(f"s{seed}-{i}", "x", INFO.labels[c], "erc_a", "erc", "en", audio=audio, vision=vision,
                          pooled={"egemaps": pooled}))
    return out


def train_and_predict(build, train, test, fit=True, steps=3, lr=1e-3):
    torch.manual_seed(0)
    model = build()
    if fit:
        fit_input_statistics(model, feature_statistics(train))
    params = [p for group in model.param_groups().values() for p in group]
    opt = torch.optim.AdamW(params, lr=lr)
    model.train()
    for k in range(steps):
        opt.zero_grad()
        model(collate(train[4 * k: 4 * k + 4])).loss.backward()
        opt.step()
    model.eval()
    batch = collate(test)
    preds = model.predict(batch, "constrained")
    probs = np.array([[p.probabilities[w] for w in INFO.labels] for p in preds])
    # The tiny LLM's answer probabilities saturate, so for EGMF compare what the fusion hands it as well.
    fusion = getattr(model, "fusion", None)
    if not isinstance(fusion, ExpertFusion):
        return probs
    with torch.no_grad():
        tokens = fusion.forward_batch(batch).tokens.flatten(1).numpy()
    return np.concatenate([probs, tokens], 1)


def baseline(cls):
    cfg = BaselineConfig(hidden=16, layers=1, n_heads=2, dropout=0.1, conv_kernel=3)
    return lambda: cls(cfg, {INFO.name: INFO}, DIMS)


def egmf_builder(tiny_config):
    from egmf.model.egmf import EGMF

    # text_source "dataset": the samples carry no text features, so the fusion reads audio, vision, pooled
    return lambda: EGMF(tiny_config(text_source="dataset", fusion={"dropout": 0.1}), {INFO.name: INFO}, DIMS)


@pytest.fixture(params=["late_fusion", "mult", "egmf"])
def builder(request, tiny_config):
    return {"late_fusion": baseline(LateFusionMLP), "mult": baseline(MulT)}.get(request.param) or egmf_builder(tiny_config)


def scaled(samples, scale, offset):
    """The same samples with audio dim 0 and pooled dim 1 multiplied by ``scale`` and shifted by ``offset``."""
    out = []
    for s in samples:
        audio = s.audio.copy()
        audio[:, 0] = audio[:, 0] * scale + offset
        pooled = s.pooled["egemaps"].copy()
        pooled[0, 1] = pooled[0, 1] * scale + offset
        out.append(Sample(s.id, s.text, s.label, s.dataset, s.task, s.lang, audio=audio, vision=s.vision,
                          pooled={"egemaps": pooled}))
    return out


def test_multiplying_a_feature_dim_by_1000_leaves_predictions_unchanged(builder):
    train, test = make_samples(12, seed=1), make_samples(6, seed=2)
    base = train_and_predict(builder, train, test)
    big = train_and_predict(builder, scaled(train, 1000.0, 500.0), scaled(test, 1000.0, 500.0))
    np.testing.assert_allclose(big, base, atol=1e-4)
    # Without the fitted statistics the same change moves the predictions: the check above can fail.
    raw = train_and_predict(builder, train, test, fit=False)
    raw_big = train_and_predict(builder, scaled(train, 1000.0, 500.0), scaled(test, 1000.0, 500.0), fit=False)
    assert np.abs(raw_big - raw).max() > 1e-2


def test_statistics_travel_in_the_trainable_state(builder):
    train = make_samples(12, seed=1)
    model = builder()
    fit_input_statistics(model, feature_statistics(train))
    state = model.trainable_state_dict()
    means = {k: v for k, v in state.items() if "standardize.mean__" in k}
    assert {k.rsplit("mean__", 1)[1] for k in means} == {"erc_a__audio", "erc_a__vision", "erc_a__pooled_egemaps"}
    fresh = builder()
    key = next(iter(means))
    assert not torch.equal(fresh.trainable_state_dict()[key], means[key])  # a fresh model is unfitted
    fresh.load_trainable_state_dict(state)
    for k, v in fresh.trainable_state_dict().items():
        if "standardize." in k:
            torch.testing.assert_close(v, state[k])
