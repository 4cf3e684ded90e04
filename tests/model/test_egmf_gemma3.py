"""EGMF on the Gemma 3 architecture, tiny and random (the real gemma3-270m loads in the slow tests): what differs
from the llama family is handled. Gemma scales its input embeddings by sqrt(hidden) inside the embedding layer,
so pseudo tokens start at the norm the LLM actually reads; its sliding-window layers keep their own KV cache
layers, and reading the shared prompt prefix once still gives the same loss, gradients and answers."""

from __future__ import annotations

import math

import pytest
import torch

from egmf.data.collate import collate
from egmf.model.egmf import EGMF
from egmf.model.llm import decoding
from egmf.model.llm.backends import build_byte_tokenizer, input_embedding_scale


def tiny_gemma3(seed: int = 0):
    """A 2-layer Gemma3ForCausalLM (one sliding-window layer, one full) with the byte tokenizer."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tok = build_byte_tokenizer()
    tok.padding_side = "left"
    config = Gemma3TextConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=8, sliding_window=512,
        layer_types=["sliding_attention", "full_attention"], max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma3ForCausalLM(config)
    return model.eval(), tok


@pytest.fixture
def gemma_egmf(tiny_config, infos, dims, nonzero_lora):
    def make(**kw):
        llm, tok = tiny_gemma3()
        torch.manual_seed(0)
        return nonzero_lora(EGMF(tiny_config(**kw), infos, dims, llm=llm, tokenizer=tok))

    return make


def test_pseudo_tokens_start_at_the_norm_of_gemmas_scaled_embeddings(gemma_egmf, mixed_batch):
    model = gemma_egmf().eval()
    emb = model.llm.get_input_embeddings()
    assert input_embedding_scale(emb) == pytest.approx(math.sqrt(32))
    with torch.no_grad():
        read = emb(torch.arange(256)).norm(dim=-1).mean()  # what the LLM reads for a word
        tokens = model._fuse(mixed_batch(4)).tokens
    assert float(tokens.norm(dim=-1).mean() / read) == pytest.approx(1.0, abs=0.35)


def test_lora_targets_of_gemma3_are_its_query_and_value_projections(gemma_egmf):
    model = gemma_egmf()
    adapted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in model.llm.named_parameters() if "lora_A" in n}
    assert adapted == {"q_proj", "v_proj"}


def _loss_and_grads(model, batch):
    model.train()
    model.zero_grad()
    loss = model(batch).loss
    loss.backward()
    params = [p for group in model.param_groups().values() for p in group]
    return loss.detach(), [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]


def test_shared_prefix_is_exact_on_gemmas_sliding_window_cache(gemma_egmf, make_sample):
    batch = collate([make_sample(i, "meld") for i in range(4)])
    loss_a, grads_a = _loss_and_grads(gemma_egmf(llm={"share_prefix": False}), batch)
    model = gemma_egmf()
    calls = []
    hook = model.llm.get_decoder().register_forward_pre_hook(
        lambda m, a, kw: calls.append(tuple(kw["inputs_embeds"].shape[:2])), with_kwargs=True)
    loss_b, grads_b = _loss_and_grads(model, batch)
    hook.remove()
    assert calls[0][0] == 1 and len(calls) == 2  # the shared prefix was read once, then the rest
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=0)
    assert any(float(g.abs().sum()) > 0 for g in grads_a)
    for ga, gb in zip(grads_a, grads_b):
        assert float((ga - gb).abs().max()) <= 1e-5 * float(ga.abs().max()) + 1e-10


def test_answers_are_the_same_with_and_without_the_shared_prefix(gemma_egmf, make_sample, monkeypatch):
    model = gemma_egmf().eval()
    batch = collate([make_sample(i, "meld") for i in range(3)] + [make_sample(1, "simsv2")])
    shared, shared_free = model.predict(batch), model.predict(batch, decoding="free")
    monkeypatch.setattr(decoding, "MIN_SHARED_PREFIX", 10**9)
    whole, whole_free = model.predict(batch), model.predict(batch, decoding="free")
    for a, b in zip(shared, whole):
        assert a.prediction == b.prediction
        if a.probabilities:
            assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) < 1e-5
    assert [p.generated for p in shared_free] == [p.generated for p in whole_free]


def test_prompts_longer_than_the_sliding_window_are_refused(tiny_config, infos, dims):
    from egmf.errors import ConfigError

    llm, tok = tiny_gemma3()
    llm.config.sliding_window = 300
    with pytest.raises(ConfigError, match=r"model.prompt.max_prompt_tokens: .*412 tokens.*sliding window of "
                                          r"gemma3_text \(300 tokens\)"):
        EGMF(tiny_config(), infos, dims, llm=llm, tokenizer=tok)  # 400 prompt tokens + 12 new ones
