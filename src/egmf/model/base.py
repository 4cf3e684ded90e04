"""The contract between models and the one trainer: what a model returns, and what it predicts.

Every model EGMF trains (the EGMF fusion + LLM, and the baselines) is an ``nn.Module`` that takes a
:class:`egmf.data.collate.Batch` and honours :class:`TaskModel`. The trainer, the evaluator and the CLI know
nothing else about a model, which is what lets one loop serve every model and dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from egmf.data.collate import Batch


@dataclass
class FusionOutput:
    """What the expert fusion hands to the LLM bridge (or to a classifier head).

    ``tokens``: ``[B, K, H]`` pseudo-token embeddings in the consumer's hidden size.
    ``gates``: named gate weights, each ``[B, n]``; keys are ``"expert"`` (level 2, one weight per active
    expert, in ``expert_names`` order) and ``"modality.<expert>"`` (level 1, one weight per modality, in
    ``egmf.data.schema.MODALITIES`` order).
    ``aux_loss``: the optional gate-balance regulariser (a scalar), already scaled by its weight.
    ``fused``: ``[B, d]`` the gated mix of the experts (what the pseudo-token queries start from), for a head
    that supervises the fusion directly (EGMF's ``model.fusion_head_weight``).
    """

    tokens: torch.Tensor
    gates: dict[str, torch.Tensor] = field(default_factory=dict)
    aux_loss: torch.Tensor | None = None
    expert_names: tuple[str, ...] = ()
    fused: torch.Tensor | None = None


@dataclass
class ModelOutput:
    """One forward pass in training: ``loss`` is the total (task loss + ``aux_loss``)."""

    loss: torch.Tensor
    task_loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    gates: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Prediction:
    """One sample's answer, as ``egmf predict`` writes it (one JSON line each).

    ERC: ``prediction`` is a label word and ``probabilities`` maps every label word to its probability.
    MSA: ``prediction`` is the score (a float inside the dataset's range) and ``score`` repeats it.
    ``generated`` is the raw text of free generation (``None`` for constrained decoding);
    ``parsed`` is ``False`` when that text could not be parsed and the fallback was used.
    """

    id: str
    dataset: str
    task: str
    prediction: str | float
    probabilities: dict[str, float] | None = None
    score: float | None = None
    gates: dict[str, list[float]] = field(default_factory=dict)
    generated: str | None = None
    parsed: bool = True

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@runtime_checkable
class TaskModel(Protocol):
    """What the trainer needs from a model.

    Input standardisation: before training, the trainer calls
    :func:`egmf.model.standardize.fit_input_statistics` ``(model, stats)`` once with the train split's
    per-dimension statistics (:func:`egmf.training.data.feature_statistics`). It fits every
    :class:`~egmf.model.standardize.FeatureStandardizer` inside the model (the EGMF fusion's and the baselines'
    modality encoders hold one), or calls the model's own ``fit_input_statistics(stats)`` where it defines one
    (optional, so not part of this protocol). The statistics are buffers, so ``trainable_state_dict()`` must
    include buffers for checkpoints to carry them.
    """

    def forward(self, batch: Batch) -> ModelOutput: ...

    def predict(self, batch: Batch, decoding: str = "constrained") -> list[Prediction]: ...

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by group; the trainer gives each group its own learning rate
        (``"lora"`` and ``"fusion"`` for EGMF; baselines may return only ``"fusion"``)."""
        ...

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what training changed (LoRA + fusion weights): what a checkpoint stores."""
        ...

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...
