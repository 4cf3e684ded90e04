"""The frozen base weights of the LLM in bfloat16 (``model.llm.frozen_dtype``), cast once at build time.

Under bf16 autocast every ``nn.Linear`` casts its fp32 weight to bf16 on every call (forward, and again for
backward); a weight already in bf16 is used as is, so the matmuls see the same bf16 operands and the frozen
weights take half the memory. Only frozen linear layers are cast: LoRA matrices and the fusion train in fp32,
norms stay fp32 (autocast would not cast them), and so do the input embeddings (the prompt's embeddings and
the pseudo tokens' target norm are read from them) and an LM head tied to them.
"""

from __future__ import annotations

import torch
from torch import nn

from egmf.model.llm.config import LLMConfig


def resolve_frozen_dtype(cfg: LLMConfig) -> torch.dtype | None:
    """The dtype to cast the frozen linear weights to, or ``None`` to leave them as loaded."""
    if cfg.frozen_dtype == "bfloat16" or (cfg.frozen_dtype == "auto" and cfg.autocast == "bf16"
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
