"""The baselines package (egmf.model.baselines): ``register`` and the builders the model registry calls."""

from __future__ import annotations

import types

import pytest
import torch

from egmf.data.collate import collate
from egmf.errors import ConfigError
from egmf.model.baselines import MulT, register
from egmf.model.registry import MODELS, build_model

from .conftest import DIMS, ERC, MODELS_UNDER_TEST, SETS, make_samples, small_cfg


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, one thread


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


def test_builds_from_the_run_model_config():
    from egmf.model.config import ModelConfig
    from egmf.typed_config import from_dict

    cfg = from_dict(ModelConfig, {"name": "mult", "baseline": {"hidden": 16, "n_heads": 2, "layers": 1}})
    infos = {i.name: i for i in SETS["mixed"]}
    model = build_model(cfg, infos, DIMS)
    assert type(model) is MulT and model.cfg.n_heads == 2 and model.class_weighting == "none"
    weighted = from_dict(ModelConfig, {"name": "late_fusion", "class_weighting": "sqrt"})
    assert build_model(weighted, infos, DIMS).class_weighting == "sqrt"  # the run's setting reaches the baseline
    assert torch.isfinite(model(collate(make_samples(infos.values(), n_per=2))).loss)
    with pytest.raises(ConfigError, match="baseline.n_heads: expected a positive divisor of hidden=16"):
        from_dict(ModelConfig, {"name": "mult", "baseline": {"hidden": 16, "n_heads": 3}})
