"""The hierarchical gate (egmf.model.fusion.gating): masks, uniform when off, temperature, balance loss."""

from __future__ import annotations

import pytest
import torch

from egmf.data.collate import collate
from egmf.model.fusion import EXPERTS

from .conftest import build, mixed_samples, run


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, one thread


@pytest.mark.parametrize("missing", ["mask", "learned"])
def test_missing_modality_gets_weight_zero_and_finite_output(missing):
    fusion = build(missing_modality=missing)
    batch = collate(mixed_samples())
    batch.masks["vision"][0] = False  # sample 0 loses vision too, at run time
    batch.features["vision"][0] = 0.0
    with torch.no_grad():
        out = fusion.forward_batch(batch)
    assert torch.isfinite(out.tokens).all()
    for e in EXPERTS:
        w = out.gates[f"modality.{e}"]
        assert w[0, 2] == 0.0 and w[2, 1] == 0.0
        assert w[0, 0] + w[0, 1] == pytest.approx(1.0, abs=1e-6)


def test_gating_off_is_uniform_over_present():
    fusion = build(modality_gating=False, expert_gating=False)
    with torch.no_grad():
        out = run(fusion, mixed_samples())
    expected = torch.tensor([[1 / 3] * 3, [0, 0.5, 0.5], [0.5, 0, 0.5], [1 / 3] * 3])
    for e in EXPERTS:
        torch.testing.assert_close(out.gates[f"modality.{e}"], expected)
    torch.testing.assert_close(out.gates["expert"], torch.full((4, 3), 1 / 3))
    assert not any(n.startswith("gate.") for n, _ in fusion.named_parameters())


def test_gating_on_depends_on_the_sample():
    fusion = build()
    with torch.no_grad():
        out = run(fusion, mixed_samples())
    g = out.gates["expert"]
    assert not torch.allclose(g[0], g[3], atol=1e-4)
    assert not torch.allclose(g[0], torch.full((3,), 1 / 3), atol=1e-4)


def _entropy(p):
    return -(torch.xlogy(p, p)).sum(-1).mean().item()


def test_temperature_sharpens_gates():
    samples = mixed_samples()
    outs = {}
    with torch.no_grad():
        for t in (0.25, 1.0, 4.0):
            outs[t] = run(build(seed=1, gate_temperature=t), samples).gates
    # Level 1 logits do not depend on the temperature: g_t is exactly softmax(log g_1 / t) over present entries.
    for e in EXPERTS:
        g1 = outs[1.0][f"modality.{e}"]
        for t in (0.25, 4.0):
            z = torch.where(g1 > 0, g1.clamp_min(1e-30).log() / t, torch.full_like(g1, -1e9))
            expected = torch.softmax(z, -1) * (g1 > 0)
            torch.testing.assert_close(outs[t][f"modality.{e}"], expected, atol=1e-5, rtol=1e-4)
    for key in outs[1.0]:
        assert _entropy(outs[0.25][key]) < _entropy(outs[1.0][key]) < _entropy(outs[4.0][key])


def test_aux_loss_zero_without_weight_positive_and_linear_with_it():
    samples = mixed_samples()
    losses = {}
    for w in (0.0, 0.1, 0.2):
        out = run(build(seed=2, gate_balance_weight=w), samples)
        losses[w] = out.aux_loss
    assert losses[0.0].item() == 0.0
    assert losses[0.1].item() > 0
    assert losses[0.2].item() == pytest.approx(2 * losses[0.1].item(), rel=1e-5)
    assert losses[0.1].requires_grad
    off = run(build(gate_balance_weight=0.5, modality_gating=False, expert_gating=False), samples)
    assert off.aux_loss.item() == 0.0  # uniform gates are perfectly balanced


def test_balance_regulariser_pulls_the_gate_toward_uniform():
    from egmf.model.fusion.gating import HierarchicalGate

    torch.manual_seed(4)
    gate = HierarchicalGate(EXPERTS, d_model=8, hidden=8, temperature=0.5)
    vecs = {e: torch.randn(16, 3, 8) * 3 for e in EXPERTS}
    summary, present = torch.randn(16, 8) * 3, torch.rand(16, 3) > 0.2
    opt = torch.optim.SGD(gate.parameters(), lr=0.5)
    first = gate(vecs, summary, present)[3].item()
    for _ in range(30):
        opt.zero_grad()
        gate(vecs, summary, present)[3].backward()
        opt.step()
    assert first > 0
    assert gate(vecs, summary, present)[3].item() < 0.5 * first
