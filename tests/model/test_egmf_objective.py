"""EGMF's objective and label scoring without length bias: per-sample answer loss, class weights fitted on the
train labels, and constrained label scores by sum / mean / first token.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/model/test_egmf_objective.py -q -p no:cacheprovider
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from egmf.data.collate import collate
from egmf.data.schema import DatasetInfo
from egmf.errors import ConfigError
from egmf.model.class_weights import class_weights
from egmf.model.llm.decoding import distinct_first_tokens, score_options
from egmf.model.llm.prompts import IGNORE

# Byte-level tiny tokenizer: "a" is one token (+ EOS = 2 answer tokens), "bcd" three (+ EOS = 4).
TOY = DatasetInfo("toy", "erc", "en", labels=("a", "bcd"), metric_family="erc")


def _toy(build, make_sample, dims, **kw):
    model = build(infos={"toy": TOY}, dims={"toy": dims["meld"]}, **kw)
    base = make_sample(0, "meld")
    samples = [dataclasses.replace(base, id=f"t{i}", dataset="toy", label=lab) for i, lab in enumerate(("a", "bcd"))]
    return model, samples


@pytest.mark.parametrize("answer_loss", ["sample_sum", "sample_mean", "token_mean"])
def test_answer_loss_weighs_a_one_and_a_three_token_label_as_stated(build, make_sample, dims, answer_loss):
    model, samples = _toy(build, make_sample, dims, answer_loss=answer_loss)
    with torch.no_grad():
        s = model.score(collate(samples))
        loss = float(model(collate(samples)).task_loss)
    n = (s.targets != IGNORE).sum(1).tolist()
    assert n == [2, 4]  # EOS counts: it ends the answer, which free decoding and 'sum' scoring rely on
    sums = s.token_loss.sum(1).tolist()
    expected = {
        "sample_sum": (sums[0] + sums[1]) / 2,  # each sample: its answer's NLL, weight 1/2 whatever its length
        "sample_mean": (sums[0] / 2 + sums[1] / 4) / 2,
        "token_mean": (sums[0] + sums[1]) / 6,  # the original: the 4-token answer has twice the say
    }[answer_loss]
    assert loss == pytest.approx(expected, rel=1e-5)
    # Per-sample losses: the batch loss is the mean of the samples' own losses (each alone).
    if answer_loss != "token_mean":
        with torch.no_grad():
            alone = [float(model(collate([x])).task_loss) for x in samples]
        assert loss == pytest.approx(sum(alone) / 2, rel=1e-4)


def test_class_weights_by_hand():
    counts = {"a": 6, "b": 3, "c": 1}
    labels = ("a", "b", "c", "d")  # 'd' never seen in train: counted as 1
    w = class_weights(counts, labels, "balanced")
    # raw 1/n: 1/6, 1/3, 1, 1; scaled so sum n*w = sum n = 11: scale = 11 / (1 + 1 + 1 + 1) = 2.75
    assert [w[k] for k in labels] == pytest.approx([2.75 / 6, 2.75 / 3, 2.75, 2.75])
    s = class_weights(counts, labels, "sqrt")
    scale = 11 / (6 / math.sqrt(6) + 3 / math.sqrt(3) + 1 + 1)
    assert [s[k] for k in labels] == pytest.approx([scale / math.sqrt(n) for n in (6, 3, 1, 1)])
    assert class_weights(counts, labels, "none") == {k: 1.0 for k in labels}
    with pytest.raises(ConfigError, match="class_weighting"):
        class_weights(counts, labels, "inverse")


def test_class_weights_change_the_loss_as_computed_by_hand(build, make_sample, dims):
    model, samples = _toy(build, make_sample, dims, class_weighting="balanced")
    train = [samples[0]] * 3 + [samples[1]]  # 'a' x3, 'bcd' x1 -> w_a = 4/(2*3) = 2/3, w_bcd = 4/2 = 2
    with torch.no_grad():
        before = float(model(collate(samples)).task_loss)
        model.fit_class_weights(train)
        assert model.class_weights["toy"] == pytest.approx({"a": 2 / 3, "bcd": 2.0})
        after = float(model(collate(samples)).task_loss)
        sums = model.score(collate(samples)).token_loss.sum(1).tolist()
    assert before == pytest.approx((sums[0] + sums[1]) / 2, rel=1e-5)
    assert after == pytest.approx((2 / 3 * sums[0] + 2 * sums[1]) / (2 / 3 + 2), rel=1e-5)
    model.cfg = dataclasses.replace(model.cfg, class_weighting="none")
    model.fit_class_weights(train)
    assert model.class_weights == {}


def test_msa_samples_weigh_one_under_class_weights(build, mixed_batch):
    model = build(class_weighting="sqrt")
    batch = mixed_batch(4)
    model.fit_class_weights(batch.samples)
    w = model.sample_weights(batch.samples).tolist()
    assert [x for x, s in zip(w, batch.samples) if s.task == "msa"] == [1.0, 1.0]


class _FixedLM(torch.nn.Module):
    """A stand-in language model whose next-token log-probabilities ``logp`` are the same at every position."""

    def __init__(self, logp):
        super().__init__()
        self.logp = logp
        self.config = type("C", (), {"_attn_implementation": "sdpa"})()
        self.emb = torch.nn.Embedding(4, 2)

    def get_input_embeddings(self):
        return self.emb

    def forward(self, inputs_embeds, attention_mask=None, position_ids=None, logits_to_keep=1, use_cache=False, **_):
        b, t, _ = inputs_embeds.shape
        logits = self.logp.expand(b, t, -1)[:, -logits_to_keep:]
        return type("O", (), {"logits": logits})()


def test_sum_scoring_prefers_the_short_label_and_mean_or_first_do_not():
    # Every position: p(tok0)=0.30, p(tok1)=0.45, p(tok2)=0.05, p(EOS=3)=0.20.
    logp = torch.tensor([0.30, 0.45, 0.05, 0.20]).log()
    lm = _FixedLM(logp)
    short = [0, 3]  # first token 0 (p=.30), then EOS
    long = [1, 1, 1, 3]  # first token 1 (p=.45, the likelier start), each later token as likely, then EOS
    embeds = torch.zeros(1, 3, 2)
    mask = torch.ones(1, 3, dtype=torch.long)
    pos = torch.arange(3)[None]
    probs = {s: score_options(lm, embeds, mask, pos, [[short, long]], scoring=s, share_prefix=False)[0]
             for s in ("sum", "mean", "first")}
    ls, ll = [math.log(.3), math.log(.2)], [math.log(.45)] * 3 + [math.log(.2)]
    # sum: -2.81 vs -4.00 -> the short label, although the long one starts likelier and continues as likely
    assert probs["sum"].argmax() == 0
    torch.testing.assert_close(probs["sum"], torch.tensor([sum(ls), sum(ll)]).softmax(-1))
    # mean: -1.41 vs -1.00; first: 0.30 vs 0.45 -> the long label
    assert probs["mean"].argmax() == 1 and probs["first"].argmax() == 1
    torch.testing.assert_close(probs["mean"], torch.tensor([sum(ls) / 2, sum(ll) / 4]).softmax(-1))
    torch.testing.assert_close(probs["first"], torch.tensor([0.30, 0.45]) / 0.75)


def test_mean_scoring_removes_the_per_token_penalty_of_a_long_label():
    # A long label whose every token is as likely as the short label's: sum prefers the short one, mean ties.
    logp = torch.tensor([0.25, 0.25, 0.25, 0.25]).log()
    lm = _FixedLM(logp)
    embeds, mask, pos = torch.zeros(1, 3, 2), torch.ones(1, 3, dtype=torch.long), torch.arange(3)[None]
    short, long = [0, 3], [1, 2, 0, 3]
    s = score_options(lm, embeds, mask, pos, [[short, long]], scoring="sum", share_prefix=False)[0]
    m = score_options(lm, embeds, mask, pos, [[short, long]], scoring="mean", share_prefix=False)[0]
    f = score_options(lm, embeds, mask, pos, [[short, long]], scoring="first", share_prefix=False)[0]
    assert s[0] > 0.9  # 1/16 vs 1/256
    torch.testing.assert_close(m, torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(f, torch.tensor([0.5, 0.5]))


def test_first_scoring_needs_distinct_first_tokens_and_egmf_falls_back_to_sum(build, infos):
    assert distinct_first_tokens([[1, 9], [2], [3, 4, 5]])
    assert not distinct_first_tokens([[1, 9], [1, 2]])
    lm = _FixedLM(torch.zeros(4))
    with pytest.raises(ConfigError, match="share a first token"):
        score_options(lm, torch.zeros(1, 3, 2), torch.ones(1, 3, dtype=torch.long), torch.arange(3)[None],
                      [[[1, 3], [1, 2, 3]]], scoring="first", share_prefix=False)
    with pytest.raises(ConfigError, match="valid choices"):
        score_options(lm, torch.zeros(1, 3, 2), torch.ones(1, 3, dtype=torch.long), torch.arange(3)[None],
                      [[[1, 3]]], scoring="max", share_prefix=False)
    model = build()  # byte tokenizer: 'sadness' and 'surprise' both start with 's'
    assert model.cfg.label_scoring == "first"
    assert model.label_scoring(infos["meld"]) == "sum"
    toy = build(infos={"toy": TOY}, dims={"toy": {"text": 0, "audio": 6, "vision": 5}})
    assert toy.label_scoring(TOY) == "first"
