"""Training with the shared prompt prefix read once per batch (``model.llm.share_prefix``) is exact: the same
loss and the same gradient of every trainable parameter (LoRA and fusion) as reading every row's whole prompt,
in fp32 on the tiny llama, for one dataset and for a batch mixing datasets (a shorter shared prefix), with the
eager and the sdpa attention."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from egmf.data.collate import collate
from egmf.data.schema import DatasetInfo
from egmf.model.egmf import EGMF
from egmf.model.llm import segments

# A second English ERC dataset with its own labels: its prompts share the system message and the start of the
# instruction with MELD's, not the label options.
IEMO = DatasetInfo("iemo", "erc", "en", labels=("happy", "sad", "angry"), metric_family="erc")
KINDS = ("one dataset", "two English datasets", "English and Chinese")


@pytest.fixture
def kit(infos, dims, make_sample, tiny_config, nonzero_lora):
    """``kit.batch(kind)``, ``kit.model(attention='sdpa', **config overrides)`` on the datasets of every kind."""
    all_infos, all_dims = {**infos, "iemo": IEMO}, {**dims, "iemo": dims["meld"]}

    def batch(kind: str, n: int = 4):
        if kind == "English and Chinese":
            return collate([make_sample(i, "meld" if i % 2 == 0 else "simsv2") for i in range(n)])
        samples = [make_sample(i, "meld") for i in range(n)]
        if kind == "two English datasets":
            for i in range(1, n, 2):  # every other row becomes an 'iemo' sample
                samples[i] = dataclasses.replace(samples[i], dataset="iemo", id=f"iemo-{i}",
                                                 label=IEMO.labels[i % 2])
        return collate(samples)

    def model(attention: str = "sdpa", **kw) -> EGMF:
        torch.manual_seed(0)
        model = nonzero_lora(EGMF(tiny_config(**kw), all_infos, all_dims))
        model.llm.get_base_model().set_attn_implementation(attention)
        return model.train()

    return dataclasses.make_dataclass("Kit", ["batch", "model", "make_sample"])(batch, model, make_sample)


def loss_and_grads(model: EGMF, batch):
    model.zero_grad()
    loss = model(batch).loss
    loss.backward()
    params = [p for group in model.param_groups().values() for p in group]
    return loss.detach(), params, [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]


def llm_calls(model: EGMF):
    """Records ``(batch, tokens)`` of every call of the decoder (each segment is one)."""
    calls = []
    hook = model.llm.get_decoder().register_forward_pre_hook(
        lambda m, a, kw: calls.append(tuple(kw["inputs_embeds"].shape[:2])), with_kwargs=True)
    return calls, hook


def assert_same(a, b):
    (loss_a, params, grads_a), (loss_b, _, grads_b) = a, b
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=0)
    assert len(grads_a) == len(grads_b) > 0
    for p, ga, gb in zip(params, grads_a, grads_b):
        # Relative to the tensor's largest entry (fp32 sums in another order move small entries by more than
        # 1e-5 of themselves); the 1e-10 floor covers parameters whose gradient is rounding noise on both sides.
        err = float((ga - gb).abs().max())
        assert err <= 1e-5 * float(ga.abs().max()) + 1e-10, (tuple(p.shape), err, float(ga.abs().max()))
    assert any(g.abs().sum() > 0 for g in grads_a)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("kind", KINDS)
def test_shared_prefix_training_gives_the_same_loss_and_gradients(kit, kind, attention):
    batch = kit.batch(kind)
    plain = loss_and_grads(kit.model(attention, llm={"share_prefix": False}), batch)
    model = kit.model(attention)
    assert model.cfg.llm.share_prefix  # the default
    calls, hook = llm_calls(model)
    shared = loss_and_grads(model, batch)
    hook.remove()
    assert len(calls) == 2 and calls[0][0] == 1 and calls[0][1] >= segments.MIN_SHARED_PREFIX, calls
    assert calls[1][0] == len(batch.samples)
    assert_same(plain, shared)


def test_shared_prefix_is_shorter_across_datasets_and_stops_before_the_pseudo_slot(kit):
    model = kit.model()
    lengths = {}
    for kind in KINDS:
        batch = kit.batch(kind)
        eb = model._encode(batch.samples, with_target=True)
        prefix, cut = model._segments(eb, model._embeds(eb, model._fuse(batch)))
        start = eb.input_ids.shape[1] - eb.attention_mask.sum(1)
        assert cut is None and 0 < prefix <= int((eb.pseudo_index[:, 0] - start).min())
        lengths[kind] = prefix
    assert lengths["one dataset"] > lengths["two English datasets"] > lengths["English and Chinese"]


def test_identical_rows_share_no_answer_token(kit):
    """The text-only model (no pseudo tokens) on copies of one sample: rows agree up to the answer, and the
    shared part still ends before the column whose logits predict it."""
    sample = kit.make_sample(3, "meld")
    batch = collate([sample, dataclasses.replace(sample, id="copy")])
    plain = loss_and_grads(kit.model(use_fusion=False, llm={"share_prefix": False}), batch)
    model = kit.model(use_fusion=False)
    eb = model._encode(batch.samples, with_target=True)
    prefix, _ = model._segments(eb, model._embeds(eb, None))
    assert prefix == eb.prompt_lens[0] - 1
    assert_same(plain, loss_and_grads(model, batch))


def test_no_sharing_under_gradient_checkpointing_which_drops_the_cache(kit):
    model = kit.model(llm={"gradient_checkpointing": True})
    batch = kit.batch("one dataset")
    eb = model._encode(batch.samples, with_target=True)
    assert model._segments(eb, model._embeds(eb, model._fuse(batch))) == (0, None)


def test_expanded_cache_is_a_view_and_sums_gradients_over_rows():
    from transformers import DynamicCache

    keys = torch.randn(1, 2, 5, 4, requires_grad=True)
    cache = DynamicCache()
    cache.update(keys, keys * 2, 0)
    segments.expand_cache(cache, 3)
    layer = cache.layers[0]
    assert layer.keys.shape == (3, 2, 5, 4) and layer.keys.stride(0) == 0  # expanded, not copied
    layer.keys.sum().backward()
    assert torch.equal(keys.grad, torch.full_like(keys, 3.0))
