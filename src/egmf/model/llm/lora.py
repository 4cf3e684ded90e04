"""The one place where peft wraps an LLM (:func:`wrap_with_lora`), with default targets per model family.

After wrapping, every base weight is frozen: only the LoRA matrices (here) and the fusion (elsewhere) train.
"""

from __future__ import annotations

import warnings

from torch import nn

from egmf.errors import ConfigError
from egmf.model.llm.config import LoraSettings

# Default LoRA targets by ``config.model_type``: the attention query and value projections, as in the LoRA
# paper and InstructERC. A family not listed here needs ``model.lora.target_modules`` set explicitly.
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "llama": ("q_proj", "v_proj"),
    "mistral": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"),
    "qwen3": ("q_proj", "v_proj"),
    "gemma": ("q_proj", "v_proj"),
    "gemma2": ("q_proj", "v_proj"),
    "gemma3": ("q_proj", "v_proj"),
    "gemma3_text": ("q_proj", "v_proj"),
    "phi3": ("qkv_proj",),
    "gpt2": ("c_attn",),
}


def default_targets(model: nn.Module) -> tuple[str, ...]:
    family = getattr(getattr(model, "config", None), "model_type", None)
    if family not in DEFAULT_TARGETS:
        raise ConfigError(
            f"model.lora.target_modules: no default for model family {family!r}; set it explicitly "
            f"(families with a default: {', '.join(sorted(DEFAULT_TARGETS))})"
        )
    return DEFAULT_TARGETS[family]


def freeze(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def wrap_with_lora(model: nn.Module, settings: LoraSettings, gradient_checkpointing: bool = False) -> nn.Module:
    """Freeze ``model`` and add LoRA adapters (``settings.r == 0``: no adapter, the model stays frozen).

    With gradient checkpointing the input embeddings are made to require grad: checkpointed blocks whose
    inputs need no grad would otherwise cut the gradient path to the pseudo tokens.
    """
    freeze(model)
    if gradient_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x renamed it
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        model.enable_input_require_grads()
    if settings.r == 0:
        return model
    from peft import LoraConfig, get_peft_model

    targets = settings.target_modules or default_targets(model)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise ConfigError(
            f"model.lora.target_modules: {missing} not found in {type(model).__name__}; valid choices include: "
            f"{', '.join(sorted(n for n in present if n and not n.isdigit()))}"
        )
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(targets),
        layers_to_transform=adapted_layers(model, settings.layers_from),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft still calls the renamed is_gradient_checkpointing of transformers 5
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def adapted_layers(model: nn.Module, layers_from: int) -> list[int] | None:
    """The decoder layers that get LoRA: ``layers_from`` and above (``None`` = all, peft's default)."""
    if layers_from == 0:
        return None
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if n is None:
        raise ConfigError(f"model.lora.layers_from: {type(model).__name__} does not say its number of layers "
                          "(config.num_hidden_layers); valid choices: 0")
    if layers_from >= n:
        raise ConfigError(f"model.lora.layers_from: got {layers_from}, the LLM has {n} layers; "
                          f"valid choices: 0..{n - 1}")
    return list(range(layers_from, n))


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable (adapter) parameters of a wrapped model, in a stable order."""
    return [p for _, p in model.named_parameters() if p.requires_grad]
