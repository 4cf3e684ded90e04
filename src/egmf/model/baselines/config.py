"""Settings of the non-LLM baselines (late-fusion MLP, MulT-style transformer), checked on construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from egmf.errors import ConfigError
from egmf.typed_config import check_choices


@dataclass
class BaselineConfig:
    """One config for both baselines; each model reads the fields that apply to it."""

    hidden: int = field(default=128, metadata={"help": "Width of every hidden layer (and attention embedding)."})
    dropout: float = field(default=0.1, metadata={"help": "Dropout on hidden layers and attention, in [0, 1)."})
    layers: int = field(
        default=2,
        metadata={"help": "late_fusion: MLP depth per modality and after fusion. mult: layers per cross-modal and "
                  "per self-attention stack."},
    )
    n_heads: int = field(default=4, metadata={"help": "mult: attention heads; must divide hidden."})
    conv_kernel: int = field(
        default=1,
        metadata={"help": "mult: odd kernel of the temporal Conv1d over each modality's frames (MulT uses 1 for "
                  "aligned, 3 for unaligned sequences)."},
    )
    max_frames: int | None = field(
        default=64,
        metadata={"help": "Masked average pooling of each modality to at most this many frames (as the EGMF fusion "
                  "encoders do; bounds attention cost on long sequences); null = no pooling."},
    )
    # Mean by default: on RAVDESS at convergence (benchmarks/results/quality_ravdess_converged_mult_pooling.md) the
    # mean was better on valid on all three seeds (0.73 / 0.70 / 0.75 accuracy against 0.67 / 0.63 / 0.68) and on
    # test 0.567 ± 0.034 against 0.492 ± 0.053.
    pooling: Literal["last", "mean"] = field(
        default="mean",
        metadata={"help": "mult: how a sequence becomes one vector: the masked mean of its real states (the default, "
                  "measured better on RAVDESS) or its last real state (as the MulT paper)."},
    )
    regression_loss: Literal["l1", "mse"] = field(
        default="l1", metadata={"help": "MSA loss: l1 (as MMSA trains MulT and most models) or mse."}
    )

    def __post_init__(self):
        check_choices(self, "baseline")
        if not isinstance(self.hidden, int) or self.hidden < 1:
            raise ConfigError(f"baseline.hidden: expected a positive integer, got {self.hidden!r}")
        if not isinstance(self.layers, int) or self.layers < 1:
            raise ConfigError(f"baseline.layers: expected a positive integer, got {self.layers!r}")
        if not isinstance(self.n_heads, int) or self.n_heads < 1 or self.hidden % self.n_heads:
            raise ConfigError(
                f"baseline.n_heads: expected a positive divisor of hidden={self.hidden}, got {self.n_heads!r}"
            )
        if not isinstance(self.conv_kernel, int) or self.conv_kernel < 1 or self.conv_kernel % 2 == 0:
            # An even kernel would shift frames against their masks (padding k//2 changes the length).
            raise ConfigError(f"baseline.conv_kernel: expected an odd positive integer, got {self.conv_kernel!r}")
        if self.max_frames is not None and (not isinstance(self.max_frames, int) or self.max_frames < 1):
            raise ConfigError(f"baseline.max_frames: expected a positive integer or null, got {self.max_frames!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"baseline.dropout: expected a value in [0, 1), got {self.dropout!r}")
