"""Frozen base weights in bf16 (``model.llm.frozen_dtype``): only frozen linear layers are cast, checkpoints
stay fp32, and under bf16 autocast the loss and the answers match the fp32-weight model."""

from __future__ import annotations

import pytest
import torch

from egmf.data.collate import collate
from egmf.errors import ConfigError
from egmf.model.egmf import EGMF
from egmf.model.llm.config import LLMConfig
from egmf.model.llm.precision import resolve_frozen_dtype


@pytest.fixture
def bf16_pair(infos, dims, tiny_config):
    """The same tiny EGMF under bf16 autocast with fp32 frozen weights and with bf16 ones."""

    def make(frozen: str) -> EGMF:
        torch.manual_seed(0)
        return EGMF(tiny_config(llm={"autocast": "bf16", "frozen_dtype": frozen}), infos, dims).train()

    return make("float32"), make("auto")


def test_auto_means_bf16_only_under_bf16_autocast_and_bf16_needs_autocast():
    assert LLMConfig().frozen_dtype == "auto" and resolve_frozen_dtype(LLMConfig()) is None
    assert resolve_frozen_dtype(LLMConfig(autocast="bf16")) is torch.bfloat16
    assert resolve_frozen_dtype(LLMConfig(autocast="bf16", frozen_dtype="float32")) is None
    assert resolve_frozen_dtype(LLMConfig(autocast="bf16", dtype="bfloat16")) is None  # already loaded in bf16
    with pytest.raises(ConfigError, match="autocast"):
        LLMConfig(frozen_dtype="bfloat16")
    with pytest.raises(ConfigError, match="valid choices: auto, float32, bfloat16"):
        LLMConfig(frozen_dtype="fp8")


def test_only_frozen_linear_weights_are_cast(bf16_pair):
    fp32, bf16 = bf16_pair
    dtypes = {n: p.dtype for n, p in bf16.named_parameters()}
    linear = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    frozen_linear = [n for n in dtypes if n.startswith("llm.") and "lora_" not in n
                     and any(f".{k}." in n for k in linear)]
    assert frozen_linear and all(dtypes[n] == torch.bfloat16 for n in frozen_linear)
    for n, dt in dtypes.items():
        if "lora_" in n or n.startswith("fusion.") or "norm" in n or "embed_tokens" in n:
            assert dt == torch.float32, n
    assert all(v.dtype == torch.float32 for v in bf16.trainable_state_dict().values() if v.is_floating_point())
    assert bf16.trainable_state_dict().keys() == fp32.trainable_state_dict().keys()
    size = lambda m: sum(p.numel() * p.element_size() for p in m.parameters())  # noqa: E731
    assert size(bf16) < size(fp32)  # the frozen linear weights take half the memory


def test_loss_gradients_and_answers_match_the_fp32_weights_under_autocast(bf16_pair, make_sample):
    fp32, bf16 = bf16_pair
    batch = collate([make_sample(i, "meld" if i % 2 == 0 else "simsv2") for i in range(4)])
    losses, grads = [], []
    for model in (fp32, bf16):
        loss = model(batch).loss
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(torch.cat([p.grad.flatten() for g in model.param_groups().values() for p in g
                                if p.grad is not None]))
    # autocast gives the matmuls the same bf16 operands either way: only accumulation order may differ
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.999
    fp32.eval(), bf16.eval()
    for decoding in ("constrained", "free"):
        a, b = fp32.predict(batch, decoding), bf16.predict(batch, decoding)
        assert [p.prediction for p in a] == [p.prediction for p in b]
