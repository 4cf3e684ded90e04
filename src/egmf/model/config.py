"""``ModelConfig``: the whole EGMF model — fusion, LLM, LoRA, prompts, text source, decoding — in one
typed, validated dataclass (``model:`` in a run's YAML).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from egmf.errors import ConfigError
from egmf.model.baselines.config import BaselineConfig
from egmf.model.fusion.config import FusionConfig
from egmf.model.llm.config import LLMConfig, LoraSettings, PromptConfig

TEXT_SOURCES = ("dataset", "llm", "sentence", "none")
DECODINGS = ("constrained", "free")


@dataclass
class ModelConfig:
    name: str = field(default="egmf", metadata={"help": "registered model name (egmf.model.registry.MODELS)"})
    fusion: FusionConfig = field(default_factory=FusionConfig, metadata={"help": "the expert fusion"})
    use_fusion: bool = field(
        default=True,
        metadata={"help": "false = the text-only LLM baseline: same prompts and LoRA, no pseudo tokens, no fusion"},
    )
    llm: LLMConfig = field(default_factory=LLMConfig, metadata={"help": "the LLM backend"})
    lora: LoraSettings = field(default_factory=LoraSettings, metadata={"help": "the LoRA adapter of the LLM"})
    prompt: PromptConfig = field(default_factory=PromptConfig, metadata={"help": "how prompts are written"})
    baseline: BaselineConfig = field(
        default_factory=BaselineConfig, metadata={"help": "the non-LLM baselines (late_fusion, mult); EGMF ignores it"}
    )
    text_source: Literal["dataset", "llm", "sentence", "none"] = field(
        default="dataset",
        metadata={
            "help": "text modality of the fusion: 'dataset' (the dataset's text features), 'sentence' (features of "
            "a sentence encoder, extracted into the batch), 'llm' (the LLM's frozen input embeddings of the "
            "utterance), 'none' (no text features; the utterance still appears in the prompt)"
        },
    )
    max_utterance_tokens: int = field(
        default=64, metadata={"help": "text_source='llm': at most this many utterance tokens feed the fusion"}
    )
    decoding: Literal["constrained", "free"] = field(
        default="constrained",
        metadata={"help": "default of predict(): 'constrained' (always a valid label/score) or 'free' (generate + parse)"},
    )
    max_new_tokens: int = field(default=12, metadata={"help": "free generation: at most this many new tokens"})
    score_decoding: Literal["median", "greedy"] = field(
        default="median",
        metadata={
            "help": "constrained sentiment scores: 'median' scores every one-decimal value of the range in one pass "
            "and answers the median of that distribution (the value minimising the expected absolute error); "
            "'greedy' writes the number token by token under the constraint"
        },
    )

    def __post_init__(self):
        if self.text_source not in TEXT_SOURCES:
            raise ConfigError(f"model.text_source: got {self.text_source!r}; valid choices: {', '.join(TEXT_SOURCES)}")
        if self.decoding not in DECODINGS:
            raise ConfigError(f"model.decoding: got {self.decoding!r}; valid choices: {', '.join(DECODINGS)}")
        if self.max_utterance_tokens < 1:
            raise ConfigError(f"model.max_utterance_tokens: expected >= 1, got {self.max_utterance_tokens}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"model.max_new_tokens: expected >= 1, got {self.max_new_tokens}")
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"model.name: expected a registered model name, got {self.name!r}")
