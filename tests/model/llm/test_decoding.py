"""Decoding: constrained answers are always valid, option scores equal brute force, parsing is robust."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from egmf.errors import ConfigError
from egmf.model.llm import decoding
from egmf.model.llm.backends import build_byte_tokenizer, build_tiny_llm
from egmf.model.llm.decoding import (NumberConstraint, greedy_decode, option_trie, parse_label, parse_score,
                                     score_options)

TOK = build_byte_tokenizer()
ONE_DECIMAL = re.compile(r"^-?(0|[1-9]\d*)\.\d$")


class NoCache:
    def reorder_cache(self, index):
        pass


class RandomLM(nn.Module):
    """Returns fresh random logits on every call: the most adversarial 'model' for a constraint."""

    def __init__(self, vocab: int, seed: int):
        super().__init__()
        self.vocab = vocab
        self.gen = torch.Generator().manual_seed(seed)
        self.calls = 0

    def forward(self, input_ids=None, inputs_embeds=None, **kw):
        self.calls += 1
        x = input_ids if input_ids is not None else inputs_embeds[..., 0]
        logits = torch.randn(*x.shape, self.vocab, generator=self.gen) * 5
        return SimpleNamespace(logits=logits, **{decoding.CACHE_OUT: NoCache()})


def prompt_batch(lengths, hidden=32, seed=0):
    """Random prompt embeddings, left padded to the longest length."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    embeds = torch.randn(len(lengths), width, hidden, generator=g)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, width - n:] = 1
    return embeds, mask, (mask.cumsum(-1) - 1).clamp(min=0)


@settings(max_examples=60, deadline=None)
@given(lo10=st.integers(-60, 40), span10=st.integers(0, 80), seed=st.integers(0, 10_000), rows=st.integers(1, 4))
def test_constrained_regression_always_valid_with_random_logits(lo10, span10, seed, rows):
    lo, hi = lo10 / 10 + 0.03 * (seed % 3 == 0), (lo10 + span10) / 10
    if lo > hi:
        lo = hi
    try:
        c = NumberConstraint(TOK, lo, hi)
    except ConfigError:  # e.g. [0.03, 0.0]: no one-decimal value inside
        assert round(hi, 1) < lo or hi < lo
        return
    embeds, mask, pos = prompt_batch([3] * rows, hidden=4, seed=seed)
    texts = greedy_decode(RandomLM(len(TOK), seed), embeds, mask, pos, TOK, max_new_tokens=1, constraints=[c] * rows)
    for t in texts:
        assert ONE_DECIMAL.match(t), t
        assert lo - 1e-9 <= float(t) <= hi + 1e-9 and t != "-0.0"


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 1000), lo=st.sampled_from([-3.0, -1.0, 0.0, 1.0]), width=st.sampled_from([0.5, 2.0, 6.0]))
def test_constrained_regression_valid_with_tiny_llm(seed, lo, width):
    model, _ = build_tiny_llm(32, 1, seed=seed)
    embeds, mask, pos = prompt_batch([4, 7], seed=seed)
    c = NumberConstraint(TOK, lo, lo + width)
    for t in greedy_decode(model, embeds, mask, pos, TOK, 1, constraints=[c, c]):
        assert ONE_DECIMAL.match(t) and lo <= float(t) <= lo + width


def test_number_constraint_allows_only_valid_continuations():
    c = NumberConstraint(TOK, -1.0, 1.0)
    allowed = lambda text: sorted(TOK.decode([i]) if i != TOK.eos_token_id else "EOS" for i in c.allowed(text))  # noqa: E731
    assert allowed("") == ["-", "0", "1"]
    assert allowed("-") == ["0", "1"]
    assert allowed("1") == ["."]
    assert allowed("1.") == ["0"]
    assert allowed("0.") == list("0123456789")
    assert allowed("0.3") == ["EOS"]
    assert c.complete("-") == "-0.1" and c.complete("0.3") == "0.3"
    with pytest.raises(ConfigError, match=r"score range \[0.01, 0.05\]: holds no one-decimal value"):
        NumberConstraint(TOK, 0.01, 0.05)


def brute_force_probs(model, embeds, mask, pos, row, options):
    """Log-likelihood of each option by running prompt + option from scratch, without any cache."""
    n = int(mask[row].sum())
    prompt = embeds[row, -n:]
    scores = []
    for seq in options:
        tok_emb = model.get_input_embeddings()(torch.tensor(seq))
        x = torch.cat([prompt, tok_emb])[None]
        logits = model(inputs_embeds=x).logits[0].float().log_softmax(-1)
        scores.append(sum(logits[n - 1 + t, s] for t, s in enumerate(seq)))
    return torch.stack(scores).softmax(-1)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_option_scores_equal_brute_force_with_padding_and_mixed_label_sets(attention):
    model, _ = build_tiny_llm(32, 2, seed=3)
    model.set_attn_implementation(attention)
    embeds, mask, pos = prompt_batch([5, 9, 2], seed=1)
    ids = lambda *words: [TOK(w, add_special_tokens=False)["input_ids"] + [TOK.eos_token_id] for w in words]  # noqa
    options = [ids("joy", "anger", "neutral"), ids("高兴", "平静"), ids("a", "bb", "ccc", "dddd")]
    with torch.no_grad():
        probs = score_options(model, embeds, mask, pos, options)
        for row, opts in enumerate(options):
            expected = brute_force_probs(model, embeds, mask, pos, row, opts)
            assert probs[row].shape == (len(opts),)
            assert torch.allclose(probs[row], expected, atol=1e-5), (row, probs[row], expected)
            assert abs(float(probs[row].sum()) - 1) < 1e-5


def test_constrained_classification_needs_one_pass_free_generation_one_per_token():
    lm = RandomLM(len(TOK), 0)
    embeds, mask, pos = prompt_batch([6, 6], hidden=4)
    seven = [[[i, i + 1, TOK.eos_token_id] for i in range(40, 47)]] * 2
    lm.config = SimpleNamespace(_attn_implementation="sdpa")
    lm.get_input_embeddings = lambda: nn.Embedding(len(TOK), 4)
    score_options(lm, embeds, mask, pos, seven)
    assert lm.calls == 1
    lm.calls = 0
    greedy_decode(lm, embeds, mask, pos, TOK, max_new_tokens=12)
    assert lm.calls == 12  # prefill + 11 steps (random logits rarely pick EOS; never here with this seed)


def test_greedy_decode_stops_at_eos_and_at_max_new_tokens():
    class Scripted(RandomLM):
        def forward(self, input_ids=None, inputs_embeds=None, **kw):
            self.calls += 1
            b = (input_ids if input_ids is not None else inputs_embeds[..., 0]).shape[0]
            logits = torch.zeros(b, 1, self.vocab)
            script = [ord("j") - 0, ord("o"), ord("y"), TOK.eos_token_id]
            logits[0, 0, TOK.convert_tokens_to_ids(chr(script[self.calls - 1])) if self.calls < 4 else TOK.eos_token_id] = 9
            logits[1, 0, TOK.convert_tokens_to_ids("z")] = 9
            return SimpleNamespace(logits=logits, **{decoding.CACHE_OUT: None})

    embeds, mask, pos = prompt_batch([3, 3], hidden=4)
    assert greedy_decode(Scripted(len(TOK), 0), embeds, mask, pos, TOK, max_new_tokens=5) == ["joy", "zzzzz"]


@pytest.mark.parametrize(
    "text, labels, expected",
    [
        ("Joy.", ("neutral", "joy"), "joy"),
        ("The emotion is ANGER, not joy", ("joy", "anger"), "anger"),
        ("joyful", ("joy", "neutral"), None),
        ("sadness", ("sad", "sadness"), "sadness"),
        ("我觉得是高兴", ("愤怒", "高兴"), "高兴"),
        ("高兴还是愤怒", ("愤怒", "高兴"), "高兴"),
        ("", ("joy",), None),
    ],
)
def test_parse_label(text, labels, expected):
    assert parse_label(text, labels) == expected


@pytest.mark.parametrize(
    "text, expected",
    [("-1.4", -1.4), ("The score is 2.5.", 2.5), ("score: \u22120.7", -0.7), ("+1", 1.0), ("9.9", 3.0),
     ("-12", -3.0), ("about 1.25 or 2", 1.25), ("positive", None), ("", None)],
)
def test_parse_score(text, expected):
    assert parse_score(text, -3.0, 3.0) == expected


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_restricted_option_scores_equal_brute_force_over_the_options_tokens(attention):
    """``restrict=True``: each position normalised over the tokens the options use, computed in one pass."""
    model, _ = build_tiny_llm(32, 2, seed=5)
    model.set_attn_implementation(attention)
    embeds, mask, pos = prompt_batch([4, 7], seed=2)
    ids = lambda *words: [TOK(w, add_special_tokens=False)["input_ids"] + [TOK.eos_token_id] for w in words]  # noqa
    options = [ids("-1.4", "0.0", "2.5", "-0.1"), ids("1.0", "-1.0")]
    with torch.no_grad():
        probs = score_options(model, embeds, mask, pos, options, restrict=True)
        vocab = sorted({t for opts in options for o in opts for t in o})
        for row, opts in enumerate(options):
            n = int(mask[row].sum())
            scores = []
            for seq in opts:
                x = torch.cat([embeds[row, -n:], model.get_input_embeddings()(torch.tensor(seq))])[None]
                logp = model(inputs_embeds=x).logits[0, :, vocab].float().log_softmax(-1)
                scores.append(sum(logp[n - 1 + t, vocab.index(s)] for t, s in enumerate(seq)))
            expected = torch.stack(scores).softmax(-1)
            assert torch.allclose(probs[row], expected, atol=1e-5), (row, probs[row], expected)


def shared_prefix_batch(prefix: int, rests: list[int], hidden: int = 32, seed: int = 0):
    """Left-padded prompts that all start with the same ``prefix`` embeddings, then ``rests[i]`` of their own."""
    g = torch.Generator().manual_seed(seed)
    head = torch.randn(prefix, hidden, generator=g)
    rows = [torch.cat([head, torch.randn(n, hidden, generator=g)]) for n in rests]
    width = max(len(r) for r in rows)
    embeds = torch.zeros(len(rows), width, hidden)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        embeds[i, width - len(r):] = r
        mask[i, width - len(r):] = 1
    return embeds, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def test_shared_prefix_length_counts_identical_leading_tokens_only():
    embeds, mask, _ = shared_prefix_batch(10, [1, 5, 3])
    assert decoding.shared_prefix_length(embeds, mask) == 10
    embeds, mask, _ = shared_prefix_batch(12, [0, 5])  # a row that is all prefix keeps its last token
    assert decoding.shared_prefix_length(embeds, mask) == 11
    embeds, mask, _ = shared_prefix_batch(10, [2, 2])
    embeds[1, -12 + 4] += 1  # rows part at token 4: too short to share
    assert decoding.shared_prefix_length(embeds, mask) == 0
    embeds, mask, _ = shared_prefix_batch(10, [2])
    assert decoding.shared_prefix_length(embeds, mask) == 0  # one row: nothing to share


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("restrict", [False, True])
def test_option_scores_with_a_shared_prefix_equal_brute_force(attention, restrict):
    model, _ = build_tiny_llm(32, 2, seed=4)
    model.set_attn_implementation(attention)
    embeds, mask, pos = shared_prefix_batch(9, [1, 6, 3], seed=5)
    ids = lambda *words: [TOK(w, add_special_tokens=False)["input_ids"] + [TOK.eos_token_id] for w in words]  # noqa
    options = [ids("joy", "anger", "neutral"), ids("高兴", "平静"), ids("-1.4", "0.0", "2.5")]
    calls = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: calls.append(kw["inputs_embeds"].shape[:2]),
                                           with_kwargs=True)
    with torch.no_grad():
        shared = score_options(model, embeds, mask, pos, options, restrict=restrict)
        hook.remove()
        alone = score_options(model, embeds, mask, pos, options, restrict=restrict, share_prefix=False)
        for row, opts in enumerate(options):
            assert torch.allclose(shared[row], alone[row], atol=1e-5), (row, shared[row], alone[row])
            if not restrict:
                assert torch.allclose(shared[row], brute_force_probs(model, embeds, mask, pos, row, opts), atol=1e-5)
    assert calls[0] == (1, 9)  # the prefix, read once for the three rows


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_generation_with_a_shared_prefix_matches_generation_without(attention):
    model, _ = build_tiny_llm(32, 2, seed=6)
    model.set_attn_implementation(attention)
    embeds, mask, pos = shared_prefix_batch(10, [2, 7, 4], seed=7)
    with torch.no_grad():
        shared_logits, _, full_mask = decoding._prefill(model, embeds, mask, pos, share_prefix=True)
        alone_logits, _, _ = decoding._prefill(model, embeds, mask, pos, share_prefix=False)
        assert full_mask.shape == (3, mask.shape[1]) and int(full_mask.sum()) == int(mask.sum())
        assert torch.allclose(shared_logits, alone_logits, atol=1e-5)
        constraints = [None, NumberConstraint(TOK, -3, 3), None]
        shared = greedy_decode(model, embeds, mask, pos, TOK, 6, constraints)
        alone = greedy_decode(model, embeds, mask, pos, TOK, 6, constraints, share_prefix=False)
    assert shared == alone


def test_option_trie_reads_a_shared_prefix_once():
    eos = 0
    options = [[5, 6, 7, eos], [5, 6, 8, eos], [5, 9, eos], [4, eos]]
    trie = option_trie(options)
    # Proper prefixes only, in first-seen order: (5,) (5,6) (5,6,7) (5,6,8) (5,9) (4,); 6 columns instead of 3+3+2+1.
    assert trie == {(5,): 0, (5, 6): 1, (5, 6, 7): 2, (5, 6, 8): 3, (5, 9): 4, (4,): 5}
    assert option_trie([[eos], [3, eos]]) == {(3,): 0}


def test_a_whole_score_grid_scored_as_a_tree_equals_each_value_alone():
    """Every one-decimal value of [-1, 1] (21 options sharing '-', '-0', '-0.', ...) in one pass, against each
    option run after the prompt on its own."""
    model, _ = build_tiny_llm(32, 2, seed=7)
    embeds, mask, pos = prompt_batch([6, 3], seed=4)
    grid = [f"{k / 10:.1f}" for k in range(-10, 11)]
    opts = [TOK(v, add_special_tokens=False)["input_ids"] + [TOK.eos_token_id] for v in grid]
    assert len(option_trie(opts)) < sum(len(o) - 1 for o in opts) // 2
    with torch.no_grad():
        probs = score_options(model, embeds, mask, pos, [opts, opts])
        for row in range(2):
            expected = brute_force_probs(model, embeds, mask, pos, row, opts)
            assert torch.allclose(probs[row], expected, atol=1e-5), (row, probs[row], expected)
