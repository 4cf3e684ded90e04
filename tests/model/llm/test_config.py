"""The LLM, LoRA and prompt settings (egmf.model.llm.config): errors name the field and the choices."""

from __future__ import annotations

import pytest

from egmf.errors import ConfigError
from egmf.model.config import ModelConfig
from egmf.model.llm.config import LLMConfig, LoraSettings, PromptConfig


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (LLMConfig, {"dtype": "int8"}, "model.llm.dtype: invalid value 'int8'; valid choices: float32, bfloat16, float16"),
        (LLMConfig, {"autocast": "fp8"}, "model.llm.autocast: invalid value 'fp8'; valid choices: auto, none, bf16"),
        (LLMConfig, {"backend": " "}, "model.llm.backend: got ' '; valid choices: gemma3-270m, smollm2-135m, tiny"),
        (LLMConfig, {"frozen_dtype": "fp8"},
         "model.llm.frozen_dtype: invalid value 'fp8'; valid choices: auto, float32, bfloat16"),
        (LLMConfig, {"frozen_dtype": "bfloat16"}, "model.llm.frozen_dtype: 'bfloat16' needs model.llm.autocast 'bf16'"),
        (LoraSettings, {"r": -1}, "model.lora.r: expected an integer >= 0, got -1"),
        (LoraSettings, {"layers_from": -2}, "model.lora.layers_from: expected an integer >= 0, got -2"),
        (LoraSettings, {"dropout": 1.0}, "model.lora.dropout: expected a value in [0, 1), got 1.0"),
        (LoraSettings, {"target_modules": []}, "model.lora.target_modules: expected a non-empty list"),
        (PromptConfig, {"max_prompt_tokens": 8}, "model.prompt.max_prompt_tokens: expected >= 16, got 8"),
        (PromptConfig, {"max_context_turns": -1}, "model.prompt.max_context_turns: expected >= 0, got -1"),
        (ModelConfig, {"text_source": "bert"}, "model.text_source: invalid value 'bert'; valid choices: auto, dataset, llm, sentence, none"),
    ],
)
def test_config_errors_name_field_and_choices(cls, kwargs, message):
    with pytest.raises(ConfigError) as e:
        cls(**kwargs)
    assert str(e.value).startswith(message)
