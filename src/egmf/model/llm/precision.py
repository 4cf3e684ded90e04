"""The LLM's precision: whether it runs under bf16 autocast (``model.llm.autocast``, 'auto' = where the machine
computes bf16 natively) and the frozen base weights in bfloat16 (``model.llm.frozen_dtype``), cast once at build time.

Why 'auto' asks the hardware: on a CPU without avx512_bf16 / AMX, bf16 is emulated and an LLM step is about 20x
slower than in fp32 (a MELD step 60 s instead of 3 s, measured), while where bf16 is native it is about 2x faster.

Under bf16 autocast every ``nn.Linear`` casts its fp32 weight to bf16 on every call (forward, and again for
backward); a weight already in bf16 is used as is, so the matmuls see the same bf16 operands and the frozen
weights take half the memory. Only frozen linear layers are cast: LoRA matrices and the fusion train in fp32,
norms stay fp32 (autocast would not cast them), and so do the input embeddings (the prompt's embeddings and
the pseudo tokens' target norm are read from them) and an LM head tied to them.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from egmf.errors import ConfigError
from egmf.model.llm.config import LLMConfig


NATIVE_BF16_ENV = "EGMF_NATIVE_BF16"


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this machine computes bf16 natively: a CUDA GPU that supports it (the device a run would use),
    else a CPU with avx512_bf16 or AMX. The one test behind every 'auto' precision (``train.mixed_precision``
    and ``model.llm.autocast``).

    ``EGMF_NATIVE_BF16=0`` / ``=1`` overrides the detection (a container whose cpuinfo misleads; the test suite
    sets 0 so that its results do not depend on the machine it runs on)."""
    forced = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if forced:
        if forced not in ("0", "1"):
            raise ConfigError(f"environment variable {NATIVE_BF16_ENV}: expected 0 or 1, got {forced!r}")
        return forced == "1"
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_autocast(cfg: LLMConfig) -> str:
    """``model.llm.autocast`` as it runs: 'bf16' or 'none' ('auto' = bf16 where :func:`native_bf16`)."""
    if cfg.autocast == "auto":
        return "bf16" if native_bf16() else "none"
    return cfg.autocast


def resolve_frozen_dtype(cfg: LLMConfig, autocast: str | None = None) -> torch.dtype | None:
    """The dtype to cast the frozen linear weights to, or ``None`` to leave them as loaded. ``autocast``: the
    resolved autocast (default: :func:`resolve_autocast` of ``cfg``)."""
    autocast = resolve_autocast(cfg) if autocast is None else autocast
    if cfg.frozen_dtype == "bfloat16" or (cfg.frozen_dtype == "auto" and autocast == "bf16"
                                          and cfg.dtype == "float32"):
        return torch.bfloat16
    return None


def cast_frozen_linears(model: nn.Module, dtype: torch.dtype | None) -> int:
    """Cast every frozen ``nn.Linear`` of ``model`` (none of its parameters trains; not one sharing its weight
    with the input embeddings) to ``dtype``; returns how many were cast."""
    if dtype is None:
        return 0
    embedding = model.get_input_embeddings().weight
    count = 0
    for module in model.modules():
        if not isinstance(module, nn.Linear) or module.weight is embedding:
            continue
        if any(p.requires_grad for p in module.parameters()):
            continue
        module.to(dtype)
        count += 1
    return count
