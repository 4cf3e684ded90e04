"""The one training step: what ``fit`` runs for every batch, and what every benchmark times.

    out = train_step(model, batch, optimizer, accelerator, scheduler, max_grad_norm=1.0)
    out.loss      # this process's loss on the batch (detached)
    out.stepped   # True when this micro-batch ended an optimiser step (gradient accumulation)

The step knows nothing of epochs, checkpoints or evaluation, so a benchmark that calls it measures exactly
the code users train with. ``model`` and ``optimizer`` are normally ``accelerator.prepare``d: the prepared
optimizer then skips its step on the micro-batches of an accumulation window.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class StepResult:
    loss: torch.Tensor
    stepped: bool


def train_step(model, batch, optimizer, accelerator, scheduler=None, max_grad_norm: float = 0.0) -> StepResult:
    """Forward, backward through ``accelerator``, clip when the gradients sync, optimiser step, zero_grad;
    ``scheduler`` (when given) advances once per optimiser step."""
    with accelerator.accumulate(model):
        loss = model(batch).loss
        accelerator.backward(loss)
        stepped = accelerator.sync_gradients
        if stepped and max_grad_norm > 0:
            # The optimiser holds exactly the trainable parameters; the frozen LLM has no gradients to clip.
            params = [p for group in optimizer.param_groups for p in group["params"]]
            accelerator.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
    if stepped and scheduler is not None:
        scheduler.step()
    return StepResult(loss.detach(), stepped)
