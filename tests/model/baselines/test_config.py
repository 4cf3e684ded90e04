"""``BaselineConfig`` (egmf.model.baselines.config): every bad value is refused with the field and the rule."""

from __future__ import annotations

import pytest

from egmf.errors import ConfigError
from egmf.model.baselines import BaselineConfig


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
