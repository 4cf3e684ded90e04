"""The model registry (egmf.model.registry): every built-in name, one builder call, clear refusals."""

from __future__ import annotations

import types

import pytest

from egmf.errors import ConfigError
from egmf.model import registry
from egmf.model.registry import MODELS, build_model, model_names, register_model


def test_builtin_models_are_registered_by_the_explicit_call():
    assert model_names() == sorted(MODELS)
    assert {"egmf", "late_fusion", "mult"} <= set(model_names())


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        build_model(types.SimpleNamespace(name="bert"), {}, {})
    assert str(e.value) == f"model.name: unknown model 'bert'; valid choices: {', '.join(model_names())}"


def test_build_model_calls_the_registered_builder_and_a_second_builder_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "MODELS", dict(MODELS))  # leave the real registry as it was

    def builder(cfg, infos, feature_dims):
        return ("built", cfg.name, infos, feature_dims)

    register_model("mine", builder, "my model")
    register_model("mine", builder)  # the same builder again: idempotent
    cfg = types.SimpleNamespace(name="mine")
    assert build_model(cfg, {"d": 1}, {"d": {"audio": 3}}) == ("built", "mine", {"d": 1}, {"d": {"audio": 3}})
    with pytest.raises(ValueError, match="model 'mine' is already registered"):
        register_model("mine", lambda *a: None)


def test_train_defaults_are_per_model_and_name_only_train_fields():
    import dataclasses

    from egmf.config import TrainConfig
    from egmf.model.registry import TrainDefaults, train_defaults

    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(TrainDefaults().as_dict()) <= train_fields  # one mechanism: the same names as train's fields
    assert train_defaults("egmf") == TrainDefaults()
    assert train_defaults("llm_text") == train_defaults("egmf")
    from egmf.model.baselines import LATE_FUSION_TRAIN, MULT_TRAIN

    # The non-LLM baselines register rates of their own (measured: benchmarks/baseline_rates.py).
    assert train_defaults("late_fusion") == TrainDefaults(**LATE_FUSION_TRAIN)
    assert train_defaults("mult") == TrainDefaults(**MULT_TRAIN)
    with pytest.raises(ConfigError, match="model.name: unknown model 'bert'"):
        train_defaults("bert")


@pytest.mark.parametrize("kw,message", [({"lr_fusion": 0.0}, "positive learning rates"),
                                        ({"weight_decay": -1.0}, "weight_decay: expected a finite number >= 0"),
                                        ({"warmup_ratio": 1.0}, "warmup_ratio < 1")])
def test_bad_train_defaults_are_refused(kw, message):
    from egmf.model.registry import TrainDefaults

    with pytest.raises(ConfigError, match=message):
        TrainDefaults(**kw)
