"""The assembled EGMF model on the tiny LLM: every switch, padding invariance, gradients, freezing,
save/load, mixed batches, and where the loss is."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from egmf.data.collate import collate
from egmf.errors import ConfigError, DataFormatError
from egmf.model.base import ModelOutput, Prediction, TaskModel
from egmf.model.llm.config import LoraSettings
from egmf.model.llm.prompts import IGNORE
from egmf.model.registry import MODELS, build_model


SWITCHES = [
    dict(),
    dict(text_source="llm"),
    dict(text_source="none"),
    dict(text_source="sentence"),
    dict(fusion={"num_pseudo_tokens": 1}),
    dict(fusion={"num_pseudo_tokens": 8, "use_local": False, "use_semantic": False}),
    dict(fusion={"modality_gating": False, "expert_gating": False}),
    dict(prompt={"template": "minimal"}),
    dict(prompt={"use_chat_template": False, "include_context": False}),
    dict(lora=LoraSettings(r=2, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))),
    dict(lora=LoraSettings(r=0)),
    dict(use_fusion=False),
]


@pytest.mark.parametrize("switch", SWITCHES, ids=lambda s: ",".join(f"{k}" for k in s) or "default")
def test_every_switch_trains_and_predicts(build, switch, mixed_batch, infos):
    model = build(**switch)
    assert isinstance(model, TaskModel)
    batch = mixed_batch()
    model.train()
    out = model(batch)
    assert isinstance(out, ModelOutput) and out.loss.ndim == 0 and math.isfinite(out.loss.item())
    out.loss.backward()
    groups = model.param_groups()
    k = model.cfg.fusion.num_pseudo_tokens
    if model.cfg.use_fusion:
        n_exp = len(model.cfg.fusion.active_experts)
        assert out.gates["expert"].shape == (4, n_exp)
        assert all(out.gates[f"modality.{e}"].shape == (4, 3) for e in model.cfg.fusion.active_experts)
        assert groups["fusion"] and any(p.grad is not None and p.grad.abs().sum() > 0 for p in groups["fusion"])
        eb = model._encode(batch.samples, with_target=False)
        assert eb.pseudo_index.shape == (4, k)
    else:
        assert out.gates == {} and groups["fusion"] == [] and model.fusion is None
    assert bool(groups["lora"]) == (model.cfg.lora.r > 0)
    model.eval()
    preds = model.predict(batch)
    assert [p.id for p in preds] == [s.id for s in batch.samples]
    for p, s in zip(preds, batch.samples):
        info = infos[s.dataset]
        if info.task == "erc":
            assert p.prediction in info.labels and abs(sum(p.probabilities.values()) - 1) < 1e-5
        else:
            assert -1.0 <= p.prediction <= 1.0 and p.score == p.prediction
        assert set(p.gates) == (set(out.gates) if model.cfg.use_fusion else set())


def test_text_source_sets_the_fusion_text_dims(build, dims):
    assert build(text_source="llm").fusion_dims(dims)["meld"]["text"] == 32  # the tiny LLM's hidden size
    assert build(text_source="none").fusion_dims(dims)["simsv2"]["text"] == 0
    assert build(text_source="dataset").fusion_dims(dims) == dims


@pytest.mark.parametrize("switch, k", [(dict(), 3), (dict(fusion={"num_pseudo_tokens": 7}), 7), (dict(use_fusion=False), 0)])
def test_k_is_defined_once_and_prompt_slots_match_fusion_tokens(build, switch, k, mixed_batch):
    model = build(**switch)
    assert model.cfg.num_pseudo_tokens == model.num_pseudo == model.prompts.k == k
    if k:
        assert model.fusion.num_tokens == k
        assert model._fuse(mixed_batch()).tokens.shape[1] == k
    else:
        assert model.fusion is None  # the text-only baseline: no fusion, so no slots


def test_fusion_tokens_and_prompt_slots_that_disagree_are_refused(tiny_config, infos, dims, monkeypatch):
    from egmf.model.config import ModelConfig
    from egmf.model.egmf import EGMF

    monkeypatch.setattr(ModelConfig, "num_pseudo_tokens", property(lambda self: 5))  # slots 5, fusion K = 3
    with pytest.raises(ConfigError, match="the fusion emits 3 pseudo tokens but the prompt has 5 slots"):
        EGMF(tiny_config(), infos, dims)


def test_text_source_llm_feeds_the_utterance_embeddings(build, make_sample):
    model = build(text_source="llm")
    a = collate([make_sample(0, "meld")])
    b = collate([dataclasses.replace(make_sample(0, "meld"), text="something else entirely")])
    with torch.no_grad():
        ta, tb = model._fuse(a).tokens, model._fuse(b).tokens
    assert not torch.allclose(ta, tb)  # the text modality now comes from the utterance itself
    plain = build(text_source="dataset")
    with torch.no_grad():
        assert torch.allclose(plain._fuse(a).tokens, plain._fuse(b).tokens)


@pytest.mark.parametrize("text_source", ["dataset", "llm"])
def test_padding_never_changes_a_samples_loss_or_logits(build, text_source, make_sample):
    model = build(text_source=text_source)
    samples = [make_sample(i, "meld" if i % 2 else "simsv2", frames=2 + 5 * i) for i in range(4)]
    with torch.no_grad():
        together = model.score(collate(samples))
        for i, s in enumerate(samples):
            alone = model.score(collate([s]))
            n = int((alone.targets != IGNORE).sum())
            assert torch.equal(together.targets[i, -n:], alone.targets[0, -n:])
            assert torch.allclose(together.sample_loss[i], alone.sample_loss[0], atol=1e-5)
            assert torch.allclose(together.logits[i, -n:], alone.logits[0, -n:], atol=1e-5)
            assert torch.allclose(together.fusion.tokens[i], alone.fusion.tokens[0], atol=1e-5)
        preds = model.predict(collate(samples))
        for p, s in zip(preds, samples):
            alone = model.predict(collate([s]))[0]
            assert p.prediction == alone.prediction
            if p.probabilities:
                assert all(abs(p.probabilities[k] - alone.probabilities[k]) < 1e-5 for k in p.probabilities)


def test_loss_is_cross_entropy_on_answer_tokens_only(build, mixed_batch):
    # The token-mean objective with open slots: one cross-entropy over every answer token of the batch, computed
    # here from the LLM's full logits (the per-sample objectives: test_egmf_objective.py).
    model = build(answer_loss="token_mean", pseudo_visibility="open")
    batch = mixed_batch(3)
    with torch.no_grad():
        out = model(batch)
        eb = model._encode(batch.samples, with_target=True)
        embeds = model._embeds(eb, model._fuse(batch))
        full = model.llm(inputs_embeds=embeds, attention_mask=eb.attention_mask, position_ids=eb.position_ids).logits
    shift_logits, shift_labels = full[:, :-1], eb.labels[:, 1:]
    expected = F.cross_entropy(shift_logits.reshape(-1, full.shape[-1]), shift_labels.reshape(-1), ignore_index=IGNORE)
    assert torch.allclose(out.loss, expected + out.aux_loss, atol=1e-5)
    # The loss changes with the answer and not with a label-free change of the target elsewhere.
    answers = [tok for row in eb.labels.tolist() for tok in row if tok != IGNORE]
    eos = model.tokenizer.eos_token_id
    assert answers.count(eos) == 3 and eb.labels[:, -1].tolist() == [eos] * 3
    other = collate([dataclasses.replace(s, label="fear" if s.task == "erc" else -0.9) for s in batch.samples])
    with torch.no_grad():
        assert not torch.allclose(model(other).loss, out.loss)


def test_missing_modalities_work(build, make_sample, infos):
    model = build()
    samples = [make_sample(0, "meld", drop=("vision",)), make_sample(1, "simsv2", drop=("audio", "text")),
               make_sample(2, "meld", drop=("audio", "vision"))]
    batch = collate(samples)
    out = model(batch)
    assert math.isfinite(out.loss.item())
    gates = out.gates["modality.global"]
    assert gates[0, 2] == 0 and gates[1, 0] == 0 and gates[1, 1] == 0  # absent modalities get no weight
    preds = model.predict(batch)
    assert preds[0].prediction in infos["meld"].labels and preds[2].prediction in infos["meld"].labels
    assert -1.0 <= preds[1].prediction <= 1.0


def test_gradients_reach_every_expert_through_the_llm(build, mixed_batch):
    model = build()
    model.train()
    model(mixed_batch()).loss.backward()
    for name in model.cfg.fusion.active_experts:
        grads = [p.grad for p in model.fusion.experts[name].parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    proj = model.fusion.projector.out.weight.grad
    assert proj is not None and proj.abs().sum() > 0


def test_base_weights_stay_frozen_after_an_optimiser_step(build, mixed_batch):
    model = build()
    model.train()
    base = {n: p.detach().clone() for n, p in model.llm.named_parameters() if "lora_" not in n}
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    groups = model.param_groups()
    opt = torch.optim.AdamW([{"params": groups["lora"]}, {"params": groups["fusion"]}], lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        model(mixed_batch()).loss.backward()
        opt.step()
    assert all(torch.equal(p, base[n]) for n, p in model.llm.named_parameters() if "lora_" not in n)
    assert not any(p.requires_grad for n, p in model.llm.named_parameters() if "lora_" not in n)
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, trainable[n])]
    assert any("lora_B" in n for n in changed) and any(n.startswith("fusion.") for n in changed)
    n_groups = sum(len(v) for v in groups.values())
    assert n_groups == len(trainable)


def test_trainable_state_round_trip_reproduces_outputs_exactly(build, mixed_batch):
    trained = build()
    trained.train()
    opt = torch.optim.AdamW([p for g in trained.param_groups().values() for p in g], lr=1e-2)
    trained(mixed_batch()).loss.backward()
    opt.step()
    trained.eval()
    state = trained.trainable_state_dict()
    assert all(k.startswith(("llm.", "fusion.", "visibility.", "fusion_heads.")) for k in state)
    assert not any("embed_tokens" in k or k.endswith("q_proj.base_layer.weight") for k in state)
    fresh = build()
    fresh.load_trainable_state_dict(state)
    batch = mixed_batch(seed=3)
    with torch.no_grad():
        assert torch.equal(trained(batch).loss, fresh(batch).loss)
    assert [p.to_json() for p in trained.predict(batch)] == [p.to_json() for p in fresh.predict(batch)]
    with pytest.raises(ConfigError, match=r"trainable state: does not match this model .*missing \['fusion"):
        fresh.load_trainable_state_dict({k: v for k, v in state.items() if not k.startswith("fusion.")})
    with pytest.raises(ConfigError, match=r"unexpected \['extra.weight'\]"):
        fresh.load_trainable_state_dict({**state, "extra.weight": torch.zeros(1)})


def test_mixed_batch_of_english_erc_and_chinese_msa(build, mixed_batch):
    model = build()
    batch = mixed_batch(4)
    eb = model._encode(batch.samples, with_target=True)
    texts = [model.tokenizer.decode(row[m.bool()]) for row, m in zip(eb.input_ids, eb.attention_mask)]
    assert "Options: neutral, joy" in texts[0] and "范围从 -1.0" in texts[1]
    preds = model.predict(batch)
    assert [p.task for p in preds] == ["erc", "msa", "erc", "msa"]
    assert isinstance(preds[0].prediction, str) and isinstance(preds[1].prediction, float)


def test_free_decoding_falls_back_to_constrained_and_flags_it(build, mixed_batch):
    model = build()
    batch = mixed_batch(2)
    free = model.predict(batch, decoding="free")
    constrained = model.predict(batch, decoding="constrained")
    for f, c in zip(free, constrained):
        assert isinstance(f.generated, str)
        if not f.parsed:  # a random tiny LLM rarely writes a label: the constrained answer stands in
            assert f.prediction == c.prediction
    assert [p.to_json() for p in model.predict(batch)] == [p.to_json() for p in constrained]  # the default
    with pytest.raises(ConfigError, match=r"decoding: got 'beam'; valid choices: constrained, free"):
        model.predict(batch, decoding="beam")


def test_unknown_dataset_and_unlabelled_training_sample_are_clear_errors(build, make_sample):
    model = build()
    stray = dataclasses.replace(make_sample(0, "meld"), dataset="iemocap")
    with pytest.raises(DataFormatError, match=r"iemocap: meld-0.dataset: expected one of \['meld', 'simsv2'\]"):
        model(collate([stray]))
    with pytest.raises(DataFormatError, match=r"meld: meld-0.label: expected a label to train on"):
        model(collate([dataclasses.replace(make_sample(0, "meld"), label=None)]))
    assert model.predict(collate([dataclasses.replace(make_sample(0, "meld"), label=None)]))[0].prediction


def test_registry_builds_egmf_and_its_variants(tiny_config, infos, dims):
    cfg = tiny_config()
    for name in ("egmf", "llm_text", "egmf_mean_gate"):
        model = build_model(dataclasses.replace(cfg, name=name), infos, dims)
        assert name in MODELS
        if name == "llm_text":
            assert model.fusion is None and model.num_pseudo == 0
        if name == "egmf_mean_gate":
            assert not model.cfg.fusion.modality_gating and not model.cfg.fusion.expert_gating
    with pytest.raises(ConfigError, match=r"EGMF: feature_dims lacks datasets \['simsv2'\]"):
        build_model(cfg, infos, {"meld": dims["meld"]})


def test_bf16_autocast_runs_and_stays_close(build, mixed_batch):
    model = build()
    batch = mixed_batch(2)
    fast = build(llm={"autocast": "bf16"})
    with torch.no_grad():
        a, b = model(batch).loss, fast(batch).loss
    assert b.dtype == torch.float32 and abs(float(a) - float(b)) < 0.1 * abs(float(a))
    assert all(isinstance(p, Prediction) for p in fast.predict(batch))


@pytest.mark.parametrize(
    "probs, expected",
    [
        ([0.1, 0.2, 0.3, 0.4], 0.2),  # cdf 0.1 0.3 0.6 1.0: the third value reaches one half
        ([0.5, 0.5, 0.0, 0.0], -0.1),  # the cdf reaches exactly one half at the first value
        ([0.0, 0.0, 0.0, 1.0], 0.3),
        ([0.25, 0.25, 0.25, 0.25], 0.0),  # cdf 0.25 0.5: the second value reaches one half
    ],
)
def test_weighted_median_golden(probs, expected):
    from egmf.model.egmf import weighted_median

    assert weighted_median([-0.1, 0.0, 0.2, 0.3], torch.tensor(probs)) == expected


def test_median_and_greedy_score_decoding_stay_valid(build, mixed_batch):
    model = build()
    batch = mixed_batch(4)
    preds = model.predict(batch)
    for p in preds:
        if p.task != "msa":
            continue
        info = model.infos[p.dataset]
        assert info.score_range[0] <= p.prediction <= info.score_range[1]
        assert p.prediction in model.score_grid(info)
    greedy = dataclasses.replace(model.cfg, score_decoding="greedy")
    model.cfg = greedy
    for p in model.predict(batch):
        if p.task == "msa":
            info = model.infos[p.dataset]
            assert info.score_range[0] <= p.prediction <= info.score_range[1]


def test_score_grid_covers_the_range_in_tenths(build):
    from egmf.data.schema import DatasetInfo

    model = build()
    grid = model.score_grid(DatasetInfo("m", "msa", "en", score_range=(-3.0, 3.0), metric_family="mosi"))
    assert len(grid) == 61 and grid[0] == -3.0 and grid[30] == 0.0 and grid[-1] == 3.0


def test_inference_batches_by_prompt_length_and_keeps_the_input_order(build, make_sample, monkeypatch):
    """``predict_samples`` sorts by ``prompt_length`` (less padding); each sample's answer is the one it gets
    alone, returned in the caller's order."""
    from egmf.data.collate import collate
    from egmf.evaluation.evaluate import predict_samples

    model = build()
    samples = [make_sample(i, "meld" if i % 3 else "simsv2") for i in range(9)]
    lengths = [model.prompt_length(s) for s in samples]
    assert lengths == [len(model._encode([s], with_target=False).input_ids[0]) for s in samples]
    seen: list[list[int]] = []
    original = model.predict

    def spy(batch, decoding="constrained"):
        seen.append([lengths[samples.index(s)] for s in batch.samples])
        return original(batch, decoding=decoding)

    monkeypatch.setattr(model, "predict", spy)
    preds = predict_samples(model, samples, batch_size=3)
    assert [p.id for p in preds] == [s.id for s in samples]
    assert sum(seen, []) == sorted(lengths)  # batches are consecutive runs of the sorted lengths
    alone = [original(collate([s]))[0] for s in samples]
    for p, a in zip(preds, alone):
        assert p.prediction == a.prediction
        if p.probabilities:
            assert p.probabilities == pytest.approx(a.probabilities, abs=1e-5)
