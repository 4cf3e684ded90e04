"""Table-driven tests of the non-LLM baselines: both models x {erc, msa, mixed} datasets."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from egmf.data.collate import collate
from egmf.data.schema import DatasetInfo, Sample
from egmf.errors import ConfigError, DataFormatError
from egmf.model.base import ModelOutput, Prediction, TaskModel
from egmf.model.baselines import BaselineConfig, LateFusionMLP, MulT, register
from egmf.model.registry import MODELS, build_model

ERC = DatasetInfo("erc_a", "erc", "en", labels=("neutral", "joy", "anger"), metric_family="erc")
MSA = DatasetInfo("msa.b", "msa", "en", score_range=(-3.0, 3.0), metric_family="mosi")  # a dot on purpose
DIMS = {"erc_a": {"text": 0, "audio": 6, "vision": 5}, "msa.b": {"text": 8, "audio": 4, "vision": 0}}
SETS = {"erc": [ERC], "msa": [MSA], "mixed": [ERC, MSA]}
MODELS_UNDER_TEST = {"late_fusion": LateFusionMLP, "mult": MulT}
CASES = [(m, s) for m in MODELS_UNDER_TEST for s in SETS]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, one thread


def small_cfg(**kw) -> BaselineConfig:
    base = dict(hidden=16, layers=1, n_heads=2, dropout=0.1, conv_kernel=3)
    base.update(kw)
    return BaselineConfig(**base)


def make_samples(infos, n_per=6, seed=0, lengths=(2, 7)) -> list[Sample]:
    """Samples whose features carry their label (class direction / score times a direction), interleaved."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_per):
        for info in infos:
            dims = DIMS[info.name]
            if info.task == "erc":
                c = k % len(info.labels)
                label, signal = info.labels[c], np.eye(8)[c]
            else:
                label = float(rng.uniform(-2.5, 2.5))
                # The score moves the direction, not only the norm (the encoders' LayerNorm removes the norm).
                signal = np.tile([label / 3.0, 1.0, -label / 3.0, 0.5], 2)
            feats = {}
            for m in ("text", "audio", "vision"):
                if dims[m]:
                    t = int(rng.integers(lengths[0], lengths[1] + 1))
                    feats[m] = (signal[: dims[m]] + 0.1 * rng.standard_normal((t, dims[m]))).astype(np.float32)
            out.append(Sample(id=f"{info.name}-{k}", text="x", label=label, dataset=info.name, task=info.task,
                              lang="en", text_feats=feats.get("text"), audio=feats.get("audio"),
                              vision=feats.get("vision")))
    return out


def build(model_name, set_name, **kw):
    torch.manual_seed(0)
    infos = {i.name: i for i in SETS[set_name]}
    dims = {n: DIMS[n] for n in infos}
    return MODELS_UNDER_TEST[model_name](small_cfg(**kw), infos, dims), infos


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


@pytest.mark.parametrize("max_frames", [None, 4])
@pytest.mark.parametrize("model_name,set_name", CASES)
def test_padding_never_changes_a_sample_output(model_name, set_name, max_frames):
    model, infos = build(model_name, set_name, max_frames=max_frames)
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


def test_unlabelled_samples_are_skipped_and_an_all_unlabelled_batch_is_refused():
    model, infos = build("late_fusion", "erc")
    samples = make_samples(infos.values(), n_per=3)
    labelled = model.eval()(collate(samples[:1])).loss
    samples[1].label = samples[2].label = None
    torch.testing.assert_close(model(collate(samples)).loss, labelled)
    with pytest.raises(DataFormatError, match="at least one labelled sample"):
        model(collate(samples[1:]))


def test_bad_inputs_get_exact_errors():
    model, infos = build("mult", "erc")
    samples = make_samples(infos.values(), n_per=1)
    bad = make_samples(infos.values(), n_per=1)[0]
    bad.label = "happy"
    with pytest.raises(DataFormatError, match=r"dataset erc_a: label of sample 'erc_a-0': expected one of "
                       r"\['neutral', 'joy', 'anger'\], got happy"):
        model(collate([bad]))
    wrong_dim = make_samples(infos.values(), n_per=1)[0]
    wrong_dim.audio = np.zeros((3, 9), np.float32)
    with pytest.raises(DataFormatError, match=r"audio features of sample 'erc_a-0': expected dim 6 .*got 9"):
        model(collate([wrong_dim]))
    stranger = make_samples([MSA], n_per=1)[0]
    with pytest.raises(ConfigError, match=r"dataset 'msa.b' is not one this model was built for; valid choices: erc_a"):
        model(collate(samples + [stranger]))


@pytest.mark.parametrize(
    "kw,msg",
    [
        (dict(hidden=0), "baseline.hidden: expected a positive integer"),
        (dict(hidden=16, n_heads=3), "baseline.n_heads: expected a positive divisor of hidden=16"),
        (dict(conv_kernel=2), "baseline.conv_kernel: expected an odd positive integer"),
        (dict(dropout=1.0), r"baseline.dropout: expected a value in \[0, 1\)"),
        (dict(layers=0), "baseline.layers: expected a positive integer"),
        (dict(max_frames=0), "baseline.max_frames: expected a positive integer or null"),
        (dict(regression_loss="huber"), "valid choices: l1, mse"),
        (dict(pooling="max"), "valid choices: last, mean"),
    ],
)
def test_config_validation(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        BaselineConfig(**kw)


def test_config_from_dict_refuses_unknown_keys():
    from egmf.typed_config import from_dict

    assert from_dict(BaselineConfig, {"hidden": 32, "n_heads": 8}).hidden == 32
    with pytest.raises(ConfigError, match="unknown key; valid keys: conv_kernel, dropout, hidden"):
        from_dict(BaselineConfig, {"hiden": 32})


def test_registry_builds_both_models_from_a_model_config():
    register()
    infos = {i.name: i for i in SETS["mixed"]}
    for name, cls in MODELS_UNDER_TEST.items():
        assert name in MODELS
        cfg = types.SimpleNamespace(name=name, baseline=small_cfg())
        model = build_model(cfg, infos, DIMS)
        assert type(model) is cls and model.cfg.hidden == 16
    with pytest.raises(ConfigError, match="every modality has dim 0"):
        build_model(types.SimpleNamespace(name="mult", baseline=small_cfg()), {"erc_a": ERC},
                    {"erc_a": {"text": 0, "audio": 0, "vision": 0}})
    with pytest.raises(ConfigError, match=r"no feature dims for dataset\(s\) \['msa.b'\]"):
        build_model(types.SimpleNamespace(name="late_fusion", baseline=small_cfg()), infos, {"erc_a": DIMS["erc_a"]})


def test_checkpoint_from_other_datasets_is_refused():
    model, _ = build("late_fusion", "erc")
    other, _ = build("late_fusion", "mixed")
    with pytest.raises(ConfigError, match="checkpoint does not match this model"):
        model.load_trainable_state_dict(other.trainable_state_dict())


def test_builds_from_the_run_model_config():
    from egmf.model.config import ModelConfig
    from egmf.typed_config import from_dict

    cfg = from_dict(ModelConfig, {"name": "mult", "baseline": {"hidden": 16, "n_heads": 2, "layers": 1}})
    infos = {i.name: i for i in SETS["mixed"]}
    model = build_model(cfg, infos, DIMS)
    assert type(model) is MulT and model.cfg.n_heads == 2
    assert torch.isfinite(model(collate(make_samples(infos.values(), n_per=2))).loss)
    with pytest.raises(ConfigError, match="baseline.n_heads: expected a positive divisor of hidden=16"):
        from_dict(ModelConfig, {"name": "mult", "baseline": {"hidden": 16, "n_heads": 3}})
