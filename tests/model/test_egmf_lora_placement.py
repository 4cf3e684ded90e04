"""LoRA on the upper layers only (``model.lora.layers_from``): the lower layers carry no adapter, gradients
still reach the fusion and the upper adapters, and reading the tokens before the pseudo slot apart without a
gradient through the lower layers (``model.lora.lower_layers_no_grad``) gives the same loss and gradients as
one plain pass, with and without the shared prefix."""

from __future__ import annotations

import pytest
import torch

from egmf.data.collate import collate
from egmf.errors import ConfigError
from egmf.model.egmf import EGMF
from egmf.model.llm.config import LoraSettings

LAYERS = 3


@pytest.fixture
def upper(infos, dims, tiny_config, nonzero_lora):
    """``upper(layers_from=2, **lora/llm overrides)``: the tiny EGMF (3 layers) with nonzero LoRA B, training."""

    def make(layers_from: int = 2, share_prefix: bool = True, no_grad: bool = True) -> EGMF:
        torch.manual_seed(0)
        cfg = tiny_config(llm={"tiny_layers": LAYERS, "share_prefix": share_prefix},
                          lora={"layers_from": layers_from, "lower_layers_no_grad": no_grad})
        return nonzero_lora(EGMF(cfg, infos, dims)).train()

    return make


@pytest.fixture
def meld_batch(make_sample):
    return collate([make_sample(i, "meld") for i in range(4)])


def loss_and_grads(model: EGMF, batch):
    model.zero_grad()
    loss = model(batch).loss
    loss.backward()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return loss.detach(), {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in named}


def layer_of(name: str) -> int:
    return int(name.split(".layers.")[1].split(".")[0])


def test_lower_layers_carry_no_lora_and_gradients_reach_fusion_and_upper_lora(upper, meld_batch):
    model = upper(layers_from=2)
    lora = [n for n, _ in model.llm.named_parameters() if "lora_" in n]
    assert lora and {layer_of(n) for n in lora} == {2}
    assert all(not p.requires_grad for n, p in model.llm.named_parameters() if "lora_" not in n)
    _, grads = loss_and_grads(model, meld_batch)
    assert all(grads[n].abs().sum() > 0 for n in grads if "lora_" in n)
    fusion = {n: g for n, g in grads.items() if n.startswith("fusion.")}
    assert fusion and sum(float(g.abs().sum()) for g in fusion.values()) > 0


@pytest.mark.parametrize("share_prefix", [True, False])
@pytest.mark.parametrize("layers_from", [1, 2])
def test_no_grad_shortcut_gives_the_same_loss_and_gradients(upper, meld_batch, layers_from, share_prefix):
    loss_a, plain = loss_and_grads(upper(layers_from, share_prefix=False, no_grad=False), meld_batch)
    loss_b, fast = loss_and_grads(upper(layers_from, share_prefix=share_prefix), meld_batch)
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=0)
    assert plain.keys() == fast.keys()
    for name in plain:
        err = float((plain[name] - fast[name]).abs().max())
        assert err <= 1e-5 * float(plain[name].abs().max()) + 1e-10, (name, err)


def test_lower_layers_record_no_graph_for_the_tokens_before_the_pseudo_slot(upper, meld_batch):
    model = upper(layers_from=2)
    layers = model.llm.get_decoder().layers
    seen: dict[int, list[bool]] = {0: [], 2: []}
    hooks = [layers[i].register_forward_hook(lambda m, a, out, i=i: seen[i].append(
        (out[0] if isinstance(out, tuple) else out).requires_grad)) for i in seen]
    model(meld_batch).loss.backward()
    for h in hooks:
        h.remove()
    # segments: the shared prefix (batch 1), the rest before the pseudo slot, then from the pseudo slot on
    assert seen[0] == [False, False, True]  # below the first LoRA layer only the last segment needs a graph
    assert seen[2] == [True, True, True]  # LoRA acts on every token from layer 2 on


def test_default_is_every_layer_and_bad_values_are_refused(upper):
    assert LoraSettings().layers_from == 0
    model = upper(layers_from=0)
    assert {layer_of(n) for n, _ in model.llm.named_parameters() if "lora_" in n} == set(range(LAYERS))
    with pytest.raises(ConfigError, match="layers_from"):
        LoraSettings(layers_from=-1)
    with pytest.raises(ConfigError, match="0..2"):
        upper(layers_from=LAYERS)
