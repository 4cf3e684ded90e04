"""EGMF's fusion head (``model.fusion_head_weight``): a per-dataset linear head on the fusion's gated vector whose
loss supervises the fusion directly, while the visibility gate still hides the slots from the LLM.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/model/test_egmf_fusion_head.py -q -p no:cacheprovider
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from egmf.errors import ConfigError
from egmf.model.config import ModelConfig


def test_on_by_default_and_off_at_zero_with_no_parameters(build, mixed_batch):
    assert ModelConfig().fusion_head_weight == 0.5  # measured: benchmarks/results/quality_ravdess_converged_fusion_head_seeds.md
    assert build().fusion_heads is not None
    model = build(fusion_head_weight=0.0)
    assert model.fusion_heads is None
    assert not any(k.startswith("fusion_heads.") for k in model.trainable_state_dict())


def test_the_loss_is_the_lm_loss_plus_the_weighted_head_loss_by_hand(build, mixed_batch):
    model = build(fusion_head_weight=0.5, fusion={"gate_balance_weight": 0.0})
    batch = mixed_batch(4)  # meld (ERC, 7 labels) at 0 and 2, simsv2 (MSA, range [-1, 1]) at 1 and 3
    with torch.no_grad():
        out = model(batch)
        fused = model._fuse(batch).fused
        heads = dict(zip(model.fusion_heads.names, model.fusion_heads.heads))
        meld_info = model.infos["meld"]
        ce = F.cross_entropy(heads["meld"](fused[[0, 2]]),
                             torch.tensor([meld_info.labels.index(batch.samples[i].label) for i in (0, 2)]),
                             reduction="sum")
        scores = torch.tensor([batch.samples[i].label for i in (1, 3)], dtype=torch.float32)  # range [-1, 1]: as is
        l1 = (heads["simsv2"](fused[[1, 3]]).squeeze(-1) - scores).abs().sum()
        head = float((ce + l1) / 4)
    assert float(out.aux_loss) == pytest.approx(0.5 * head, rel=1e-5)
    assert float(out.loss) == pytest.approx(float(out.task_loss) + 0.5 * head, rel=1e-5)


def test_msa_targets_are_scaled_by_the_range(build, make_sample, infos, dims):
    from egmf.data.schema import DatasetInfo

    wide = {"mosei": DatasetInfo("mosei", "msa", "en", score_range=(-3.0, 3.0), metric_family="mosei")}
    model = build(infos=wide, dims={"mosei": dims["simsv2"]}, fusion_head_weight=1.0)
    samples = [make_sample(i, "simsv2") for i in range(2)]
    for s, y in zip(samples, (3.0, -1.5)):
        s.dataset, s.label, s.lang = "mosei", y, "en"
    fused = torch.zeros(2, model.cfg.fusion.d_model)  # the head then answers its bias
    head = model.fusion_heads.heads[0]
    b = float(head.bias.detach())
    expected = (abs(b - 1.0) + abs(b + 0.5)) / 2  # 3.0 -> 1.0 and -1.5 -> -0.5 in half-range units
    with torch.no_grad():
        loss = float(model.fusion_heads.loss(fused, samples))
    assert loss == pytest.approx(expected, rel=1e-6)


def test_the_head_reaches_the_fusion_while_the_gate_hides_the_slots(build, mixed_batch):
    """With the gate almost closed the LM loss barely moves the fusion's encoders; the head's loss does."""
    batch = mixed_batch(4)

    def encoder_grad(weight):
        model = build(fusion_head_weight=weight, pseudo_gate_init=-12.0, fusion={"gate_balance_weight": 0.0})
        model.train()
        model(batch).loss.backward()
        return sum(float(p.grad.norm()) for p in model.fusion.encoders.parameters() if p.grad is not None)

    without, with_head = encoder_grad(0.0), encoder_grad(1.0)
    assert with_head > 100 * without


def test_heads_are_trained_saved_and_loaded(build):
    model = build(fusion_head_weight=0.3)
    head_params = {id(p) for p in model.fusion_heads.parameters()}
    assert head_params <= {id(p) for p in model.param_groups()["fusion"]}
    state = model.trainable_state_dict()
    assert {k for k in state if k.startswith("fusion_heads.")} == {
        "fusion_heads.heads.0.weight", "fusion_heads.heads.0.bias", "fusion_heads.heads.1.weight",
        "fusion_heads.heads.1.bias"}
    other = build(fusion_head_weight=0.3)
    torch.nn.init.zeros_(other.fusion_heads.heads[0].weight)
    other.load_trainable_state_dict(state)
    assert torch.equal(other.fusion_heads.heads[0].weight, model.fusion_heads.heads[0].weight)
    with pytest.raises(ConfigError, match="fusion_head_weight"):
        build(fusion_head_weight=0.0).load_trainable_state_dict(state)  # a checkpoint with heads into a model without


def test_a_negative_weight_is_refused():
    with pytest.raises(ConfigError, match="model.fusion_head_weight: expected a weight >= 0, got -0.1"):
        ModelConfig(fusion_head_weight=-0.1)


def test_predictions_do_not_depend_on_the_head(build, mixed_batch):
    """The LLM writes every answer: the head only shapes training."""
    batch = mixed_batch(4)
    a, b = build(fusion_head_weight=0.0), build(fusion_head_weight=1.0)
    pa, pb = a.predict(batch), b.predict(batch)
    assert [p.prediction for p in pa] == [p.prediction for p in pb]
