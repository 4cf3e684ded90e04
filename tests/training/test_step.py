"""The one training step: the same update as forward/backward/clip/AdamW written out, and accumulation."""

from __future__ import annotations

import copy

import pytest
import torch
from accelerate import Accelerator

from egmf.model.base import ModelOutput
from egmf.training.step import train_step


class Regression(torch.nn.Module):
    """A stand-in TaskModel: ``forward(batch)`` returns a ``ModelOutput`` whose loss is what training lowers."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(3, 1)

    def forward(self, batch):
        x, y = batch
        return ModelOutput(loss=((self.linear(x).squeeze(-1) - y) ** 2).mean())


def _batches(n: int):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(4, 3, generator=g) * 10, torch.randn(4, generator=g)) for _ in range(n)]


def _prepared(grad_accum: int = 1):
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=grad_accum)
    model = Regression()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    return accelerator, model, optimizer


def test_a_step_is_forward_backward_clip_and_adamw():
    accelerator, model, optimizer = _prepared()
    reference = copy.deepcopy(Regression())
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=0.1)
    for batch in _batches(3):
        out = train_step(model, batch, optimizer, accelerator, max_grad_norm=0.5)
        ref_loss = reference(batch).loss
        ref_loss.backward()
        torch.nn.utils.clip_grad_norm_(list(reference.parameters()), 0.5)
        ref_opt.step()
        ref_opt.zero_grad()
        assert out.stepped and not out.loss.requires_grad
        assert out.loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    for p, q in zip(accelerator.unwrap_model(model).parameters(), reference.parameters()):
        torch.testing.assert_close(p, q)
        assert p.grad is None or not p.grad.any(), "gradients are zeroed after the step"


def test_under_accumulation_the_optimiser_and_scheduler_step_once_per_window():
    accelerator, model, optimizer = _prepared(grad_accum=2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    weights = []
    stepped = []
    for batch in _batches(4):
        stepped.append(train_step(model, batch, optimizer, accelerator, scheduler).stepped)
        weights.append(accelerator.unwrap_model(model).linear.weight.detach().clone())
    assert stepped == [False, True, False, True]
    assert torch.equal(weights[0], Regression().linear.weight), "no update inside the window"
    assert not torch.equal(weights[1], weights[0])
    assert scheduler.get_last_lr() == [pytest.approx(0.1 * 0.25)], "the scheduler stepped twice, not four times"
