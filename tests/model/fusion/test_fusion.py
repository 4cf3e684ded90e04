"""``ExpertFusion`` (egmf.model.fusion.fusion) on tiny models and generated features: every switch,
padding invariance, gradients, autocast, seeds.

Run: .venv/bin/python -m pytest tests/model/fusion -q
"""

from __future__ import annotations

import itertools

import pytest
import torch

from egmf.data.collate import collate
from egmf.data.schema import MODALITIES
from egmf.model.fusion import EXPERTS, ExpertFusion

from .conftest import DIMS, OUT, build, cfg, expert_switches, mixed_samples, run


EXPERT_SETS = [c for r in (1, 2, 3) for c in itertools.combinations(EXPERTS, r)]
GATING = list(itertools.product([True, False], repeat=2))
SWITCH_CASES = [
    (experts, mg, eg, (1, 4, 8)[i % 3], ("mask", "learned")[i % 2])
    for i, (experts, (mg, eg)) in enumerate(itertools.product(EXPERT_SETS, GATING))
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, one thread


@pytest.mark.parametrize("experts,modality_gating,expert_gating,k,missing", SWITCH_CASES)
def test_shapes_and_gates_for_every_switch(experts, modality_gating, expert_gating, k, missing):
    fusion = build(**expert_switches(experts), modality_gating=modality_gating, expert_gating=expert_gating,
                   num_pseudo_tokens=k, missing_modality=missing, max_frames_per_modality=6)
    samples = mixed_samples()
    with torch.no_grad():
        out = run(fusion, samples)
    b = len(samples)
    assert out.tokens.shape == (b, k, OUT)
    assert torch.isfinite(out.tokens).all()
    assert out.expert_names == experts
    assert set(out.gates) == {"expert"} | {f"modality.{e}" for e in experts}
    assert out.gates["expert"].shape == (b, len(experts))
    torch.testing.assert_close(out.gates["expert"].sum(-1), torch.ones(b))
    for e in experts:
        w = out.gates[f"modality.{e}"]
        assert w.shape == (b, 3)
        torch.testing.assert_close(w.sum(-1), torch.ones(b))
        # beta has no text; sample 2 has no audio: exactly zero weight
        assert w[1, 0] == 0 and w[2, 1] == 0
    assert out.aux_loss is not None and out.aux_loss.shape == ()


@pytest.mark.parametrize("k", [1, 4, 8])
def test_tokens_depend_on_the_sample_for_every_k(k):
    fusion = build(num_pseudo_tokens=k)
    with torch.no_grad():
        out = run(fusion, mixed_samples())
    assert out.tokens.shape[1] == k
    # pseudo tokens carry the features: two different samples never give the same tokens
    assert not torch.allclose(out.tokens[0], out.tokens[3], atol=1e-3)


@pytest.mark.parametrize(
    "experts,missing,max_frames",
    [((e,), "mask", 6) for e in EXPERTS] + [(EXPERTS, "learned", 6), (EXPERTS, "mask", None)],
)
def test_padding_never_changes_a_sample(experts, missing, max_frames):
    fusion = build(**expert_switches(experts), missing_modality=missing, max_frames_per_modality=max_frames)
    samples = mixed_samples()
    with torch.no_grad():
        batched = run(fusion, samples)
        for i, s in enumerate(samples):
            alone = run(fusion, [s])
            torch.testing.assert_close(batched.tokens[i : i + 1], alone.tokens, atol=1e-5, rtol=0)
            for key, g in batched.gates.items():
                torch.testing.assert_close(g[i : i + 1], alone.gates[key], atol=1e-5, rtol=0)


def test_a_sample_with_no_modality_at_all_stays_finite():
    fusion = build()
    batch = collate(mixed_samples())
    for m in MODALITIES:
        batch.masks[m][1] = False
        batch.features[m][1] = 0.0
    with torch.no_grad():
        out = fusion.forward_batch(batch)
    assert torch.isfinite(out.tokens).all()
    for e in EXPERTS:
        assert out.gates[f"modality.{e}"][1].abs().sum() == 0


@pytest.mark.parametrize("missing", ["mask", "learned"])
def test_gradients_reach_every_expert_and_gate(missing):
    fusion = build(missing_modality=missing).train()
    out = run(fusion, mixed_samples())
    torch.manual_seed(0)
    # A LayerNorm output sums to a constant, so project on random directions instead of summing.
    loss = (out.tokens * torch.randn_like(out.tokens)).sum()
    loss.backward()
    for prefix in ("experts.", "gate.", "projector.", "encoders.modality_type", "encoders.norm"):
        params = [(n, p) for n, p in fusion.named_parameters() if n.startswith(prefix)]
        assert params, prefix
        for n, p in params:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
    for key in ("alpha__text", "alpha__audio", "alpha__vision", "beta__audio", "beta__vision"):
        assert fusion.encoders.proj[key].weight.grad.abs().sum() > 0, key


def test_runs_under_bf16_autocast():
    """The LLM trains fastest on these CPUs under bf16 autocast; the fusion must survive it, masks and all."""
    fusion = build().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run(fusion, mixed_samples())
    assert torch.isfinite(out.tokens).all()
    assert out.gates["modality.local"][2, 1] == 0
    (out.tokens.float() * torch.randn(out.tokens.shape)).sum().backward()
    grads = [p.grad for p in fusion.experts.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_same_seed_same_model_and_outputs():
    samples = mixed_samples()
    outs = []
    for _ in range(2):
        fusion = build(seed=7, dropout=0.2).train()
        torch.manual_seed(11)  # dropout masks
        outs.append(run(fusion, samples).tokens)
    torch.testing.assert_close(outs[0], outs[1], atol=0, rtol=0)
    other = build(seed=8)
    with torch.no_grad():
        assert not torch.allclose(run(other, samples).tokens, run(build(seed=7), samples).tokens)


def test_bad_out_dim():
    with pytest.raises(ValueError, match="out_dim must be an int >= 1"):
        ExpertFusion(cfg(), DIMS, 0)
