"""LoRA wrapping (egmf.model.llm.lora): default targets per family, what trains, gradient checkpointing."""

from __future__ import annotations

import pytest
import torch

from egmf.errors import ConfigError
from egmf.model.llm.backends import build_tiny_llm
from egmf.model.llm.config import LoraSettings
from egmf.model.llm.lora import DEFAULT_TARGETS, default_targets, lora_parameters, wrap_with_lora


# -- LoRA -------------------------------------------------------------------------------------------------
def test_default_targets_per_family_and_unknown_family():
    model, _ = build_tiny_llm(32, 1)
    assert default_targets(model) == ("q_proj", "v_proj") == DEFAULT_TARGETS["qwen2"] == DEFAULT_TARGETS["gemma3_text"]
    model.config.model_type = "mamba"
    with pytest.raises(ConfigError, match=r"no default for model family 'mamba'; set it explicitly .*llama"):
        default_targets(model)


@pytest.mark.parametrize("r, targets, n_adapted", [(4, None, 2), (2, ("q_proj", "k_proj", "v_proj", "o_proj"), 4)])
def test_lora_trains_only_adapters(r, targets, n_adapted):
    model, _ = build_tiny_llm(32, 2)
    n_base = sum(p.numel() for p in model.parameters())
    wrapped = wrap_with_lora(model, LoraSettings(r=r, target_modules=targets))
    trainable = dict((n, p) for n, p in wrapped.named_parameters() if p.requires_grad)
    assert trainable and all("lora_" in n for n in trainable)
    assert len(trainable) == 2 * n_adapted * 2  # A and B, per adapted module, per layer (2 layers)
    a = next(p for n, p in trainable.items() if "lora_A" in n)
    assert a.shape[0] == r
    assert sum(p.numel() for n, p in wrapped.named_parameters() if "lora_" not in n) == n_base
    assert lora_parameters(wrapped) == list(trainable.values())


def test_lora_rank_zero_freezes_everything_and_bad_target_is_listed():
    model, _ = build_tiny_llm(32, 1)
    frozen = wrap_with_lora(model, LoraSettings(r=0))
    assert frozen is model and lora_parameters(frozen) == []
    model, _ = build_tiny_llm(32, 1)
    with pytest.raises(ConfigError, match=r"\['qkv'\] not found in LlamaForCausalLM; valid choices include: .*q_proj"):
        wrap_with_lora(model, LoraSettings(target_modules=("qkv",)))


def test_gradient_checkpointing_keeps_input_gradients():
    model, _ = build_tiny_llm(32, 2)
    wrapped = wrap_with_lora(model, LoraSettings(r=2), gradient_checkpointing=True)
    wrapped.train()
    embeds = torch.randn(2, 5, 32, requires_grad=True)
    out = wrapped(inputs_embeds=embeds, attention_mask=torch.ones(2, 5, dtype=torch.long))
    out.logits.sum().backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0
    assert all(p.grad is not None for p in lora_parameters(wrapped))
