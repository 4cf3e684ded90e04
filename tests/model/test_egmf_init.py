"""EGMF at step 0: pseudo tokens on the embedding distribution and distinct, a closed visibility gate that makes
EGMF its text-only LLM (``llm_text``), gradients that still reach the fusion, and the gate's bias honoured by every
path (one pass, shared prefix, constrained and free decoding).

Run: OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/model/test_egmf_init.py -q -p no:cacheprovider
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from egmf.data.collate import collate
from egmf.errors import ConfigError
from egmf.model.config import ModelConfig
from egmf.model.egmf import EGMF, SlotVisibility, anchor_rows
from egmf.model.llm.backends import load_llm
from egmf.model.llm.prompts import IGNORE


def _pairwise_cos(tokens: torch.Tensor) -> float:
    """Mean off-diagonal cosine between the K slots of each sample, averaged over the batch."""
    t = F.normalize(tokens.float(), dim=-1)
    c = t @ t.transpose(1, 2)
    k = c.shape[-1]
    return float((c.sum((1, 2)) - c.diagonal(dim1=1, dim2=2).sum(-1)).mean() / (k * (k - 1)))


def anisotropic(cfg: ModelConfig, offset: float = 1.5):
    """The tiny LLM with a common vector added to every word embedding, so real tokens have cosine ~0.8 with
    the mean embedding as SmolLM2's do (~0.66): a random init is isotropic and would hide the difference."""
    llm, tok = load_llm(cfg.llm)
    with torch.no_grad():
        w = llm.get_input_embeddings().weight
        direction = torch.randn(w.shape[1], generator=torch.Generator().manual_seed(3))
        w += offset * float(w.norm(dim=-1).mean()) * direction / direction.norm()
    return llm, tok


def init_stats(model: EGMF, batch) -> dict[str, float]:
    w = model.llm.get_input_embeddings().weight.detach().float()
    mean = w.mean(0)
    with torch.no_grad():
        tokens = model._fuse(batch).tokens
    rows = w[torch.randperm(len(w), generator=torch.Generator().manual_seed(0))[:64]]
    return {
        "slot_slot": _pairwise_cos(tokens),
        "slot_slot_centred": _pairwise_cos(tokens - mean),
        "real_real": _pairwise_cos(rows[None]),
        "slot_mean": float(F.cosine_similarity(tokens.flatten(0, 1), mean[None], dim=-1).mean()),
        "real_mean": float(F.cosine_similarity(w, mean[None], dim=-1).mean()),
    }


@pytest.mark.parametrize("pseudo_init", ["anchored", "plain"])
def test_pseudo_tokens_start_distinct_and_on_the_embedding_distribution(tiny_config, infos, dims, mixed_batch,
                                                                        pseudo_init):
    cfg = tiny_config(pseudo_init=pseudo_init, fusion={"num_pseudo_tokens": 4})
    llm, tok = anisotropic(cfg)
    torch.manual_seed(0)
    model = EGMF(cfg, infos, dims, llm=llm, tokenizer=tok).eval()
    s = init_stats(model, mixed_batch(6))
    if pseudo_init == "anchored":
        # Measured: cosine with the mean embedding 0.81 (real tokens 0.83); slot-to-slot 0.78 (two random real
        # tokens: 0.69, the shared mean direction), 0.36 once the mean embedding is taken out; 0.999 before.
        assert abs(s["slot_mean"] - s["real_mean"]) < 0.1, s
        assert s["slot_slot"] < s["real_real"] + 0.15, s
        assert s["slot_slot_centred"] < 0.5, s
    else:  # the original tokens, kept reachable: off the distribution and copies of each other
        assert s["slot_mean"] < s["real_mean"] - 0.4, s
        assert s["slot_slot"] > 0.95 and s["slot_slot_centred"] > 0.95, s


def test_anchor_rows_are_distinct_typical_and_leave_out_special_tokens():
    w = torch.randn(100, 8)
    w[:10] += 50.0  # atypical rows: far from the mean direction of the rest
    ids = anchor_rows(w, 6, exclude=(10, 11, 12))
    assert len(set(ids.tolist())) == 6
    assert not set(ids.tolist()) & {10, 11, 12}
    assert torch.equal(ids, anchor_rows(w, 6, exclude=(10, 11, 12)))  # seeded
    with pytest.raises(ConfigError, match="typical tokens"):
        anchor_rows(w, 90)


def _llm_text_and_egmf(build, **kw):
    return build(use_fusion=False), build(**kw)


@pytest.mark.parametrize("share_prefix", [True, False])
def test_at_init_egmf_is_its_text_only_llm(build, mixed_batch, share_prefix):
    """Same base LLM (seeded) and LoRA init (B = 0): the only difference is the K slots, which the closed gate
    hides and whose positions the text does not count. Exact as g -> -inf (here -30: 1e-7 on logits); at the
    default g = -6 the slots leak sigmoid(-6) = 0.25% of an ordinary key's weight: measured 7e-6 on the logits
    and 2e-6 on the loss, about 1/400 of what the same slots change when open."""
    batch = mixed_batch(6)
    llm = {"share_prefix": share_prefix}
    text = build(use_fusion=False, llm=llm)
    with torch.no_grad():
        ref = text.score(batch)
        ref_loss = text(batch).task_loss

        def deviation(**kw):
            s = build(llm=llm, **kw).score(batch)
            n = ref.logits.shape[1]
            return float((s.logits[:, -n:] - ref.logits).abs().max()), s

        closed, _ = deviation(pseudo_gate_init=-30.0)
        default, s = deviation()
        opened, _ = deviation(pseudo_visibility="open")
        loss = build(llm=llm)(batch).task_loss
    assert torch.equal(s.targets[:, -ref.targets.shape[1]:], ref.targets)
    assert closed < 1e-5
    assert default < 1e-4 and default < 0.01 * opened, (default, opened)
    assert abs(float(loss - ref_loss)) < 1e-4


def test_closed_slots_take_no_position_and_the_text_keeps_llm_texts_positions(build, mixed_batch):
    batch = mixed_batch(4)
    text, egmf = _llm_text_and_egmf(build)
    a = text._encode(batch.samples, True)
    b = egmf._encode(batch.samples, True)
    k = egmf.num_pseudo
    for i in range(len(batch.samples)):
        real_a = a.position_ids[i][a.attention_mask[i].bool()]
        keep = b.attention_mask[i].bool().clone()
        slots = b.pseudo_index[i]
        keep[slots] = False
        assert torch.equal(b.position_ids[i][keep], real_a)  # the text: positions as without slots
        after = b.position_ids[i][slots[-1] + 1]
        assert b.position_ids[i][slots].tolist() == [int(after)] * k  # each slot: the next text token's position
    open_model = build(pseudo_visibility="open")
    c = open_model._encode(batch.samples, True)
    assert torch.equal(c.position_ids, (c.attention_mask.cumsum(-1) - 1).clamp(min=0))  # 'open': slots count


def test_gradients_reach_the_fusion_and_the_gate_at_init(build, mixed_batch):
    model = build().train()
    model(mixed_batch()).loss.backward()
    theta = model.visibility.theta.grad
    assert theta is not None and torch.isfinite(theta).all() and (theta.abs() > 0).all()
    for name in model.cfg.fusion.active_experts:
        grads = [p.grad for p in model.fusion.experts[name].parameters() if p.grad is not None]
        # scaled by the leak sigmoid(-6), yet far above Adam's eps (1e-8): the optimiser sees the direction
        assert grads and max(float(g.abs().max()) for g in grads) > 1e-7, name
    assert model.fusion.projector.anchors.grad.abs().sum() > 0
    assert model.visibility in [m for m in model.modules()]
    assert any(p is model.visibility.theta for p in model.param_groups()["fusion"])


def test_the_gate_opens_under_adam_within_a_hundred_steps_when_the_loss_asks():
    gate = SlotVisibility(3, -6.0)
    opt = torch.optim.Adam(gate.parameters(), lr=1e-3)
    for _ in range(100):
        opt.zero_grad()
        (-gate().sum()).backward()  # a loss that wants the slots seen
        opt.step()
    assert float(gate.logits().detach().min()) > -1.5  # from -6: RATE makes a logit move ~0.05 per step


def test_gate_state_round_trips_and_a_checkpoint_without_it_is_refused(build, mixed_batch):
    model = build()
    with torch.no_grad():
        model.visibility.theta.fill_(0.05)
    state = model.trainable_state_dict()
    assert "visibility.theta" in state
    other = build()
    other.load_trainable_state_dict(state)
    assert other.pseudo_visibility() == pytest.approx(model.pseudo_visibility())
    assert model.pseudo_visibility()[0] == pytest.approx(float(torch.sigmoid(torch.tensor(-6.0 + 2.5))), rel=1e-5)
    with pytest.raises(ConfigError, match="missing"):
        other.load_trainable_state_dict({k: v for k, v in state.items() if not k.startswith("visibility.")})


def _sequence_logp(model: EGMF, sample, label) -> float:
    s = model.score(collate([dataclasses.replace(sample, label=label)]))
    return -float(s.token_loss.sum())


@pytest.mark.parametrize("share_prefix", [True, False])
def test_constrained_decoding_honours_the_gate_like_the_training_path(build, make_sample, share_prefix):
    """Open-ish gate (g = 0) so the slots matter: the decoder's label probabilities (custom 4-D mask, shared
    prefix, KV cache) equal the softmax of the training path's teacher-forced sequence log-likelihoods."""
    model = build(pseudo_gate_init=0.0, label_scoring="sum", llm={"share_prefix": share_prefix})
    samples = [make_sample(i, "meld") for i in (0, 2, 4)]
    with torch.no_grad():
        preds = model.predict(collate(samples))
        for p, s in zip(preds, samples):
            labels = model.infos["meld"].labels
            expected = torch.tensor([_sequence_logp(model, s, lab) for lab in labels]).softmax(-1)
            got = torch.tensor([p.probabilities[lab] for lab in labels])
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_free_and_regression_decoding_with_the_gate_match_without_prefix_sharing(build, mixed_batch):
    batch = mixed_batch(4)
    with torch.no_grad():
        a = build(pseudo_gate_init=0.0).predict(batch, "free")
        model = build(pseudo_gate_init=0.0)
        from egmf.model.llm import decoding

        eb = model._encode(batch.samples, with_target=False)
        embeds = model._embeds(eb, model._fuse(batch))
        bias = model.key_bias(eb)
        args = (model.llm, embeds, eb.attention_mask, eb.position_ids, model.tokenizer, 6)
        shared = decoding.greedy_decode(*args, key_bias=bias, share_prefix=True)
        alone = decoding.greedy_decode(*args, key_bias=bias, share_prefix=False)
    assert shared == alone
    assert all(p.dataset in ("meld", "simsv2") for p in a)
    # Bias 0 everywhere is the unbiased decoder.
    with torch.no_grad():
        plain = decoding.greedy_decode(*args, share_prefix=False)
        zero = decoding.greedy_decode(*args, key_bias=torch.zeros_like(bias), share_prefix=False)
    assert plain == zero


def test_teacher_forced_targets_are_unchanged_by_the_gate(build, mixed_batch):
    batch = mixed_batch(3)
    with torch.no_grad():
        gated, opened = build().score(batch), build(pseudo_visibility="open").score(batch)
    assert torch.equal(gated.targets, opened.targets)
    assert int((gated.targets != IGNORE).sum()) > 0


def test_config_checks_the_new_fields(tiny_config):
    with pytest.raises(ConfigError, match="pseudo_visibility"):
        tiny_config(pseudo_visibility="closed")
    with pytest.raises(ConfigError, match="pseudo_residual_scale"):
        tiny_config(pseudo_residual_scale=0.0)
    with pytest.raises(ConfigError, match="pseudo_gate_init"):
        tiny_config(pseudo_gate_init=-100.0)
    assert ModelConfig().pseudo_init == "anchored" and ModelConfig().pseudo_visibility == "gated"
