"""The optimiser: AdamW over the model's parameter groups, each split into a decaying and a non-decaying part.

    optimizer = build_optimizer(model, cfg.train)
    [g["name"] for g in optimizer.param_groups]   # e.g. lora/decay, fusion/decay, fusion/no_decay

The learning rate comes from the model's group (``param_groups()``: ``lora`` at ``train.lr_lora``, every other
group at ``train.lr_fusion``); weight decay from the parameter's role, decided by the type of the module that
owns it (:func:`decaying_parameters`), not by its name. Decay belongs on weight matrices and convolution
kernels: shrinking them limits what a layer can amplify. It does not belong on

- norms' scales and shifts: decay pulls a LayerNorm's scale towards 0, not towards its identity value 1;
- biases: they carry no capacity to regularise;
- embeddings and free vectors (modality-type embeddings, placeholders, pseudo-token queries and anchors, the
  slot visibility gate's logits): decay drags them towards the origin, i.e. an anchor drawn from the LLM's
  word embeddings off the embedding manifold, and a gate logit towards a value it never started from.

A parameter that no module claims as a matrix therefore gets no decay: a new kind of free vector is safe by
default. Buffers (the input standardisers' statistics) are not parameters and never reach the optimiser.
"""

from __future__ import annotations

import torch
from torch import nn

from egmf.errors import ConfigError

# Modules whose ``weight`` is a matrix or a kernel (nn.MultiheadAttention's out_proj is an nn.Linear).
MATRIX_MODULES = (nn.Linear, nn.Bilinear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# nn.MultiheadAttention holds its input projections as plain parameters of its own.
ATTENTION_MATRICES = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


def decaying_parameters(model: nn.Module) -> set[int]:
    """``id()`` of every parameter of ``model`` that takes weight decay: the ``weight`` of a matrix module
    (:data:`MATRIX_MODULES`, LoRA's A and B included: peft builds them as nn.Linear) and the projection matrices
    of nn.MultiheadAttention. Everything else (norms, biases, embeddings, free vectors) does not decay."""
    ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, MATRIX_MODULES):
            names: tuple[str, ...] = ("weight",)
        elif isinstance(module, nn.MultiheadAttention):
            names = ATTENTION_MATRICES
        else:
            continue
        for name in names:
            p = getattr(module, name, None)
            if isinstance(p, nn.Parameter):
                ids.add(id(p))
    return ids


def optimizer_groups(model: nn.Module, lr_lora: float, lr_fusion: float, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: for each of the model's groups (in its order), ``<group>/decay`` at
    ``weight_decay`` and ``<group>/no_decay`` at 0, both at the group's learning rate; empty parts are left out."""
    decays = decaying_parameters(model)
    groups = []
    for name, params in model.param_groups().items():
        lr = lr_lora if name == "lora" else lr_fusion
        for part, wd in (("decay", weight_decay), ("no_decay", 0.0)):
            ps = [p for p in params if (id(p) in decays) == (part == "decay")]
            if ps:
                groups.append({"params": ps, "lr": lr, "weight_decay": wd, "name": f"{name}/{part}"})
    return groups


def build_optimizer(model: nn.Module, tc) -> torch.optim.Optimizer:
    """AdamW over :func:`optimizer_groups` with ``tc``'s (a :class:`~egmf.config.TrainConfig`) rates and decay."""
    unset = [k for k in ("lr_lora", "lr_fusion", "weight_decay") if getattr(tc, k) is None]
    if unset:
        raise ConfigError(f"train.{unset[0]}: not resolved (null = the model's default): build the config as a "
                          "RunConfig, or call TrainConfig.with_model_defaults(model_name)")
    return torch.optim.AdamW(optimizer_groups(model, tc.lr_lora, tc.lr_fusion, tc.weight_decay))
