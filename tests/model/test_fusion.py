"""Tests of the expert fusion (egmf.model.fusion) on tiny models and generated features.

Run: .venv/bin/python -m pytest tests/model/test_fusion.py -q
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from egmf.data.collate import collate
from egmf.data.schema import MODALITIES, Sample
from egmf.errors import ConfigError
from egmf.model.fusion import EXPERTS, ExpertFusion, FusionConfig

# Two sources whose dims differ in every modality, one of them without text features (like MMSA audio/vision
# with text from the LLM); small so the whole file stays fast.
DIMS = {"alpha": {"text": 12, "audio": 5, "vision": 7}, "beta": {"text": 0, "audio": 9, "vision": 4}}
OUT = 24
TINY = dict(d_model=16, n_heads=2, gate_hidden=8, dropout=0.0, global_layers=1)

EXPERT_SETS = [c for r in (1, 2, 3) for c in itertools.combinations(EXPERTS, r)]
GATING = list(itertools.product([True, False], repeat=2))
SWITCH_CASES = [
    (experts, mg, eg, (1, 4, 8)[i % 3], ("mask", "learned")[i % 2])
    for i, (experts, (mg, eg)) in enumerate(itertools.product(EXPERT_SETS, GATING))
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, one thread


def cfg(**kw) -> FusionConfig:
    return FusionConfig(**{**TINY, **kw})


def expert_switches(experts) -> dict:
    return {f"use_{e}": e in experts for e in EXPERTS}


def build(seed=0, dims=DIMS, out_dim=OUT, target_norm=None, **kw) -> ExpertFusion:
    torch.manual_seed(seed)
    return ExpertFusion(cfg(**kw), dims, out_dim, target_norm=target_norm).eval()


def sample(rng, source, lengths, missing=()) -> Sample:
    """A sample of ``source`` with ``lengths[m]`` frames per modality; ``missing`` modalities are None."""
    feats = {}
    for m in MODALITIES:
        d = DIMS[source][m]
        feats[m] = None if d == 0 or m in missing else rng.standard_normal((lengths[m], d)).astype(np.float32)
    return Sample(id=f"{source}-{rng.integers(1e9)}", text="hi", label=0.0, dataset=source, task="msa",
                  lang="en", text_feats=feats["text"], audio=feats["audio"], vision=feats["vision"])


def mixed_samples(seed=0) -> list[Sample]:
    """Mixed sources, lengths on both sides of max_frames=6, and a sample missing audio."""
    rng = np.random.default_rng(seed)
    return [
        sample(rng, "alpha", {"text": 3, "audio": 11, "vision": 2}),
        sample(rng, "beta", {"text": 0, "audio": 4, "vision": 9}),
        sample(rng, "alpha", {"text": 8, "audio": 1, "vision": 6}, missing=("audio",)),
        sample(rng, "alpha", {"text": 1, "audio": 6, "vision": 13}),
    ]


def run(fusion, samples):
    return fusion.forward_batch(collate(samples))


# --- shapes and gates for every switch ---------------------------------------------------------------


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


# --- masks: padding, missing modalities, mixed sources -----------------------------------------------


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


def test_learned_placeholder_trains_when_a_modality_is_missing():
    fusion = build(missing_modality="learned").train()
    out = run(fusion, mixed_samples())
    (out.tokens * torch.randn_like(out.tokens)).sum().backward()
    grad = fusion.encoders.placeholder.grad
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0  # text (beta), audio (sample 2)
    assert grad[2].abs().sum() == 0  # every sample has vision


def test_mixed_sources_use_their_own_projection():
    fusion = build()
    rng = np.random.default_rng(3)
    s = sample(rng, "beta", {"text": 0, "audio": 5, "vision": 5})
    with torch.no_grad():
        before = run(fusion, [s]).tokens
        fusion.encoders.proj["alpha__audio"].weight.mul_(3.0)  # alpha's projection must not touch beta
        after = run(fusion, [s]).tokens
        fusion.encoders.proj["beta__audio"].weight.mul_(3.0)
        changed = run(fusion, [s]).tokens
    torch.testing.assert_close(before, after, atol=0, rtol=0)
    assert not torch.allclose(before, changed)


def test_unknown_source_lists_known_ones():
    fusion = build()
    batch = collate(mixed_samples())
    with pytest.raises(ConfigError, match=r"unknown source \['gamma'\].*built for: alpha, beta"):
        fusion(batch.features, batch.masks, ["alpha", "gamma", "alpha", "beta"])


def test_frames_for_a_modality_the_source_lacks_is_an_error():
    fusion = build()
    batch = collate(mixed_samples())
    batch.masks["text"][1, 0] = True  # beta declares text dim 0
    with pytest.raises(ConfigError, match=r"source 'beta' declares no text features"):
        fusion.forward_batch(batch)


@pytest.mark.parametrize(
    "dims,match",
    [
        ({}, "at least one source"),
        ({"a": {"txt": 3}}, r"unknown modality \['txt'\]; valid choices: text, audio, vision"),
        ({"a": {"text": 0, "audio": 0}}, "every modality has dim 0"),
        ({"a": {"audio": -1, "text": 3}}, "expected dims >= 0"),
        ({"a.b": {"audio": 3}, "a_b": {"audio": 3}}, "collide"),
    ],
)
def test_bad_feature_dims(dims, match):
    with pytest.raises(ConfigError, match=match):
        ExpertFusion(cfg(), dims, OUT)


# --- gating --------------------------------------------------------------------------------------


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


# --- training behaviour --------------------------------------------------------------------------


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


def test_target_norm_sets_token_norm():
    fusion = build(target_norm=0.7)
    with torch.no_grad():
        out = run(fusion, mixed_samples())
    torch.testing.assert_close(out.tokens.norm(dim=-1), torch.full(out.tokens.shape[:2], 0.7), atol=1e-3, rtol=0)
    plain = build()
    with torch.no_grad():
        norms = run(plain, mixed_samples()).tokens.norm(dim=-1)
    torch.testing.assert_close(norms, torch.full_like(norms, math.sqrt(OUT)), atol=1e-2, rtol=0)


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


# --- config --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(missing_modality="zero"), r"fusion.missing_modality: invalid value 'zero'; valid choices: mask, learned"),
        (dict(use_local=False, use_semantic=False, use_global=False), "at least one of use_local, use_semantic"),
        (dict(d_model=10, n_heads=4), "not divisible by fusion.n_heads=4"),
        (dict(dropout=1.0), r"dropout: expected a value in \[0, 1\)"),
        (dict(local_kernel_sizes=(1, 2)), "odd positive ints"),
        (dict(local_kernel_sizes=()), "odd positive ints"),
        (dict(gate_temperature=0.0), "gate_temperature: expected a value > 0"),
        (dict(gate_balance_weight=-0.1), "gate_balance_weight: expected a value >= 0"),
        (dict(num_pseudo_tokens=0), "num_pseudo_tokens: expected an int >= 1"),
        (dict(max_frames_per_modality=0), "max_frames_per_modality: expected an int >= 1 or null"),
        (dict(global_layers=True), "global_layers: expected an int >= 1"),
    ],
)
def test_bad_config_raises_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FusionConfig(**kwargs)


def test_config_accepts_yaml_lists_and_reports_active_experts():
    c = FusionConfig(local_kernel_sizes=[3, 7], use_semantic=False)
    assert c.local_kernel_sizes == (3, 7)
    assert c.active_experts == ("local", "global")


def test_bad_out_dim():
    with pytest.raises(ValueError, match="out_dim must be an int >= 1"):
        ExpertFusion(cfg(), DIMS, 0)


# --- helpers -------------------------------------------------------------------------------------


def test_masked_adaptive_pool_averages_real_frames_only():
    from egmf.model.fusion.encoders import masked_adaptive_pool

    x = torch.arange(16, dtype=torch.float32).view(2, 8, 1)
    mask = torch.tensor([[True] * 6 + [False] * 2, [True] * 3 + [False] * 5])
    x[0, 6:] = 99.0  # padding values must never leak into a bin
    pooled, pmask = masked_adaptive_pool(x, mask, 3)
    # 6 real frames -> 3 bins of 2; 3 real frames (<= 3) are kept as they are
    torch.testing.assert_close(pooled[..., 0], torch.tensor([[0.5, 2.5, 4.5], [8.0, 9.0, 10.0]]))
    assert pmask.all()
    pooled, pmask = masked_adaptive_pool(x, mask, 4)  # frame r goes to bin floor(r * 4 / 6): [0, 1], [2], [3, 4], [5]
    torch.testing.assert_close(pooled[0, :, 0], torch.tensor([0.5, 2.0, 3.5, 5.0]))
    assert pmask[1].tolist() == [True, True, True, False]
