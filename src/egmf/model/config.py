"""``ModelConfig``: the whole EGMF model — fusion, LLM, LoRA, prompts, text source, scoring — in one
typed, validated dataclass (``model:`` in a run's YAML). Decoding is chosen per evaluation (``eval.decoding``).

Two rules every component reads from here rather than re-deriving: K, the number of pseudo tokens
(:attr:`ModelConfig.num_pseudo_tokens`), and the text feature dim under a ``text_source``
(:func:`text_feature_dim`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from egmf.errors import ConfigError
from egmf.model.baselines.config import BaselineConfig
from egmf.model.fusion.config import FusionConfig
from egmf.model.llm.config import LLMConfig, LoraSettings, PromptConfig
from egmf.typed_config import check_choices

TextSource = Literal["auto", "dataset", "llm", "sentence", "none"]


def text_feature_dim(text_source: str, data_dim: int, llm_hidden: int = 0) -> int:
    """The text modality's feature dim under ``text_source``: the one rule for data and fusion alike.

    ``dataset``, ``sentence`` and ``auto``: the dim of the text features the samples hold (``data_dim``; for
    ``sentence`` the sentence vectors that replaced the dataset's; for ``auto`` the dataset's own features where
    it ships them, else the sentence vectors that
    :func:`egmf.training.data.apply_text_source` gave it). ``none``: 0. ``llm``: the samples hold no
    text features (0, the default ``llm_hidden``); the fusion reads the LLM's own input embeddings of the
    utterance instead, so for the fusion pass the LLM's hidden size as ``llm_hidden``.
    """
    if text_source == "none":
        return 0
    if text_source == "llm":
        return llm_hidden
    return data_dim


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
    text_source: TextSource = field(
        default="auto",
        metadata={
            "help": "text modality of the fusion (and the baselines): 'auto' (the dataset's text features where it "
            "ships them, else 'sentence'), 'dataset' (the dataset's text features), 'sentence' (one MiniLM sentence "
            "vector per utterance, computed when the data is loaded), 'llm' (the LLM's frozen input embeddings of the "
            "utterance: nothing the LLM does not already read in the prompt), 'none' (no text features); the "
            "utterance and its context are in the prompt whatever the choice"
        },
    )
    max_utterance_tokens: int = field(
        default=64, metadata={"help": "text_source='llm': at most this many utterance tokens feed the fusion"}
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
        check_choices(self, "model")
        if self.max_utterance_tokens < 1:
            raise ConfigError(f"model.max_utterance_tokens: expected >= 1, got {self.max_utterance_tokens}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"model.max_new_tokens: expected >= 1, got {self.max_new_tokens}")
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"model.name: expected a registered model name, got {self.name!r}")

    @property
    def num_pseudo_tokens(self) -> int:
        """K, defined once: the prompt's placeholder slots and the fusion's output tokens.

        ``fusion.num_pseudo_tokens`` with the fusion on; 0 without it (``use_fusion: false``, the text-only
        baseline: no fusion, so no slots in the prompt, whatever ``fusion.num_pseudo_tokens`` says).
        """
        return self.fusion.num_pseudo_tokens if self.use_fusion else 0
