"""``ModelConfig`` (egmf.model.config) read from a YAML mapping, and the one text-feature-dim rule."""

from __future__ import annotations

import pytest

from egmf.errors import ConfigError
from egmf.model.config import ModelConfig, text_feature_dim
from egmf.typed_config import from_dict


def test_model_config_from_yaml_mapping():
    cfg = from_dict(ModelConfig, {"llm": {"backend": "tiny"}, "lora": {"r": 2, "target_modules": ["q_proj"]},
                                  "fusion": {"num_pseudo_tokens": 6}, "text_source": "llm"}, "model")
    assert cfg.llm.backend == "tiny" and cfg.lora.target_modules == ("q_proj",)
    assert cfg.fusion.num_pseudo_tokens == 6 and cfg.text_source == "llm"
    with pytest.raises(ConfigError, match=r"model.prompt.tempalte: unknown key; valid keys: .*template"):
        from_dict(ModelConfig, {"prompt": {"tempalte": "x"}}, "model")


@pytest.mark.parametrize("text_source, data_view, fusion_view", [
    ("dataset", 48, 48), ("sentence", 384, 384), ("none", 0, 0), ("llm", 0, 32),
])
def test_text_feature_dim_is_one_rule_for_data_and_fusion(text_source, data_view, fusion_view):
    """The data holds no text features under llm (the fusion reads the LLM's embeddings, hidden 32 here)."""
    data_dim = {"dataset": 48, "sentence": 384}.get(text_source, 0)
    assert text_feature_dim(text_source, data_dim) == data_view  # what load_training_data records
    assert text_feature_dim(text_source, data_view, llm_hidden=32) == fusion_view  # what EGMF.fusion_dims feeds


def test_sentence_encoder_choices_are_auto_and_the_encoders_of_the_features_layer():
    import typing

    from egmf.features.text import ENCODERS
    from egmf.model.config import ModelConfig, SentenceEncoderChoice

    assert typing.get_args(SentenceEncoderChoice) == ("auto", *ENCODERS)
    assert ModelConfig().sentence_encoder == "auto"
    with pytest.raises(ConfigError, match="model.sentence_encoder: invalid value 'labse'"):
        ModelConfig(sentence_encoder="labse")
