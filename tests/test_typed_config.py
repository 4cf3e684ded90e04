"""The one config mechanism (egmf.typed_config): YAML reading, overrides, the help table, choice checks."""

from __future__ import annotations

import pytest

from egmf.config import EvalConfig, RunConfig, TrainConfig
from egmf.errors import ConfigError
from egmf.model.config import ModelConfig
from egmf.typed_config import apply_overrides, help_table, read_yaml


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        read_yaml(path)


def test_apply_overrides_rejects_a_bad_list_index():
    with pytest.raises(ConfigError, match="list index below 1"):
        apply_overrides({"data": {"datasets": [{"name": "meld"}]}}, ["data.datasets.3.path=x"])


def test_help_table_lists_every_leaf_with_help():
    rows = {key: (default, text) for key, default, text in help_table(RunConfig)}
    assert "model.fusion.num_pseudo_tokens" in rows and "train.lr_lora" in rows
    assert all(text for key, (_, text) in rows.items() if key.startswith("train.")), "every train key has help"


@pytest.mark.parametrize("cls, kwargs, message", [
    (TrainConfig, {"mixed_precision": "fp8"}, "train.mixed_precision: invalid value 'fp8'; valid choices: auto, no, bf16, fp16"),
    (EvalConfig, {"decoding": "beam"}, "eval.decoding: invalid value 'beam'; valid choices: constrained, free"),
    (ModelConfig, {"text_source": "bert"}, "model.text_source: invalid value 'bert'; valid choices: auto, dataset, llm, sentence, none"),
    (ModelConfig, {"score_decoding": "mean"}, "model.score_decoding: invalid value 'mean'; valid choices: median, greedy"),
])
def test_a_config_built_in_code_gets_the_same_choice_check(cls, kwargs, message):
    """Choice fields are Literal everywhere; a config built without from_dict is checked the same way."""
    with pytest.raises(ConfigError) as err:
        cls(**kwargs)
    assert str(err.value) == message
