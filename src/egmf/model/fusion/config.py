"""``FusionConfig``: every switch of the expert fusion that an ablation needs, checked at load time.

A wrong value fails here, with the valid choices, instead of deep inside a forward pass.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

from egmf.errors import ConfigError
from egmf.typed_config import check_choices

EXPERTS = ("local", "semantic", "global")
MissingModality = Literal["mask", "learned"]
MISSING_MODALITY = typing.get_args(MissingModality)


@dataclass
class FusionConfig:
    d_model: int = field(default=128, metadata={"help": "Width of every encoder, expert and gate (divisible by n_heads)."})
    n_heads: int = field(default=4, metadata={"help": "Attention heads in the semantic and global experts and the projector."})
    dropout: float = field(default=0.1, metadata={"help": "Dropout inside encoders and experts, in [0, 1)."})
    ff_mult: int = field(default=2, metadata={"help": "Feed-forward width as a multiple of d_model."})

    use_local: bool = field(default=True, metadata={"help": "Fine-grained local expert (multi-scale temporal convolution)."})
    use_semantic: bool = field(default=True, metadata={"help": "Semantic correlation expert (directional cross-modal attention)."})
    use_global: bool = field(default=True, metadata={"help": "Global context expert (transformer over all modality tokens)."})
    local_kernel_sizes: tuple[int, ...] = field(
        default=(1, 3, 5), metadata={"help": "Odd kernel sizes of the local expert's parallel convolutions."}
    )
    semantic_layers: int = field(default=1, metadata={"help": "Cross-modal attention layers per modality pair."})
    global_layers: int = field(default=2, metadata={"help": "Transformer layers of the global context expert."})

    modality_gating: bool = field(
        default=True, metadata={"help": "Level 1: learned, sample-conditioned weights over modalities inside each expert "
                                        "(off = uniform mean over the present modalities)."}
    )
    expert_gating: bool = field(
        default=True, metadata={"help": "Level 2: learned, sample-conditioned weights over experts (off = uniform mean)."}
    )
    gate_hidden: int = field(default=64, metadata={"help": "Hidden width of the gate MLPs."})
    gate_temperature: float = field(default=1.0, metadata={"help": "Softmax temperature of both gate levels (> 0; lower = sharper)."})
    gate_balance_weight: float = field(
        default=0.1, metadata={"help": "Weight of the balance regulariser (KL of the batch-mean gate to the uniform gate); "
                                       "0 turns it off. 0.1: about 0.09 nats at the 0.96 one-expert collapse seen without it, "
                                       "a tenth of a typical answer loss, so it resists a drift that carries no signal "
                                       "while each sample stays free to be sharp."}
    )

    num_pseudo_tokens: int = field(default=4, metadata={"help": "K: pseudo tokens handed to the LLM."})
    max_frames_per_modality: int | None = field(
        default=32, metadata={"help": "Masked adaptive average pooling of each modality to at most this many frames "
                                      "(bounds cost on long sequences such as SIMS v2 audio, 925 frames: 32 keeps fusion "
                                      "forward+backward under 10% of a SmolLM2-135M LoRA step on 2 cores); "
                                      "null = no pooling."}
    )
    missing_modality: MissingModality = field(
        default="mask", metadata={"help": "How a missing modality enters the experts: 'mask' (its keys are masked out) or "
                                          "'learned' (one learned placeholder token stands in as a key). Its gate weight is 0 "
                                          "either way."}
    )
    stats_token: bool = field(
        default=True, metadata={"help": "Append to each modality's tokens a statistics token: mean and std over the "
                                        "utterance's real (standardised) frames, through a Linear to d_model, with its own "
                                        "type embedding, so every expert sees the per-clip spread."}
    )

    def __post_init__(self):
        self.local_kernel_sizes = tuple(self.local_kernel_sizes)  # YAML gives lists
        check_choices(self, "fusion")
        _positive_int("d_model", self.d_model)
        _positive_int("n_heads", self.n_heads)
        if self.d_model % self.n_heads:
            raise ConfigError(f"fusion.d_model: {self.d_model} is not divisible by fusion.n_heads={self.n_heads}")
        _positive_int("ff_mult", self.ff_mult)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"fusion.dropout: expected a value in [0, 1), got {self.dropout}")
        if not self.active_experts:
            raise ConfigError(
                "fusion: every expert is turned off; turn on at least one of use_local, use_semantic, use_global"
            )
        if not self.local_kernel_sizes or any(
            not isinstance(k, int) or k < 1 or k % 2 == 0 for k in self.local_kernel_sizes
        ):
            raise ConfigError(
                f"fusion.local_kernel_sizes: expected a non-empty list of odd positive ints (e.g. [1, 3, 5]), "
                f"got {list(self.local_kernel_sizes)}"
            )
        _positive_int("semantic_layers", self.semantic_layers)
        _positive_int("global_layers", self.global_layers)
        _positive_int("gate_hidden", self.gate_hidden)
        if not self.gate_temperature > 0:
            raise ConfigError(f"fusion.gate_temperature: expected a value > 0, got {self.gate_temperature}")
        if not self.gate_balance_weight >= 0:
            raise ConfigError(f"fusion.gate_balance_weight: expected a value >= 0, got {self.gate_balance_weight}")
        _positive_int("num_pseudo_tokens", self.num_pseudo_tokens)
        if self.max_frames_per_modality is not None:
            _positive_int("max_frames_per_modality", self.max_frames_per_modality, "or null for no pooling")

    @property
    def active_experts(self) -> tuple[str, ...]:
        """The experts turned on, in the fixed order of :data:`EXPERTS`."""
        on = {"local": self.use_local, "semantic": self.use_semantic, "global": self.use_global}
        return tuple(e for e in EXPERTS if on[e])


def _positive_int(name: str, value, extra: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"fusion.{name}: expected an int >= 1{' ' + extra if extra else ''}, got {value!r}")
