"""Which parameters decay: weight matrices and kernels do; norms, biases, embeddings, queries, anchors and gate
logits do not. Checked by name on a tiny EGMF and on both baselines; every trainable parameter in one group."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from egmf.config import TrainConfig
from egmf.data.schema import MELD_EMOTIONS, DatasetInfo
from egmf.errors import ConfigError
from egmf.model.baselines import BaselineConfig
from egmf.model.config import ModelConfig
from egmf.model.fusion import FusionConfig
from egmf.model.llm.config import LLMConfig, LoraSettings
from egmf.model.registry import build_model
from egmf.training.optim import build_optimizer, optimizer_groups

INFOS = {"meld": DatasetInfo("meld", "erc", "en", labels=MELD_EMOTIONS, metric_family="erc")}
DIMS = {"meld": {"text": 8, "audio": 6, "vision": 5}}
CFG = ModelConfig(
    text_source="dataset",
    llm=LLMConfig(backend="tiny", tiny_hidden_size=32, tiny_layers=2),
    fusion=FusionConfig(d_model=16, n_heads=2, gate_hidden=8, global_layers=1, dropout=0.0, num_pseudo_tokens=3),
    lora=LoraSettings(r=4, dropout=0.0),
    baseline=BaselineConfig(hidden=16, layers=1, n_heads=2, conv_kernel=3),
)

# (model, parameter name, expected group): one of each kind of parameter each model has.
EXPECTED = [
    ("egmf", "llm.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight", "lora/decay"),
    ("egmf", "llm.base_model.model.model.layers.1.self_attn.v_proj.lora_B.default.weight", "lora/decay"),
    ("egmf", "fusion.encoders.proj.meld__audio.weight", "fusion/decay"),
    ("egmf", "fusion.encoders.proj.meld__audio.bias", "fusion/no_decay"),
    ("egmf", "fusion.encoders.norm.weight", "fusion/no_decay"),
    ("egmf", "fusion.encoders.norm.bias", "fusion/no_decay"),
    ("egmf", "fusion.encoders.modality_type.weight", "fusion/no_decay"),  # an nn.Embedding
    ("egmf", "fusion.encoders.placeholder", "fusion/no_decay"),
    ("egmf", "fusion.encoders.stats_type", "fusion/no_decay"),
    ("egmf", "fusion.experts.local.convs.audio.0.weight", "fusion/decay"),  # a depthwise Conv1d kernel
    ("egmf", "fusion.experts.global.encoder.layers.0.self_attn.in_proj_weight", "fusion/decay"),
    ("egmf", "fusion.experts.global.encoder.layers.0.self_attn.in_proj_bias", "fusion/no_decay"),
    ("egmf", "fusion.experts.global.encoder.layers.0.self_attn.out_proj.weight", "fusion/decay"),
    ("egmf", "fusion.gate.expert_scorer.0.weight", "fusion/decay"),
    ("egmf", "fusion.projector.queries", "fusion/no_decay"),
    ("egmf", "fusion.projector.anchors", "fusion/no_decay"),
    ("egmf", "fusion.projector.out_norm.weight", "fusion/no_decay"),
    ("egmf", "visibility.theta", "fusion/no_decay"),  # the slot visibility gate's logits
    ("late_fusion", "inputs.encoders.proj.meld__text.weight", "fusion/decay"),
    ("late_fusion", "unimodal.audio.blocks.0.0.weight", "fusion/no_decay"),  # the block's LayerNorm
    ("late_fusion", "unimodal.audio.blocks.0.1.weight", "fusion/decay"),
    ("late_fusion", "fusion.norm.bias", "fusion/no_decay"),
    ("late_fusion", "heads.heads.meld.weight", "fusion/decay"),
    ("late_fusion", "heads.heads.meld.bias", "fusion/no_decay"),
    ("mult", "inputs.temporal.audio.weight", "fusion/decay"),
    ("mult", "cross.audio_to_text.blocks.0.attn.in_proj_weight", "fusion/decay"),
    ("mult", "cross.audio_to_text.blocks.0.ln_kv.weight", "fusion/no_decay"),
    ("mult", "self_attn.text.norm.weight", "fusion/no_decay"),
    ("mult", "proj1.weight", "fusion/decay"),
    ("mult", "proj1.bias", "fusion/no_decay"),
    ("mult", "inputs.encoders.modality_type.weight", "fusion/no_decay"),
]


@pytest.fixture(scope="module")
def grouped() -> dict[str, tuple[dict[str, str], list[dict], torch.nn.Module]]:
    """model -> ({parameter name: group name}, the groups, the model)."""
    out = {}
    torch.manual_seed(0)
    for name in ("egmf", "late_fusion", "mult"):
        model = build_model(dataclasses.replace(CFG, name=name), INFOS, DIMS)
        names = {id(p): n for n, p in model.named_parameters()}
        groups = optimizer_groups(model, lr_lora=1e-4, lr_fusion=1e-3, weight_decay=0.05)
        out[name] = ({names[id(p)]: g["name"] for g in groups for p in g["params"]}, groups, model)
    return out


@pytest.mark.parametrize("model,param,group", EXPECTED)
def test_each_kind_of_parameter_lands_in_its_group(grouped, model, param, group):
    where, _, _ = grouped[model]
    assert where.get(param) == group, f"{param}: {where.get(param)} (known: {sorted(where)[:8]}...)"


@pytest.mark.parametrize("model", ["egmf", "late_fusion", "mult"])
def test_every_trainable_parameter_is_in_exactly_one_group_with_its_rate_and_decay(grouped, model):
    where, groups, m = grouped[model]
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    assert sorted(where) == sorted(trainable)
    assert sum(len(g["params"]) for g in groups) == len(trainable)  # no parameter twice
    for g in groups:
        assert g["lr"] == (1e-4 if g["name"].startswith("lora/") else 1e-3)
        assert g["weight_decay"] == (0.05 if g["name"].endswith("/decay") else 0.0)
    assert [g["name"] for g in groups][0] == ("lora/decay" if model == "egmf" else "fusion/decay")


def test_no_decay_parameters_are_left_alone_by_a_step_without_gradient(grouped):
    # AdamW with a zero gradient changes a parameter only through decay: the no-decay ones must not move.
    _, _, model = grouped["late_fusion"]
    tc = TrainConfig(lr_lora=1e-3, lr_fusion=0.1, weight_decay=0.5)
    opt = build_optimizer(model, tc)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = dict(model.named_parameters())
    assert torch.equal(after["fusion.norm.weight"], before["fusion.norm.weight"])
    assert torch.equal(after["heads.heads.meld.bias"], before["heads.heads.meld.bias"])
    torch.testing.assert_close(after["fusion.inp.weight"], before["fusion.inp.weight"] * (1 - 0.1 * 0.5))
    with torch.no_grad():  # leave the shared fixture as it was
        for n, p in model.named_parameters():
            p.copy_(before[n])


def test_an_unresolved_train_config_is_refused_by_name():
    with pytest.raises(ConfigError, match="train.lr_lora: not resolved"):
        build_optimizer(torch.nn.Linear(2, 2), TrainConfig())
