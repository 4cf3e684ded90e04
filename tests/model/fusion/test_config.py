"""``FusionConfig`` (egmf.model.fusion.config): every bad value is refused with the field and the rule."""

from __future__ import annotations

import pytest

from egmf.errors import ConfigError
from egmf.model.fusion import FusionConfig


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(missing_modality="zero"), r"fusion.missing_modality: invalid value 'zero'; valid choices: mask, learned"),
        (dict(use_local=False, use_semantic=False, use_global=False), "at least one of use_local, use_semantic"),
        (dict(d_model=10, n_heads=4), "not divisible by fusion.n_heads=4"),
        (dict(dropout=1.0), r"dropout: expected a value in \[0, 1\)"),
        (dict(local_kernel_sizes=(1, 2)), "odd positive ints"),
        (dict(local_kernel_sizes=()), "odd positive ints"),
        (dict(gate_temperature=0.0), "gate_temperature: expected a value > 0"),
        (dict(gate_balance_weight=-0.1), "gate_balance_weight: expected a value >= 0"),
        (dict(num_pseudo_tokens=0), "num_pseudo_tokens: expected an int >= 1"),
        (dict(max_frames_per_modality=0), "max_frames_per_modality: expected an int >= 1 or null"),
        (dict(global_layers=True), "global_layers: expected an int >= 1"),
    ],
)
def test_bad_config_raises_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FusionConfig(**kwargs)


def test_config_accepts_yaml_lists_and_reports_active_experts():
    c = FusionConfig(local_kernel_sizes=[3, 7], use_semantic=False)
    assert c.local_kernel_sizes == (3, 7)
    assert c.active_experts == ("local", "global")
