"""Decoding an answer from a prompt whose input embeddings are given (pseudo tokens already spliced in).

* :func:`score_options` — constrained classification: the prompt and every option (label tokens + EOS) go
  through the LLM in one batched pass (a custom attention mask keeps the options apart). Returns each
  sample's probabilities over its own label set (a batch may mix datasets).
* :func:`greedy_decode` with a :class:`NumberConstraint` — constrained regression: at each step only tokens
  made of sign, digits and "." that keep the text a prefix of a one-decimal number inside the range are
  allowed, and EOS only once the number is complete, so the answer always parses and lies in the range.
* :func:`greedy_decode` without a constraint — free generation; :func:`parse_label` / :func:`parse_score`
  read its text. The fallback when parsing fails is defined by the caller (EGMF uses the constrained answer
  and flags ``parsed=False``).

Every prompt is left padded (``egmf.model.llm.prompts``), so each row's next token is read in the last column.
Both decodings read the leading tokens every row of a batch shares (the system and task instruction, about
a third of a MELD prompt) once, into a KV cache expanded over the rows (:mod:`egmf.model.llm.segments`,
which training shares).

Every function takes an optional ``key_bias`` (``[B, L]`` over the prompt columns, 0 on ordinary tokens): EGMF's
pseudo-slot visibility gate, added to the attention logit of every query on those keys (the mask becomes
:func:`~egmf.model.llm.segments.biased_mask`'s 4-D additive mask). The shared prefix then stops before the first
biased column, so what is read once is read exactly as in the batched pass.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

from egmf.errors import ConfigError
from egmf.model.llm.prompts import format_score
from egmf.model.llm.segments import (CACHE_ARG, CACHE_OUT, MIN_SHARED_PREFIX, biased_mask, read_prefix, realign,
                                     realign_columns, shared_prefix_length)

__all__ = ["CACHE_ARG", "CACHE_OUT", "LABEL_SCORINGS", "MIN_SHARED_PREFIX", "NumberConstraint", "distinct_first_tokens",
           "greedy_decode", "option_log_probs", "parse_label", "parse_score", "score_options", "shared_prefix_length"]

# How an option's token log-probabilities become its score (model.label_scoring): their sum (the sequence's
# log-probability), their mean (length-normalised), or the first token's alone.
LABEL_SCORINGS = ("sum", "mean", "first")

NUMBER_CHARS = frozenset("-0123456789.")
MAX_GRID = 200_001  # one-decimal values in a range; [-3, 3] has 61


def _read_prefix(llm, embeds, attention_mask, position_ids, p: int):
    """Read the ``p`` leading tokens every row shares ONCE; returns the KV cache seen by every row and the
    rest of the batch: ``(cache, rest_embeds, attention_mask over prefix + rest, rest_position_ids)``.

    Rows are left padded (``[pads | prefix | rest]``); the rest keeps its pads in front (``[pads | rest]``),
    so the key layout is ``[prefix | pads | rest]``: the pads are masked and positions continue from the
    prefix, which gives each row exactly the attention it has without sharing (checked in the tests).
    """
    cache, prefix_mask = read_prefix(llm, embeds, attention_mask, position_ids, p)
    rest, rest_mask, rest_pos = realign(embeds, attention_mask, position_ids, p, attention_mask.sum(1))
    return cache, rest, torch.cat([prefix_mask, rest_mask], dim=1), rest_pos


def _unbiased_length(attention_mask, key_bias) -> int | None:
    """How many leading real tokens of every row carry no key bias (``None`` without a bias): the cap on the
    shared prefix, which is read without one."""
    if key_bias is None:
        return None
    width = attention_mask.shape[1]
    start = width - attention_mask.sum(1)
    biased = (key_bias != 0) & attention_mask.bool()
    first = torch.where(biased.any(1), biased.float().argmax(1), torch.full_like(start, width))
    return int((first - start).min())


def _after_shared_prefix(llm, embeds, attention_mask, position_ids, share_prefix: bool, key_bias=None):
    """``(p, cache kwargs, embeds, attention mask over prefix + rest, position_ids, key bias over prefix + rest)``
    of the batch left to read once its shared prefix (``p`` tokens) is in the cache; the batch unchanged,
    ``p = 0``, when none is shared."""
    limit = _unbiased_length(attention_mask, key_bias)
    p = shared_prefix_length(embeds, attention_mask, limit=limit) if share_prefix else 0
    if not p:
        return 0, {}, embeds, attention_mask, position_ids, key_bias
    rest_bias = None
    if key_bias is not None:
        rest = realign_columns(key_bias, attention_mask, position_ids, p, attention_mask.sum(1))
        rest_bias = torch.cat([rest.new_zeros((rest.shape[0], p)), rest], 1)
    past, embeds, attention_mask, position_ids = _read_prefix(llm, embeds, attention_mask, position_ids, p)
    return p, {CACHE_ARG: past}, embeds, attention_mask, position_ids, rest_bias


def _prefill(llm, embeds, attention_mask, position_ids, share_prefix: bool = True):
    """The prompt pass of generation: ``(last-column logits, KV cache, attention mask to extend)``."""
    return _prefill_biased(llm, embeds, attention_mask, position_ids, share_prefix)[:3]


def _prefill_biased(llm, embeds, attention_mask, position_ids, share_prefix: bool = True, key_bias=None):
    """:func:`_prefill` with a key bias: ``(last-column logits, KV cache, attention mask to extend, key bias over
    its columns or None)``."""
    _, cache, embeds, attention_mask, position_ids, key_bias = _after_shared_prefix(
        llm, embeds, attention_mask, position_ids, share_prefix, key_bias)
    mask = attention_mask if key_bias is None else biased_mask(attention_mask, key_bias, embeds.shape[1], embeds.dtype)
    out = llm(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids, use_cache=True,
              logits_to_keep=1, **cache)
    return out.logits[:, -1].float(), getattr(out, CACHE_OUT), attention_mask, key_bias


def distinct_first_tokens(options: list[list[int]]) -> bool:
    """Whether every option starts with its own token (then the first token alone decides the option)."""
    firsts = [o[0] for o in options if o]
    return len(firsts) == len(options) and len(set(firsts)) == len(firsts)


@torch.no_grad()
def score_options(llm, embeds, attention_mask, position_ids, options: list[list[list[int]]],
                  restrict: bool = False, share_prefix: bool = True, scoring: str = "sum",
                  key_bias=None) -> list[torch.Tensor]:
    """Probabilities over ``options[i]`` (token-id sequences) for each row ``i``, in ONE LLM pass (on the CPU, no
    gradient); :func:`option_log_probs` is the same pass with gradients, for a training loss."""
    return [lp.exp().cpu() for lp in option_log_probs(llm, embeds, attention_mask, position_ids, options, restrict,
                                                      share_prefix, scoring, key_bias)]


def option_log_probs(llm, embeds, attention_mask, position_ids, options: list[list[list[int]]],
                     restrict: bool = False, share_prefix: bool = True, scoring: str = "sum",
                     key_bias=None) -> list[torch.Tensor]:
    """Log-probabilities over ``options[i]`` (token-id sequences) for each row ``i``, in ONE LLM pass; differentiable
    (the grid loss of :class:`~egmf.model.egmf.EGMF` trains through it).

    ``restrict=True`` normalises each position over the tokens the options use only (the LM head is applied to
    those rows alone), instead of over the whole vocabulary: the distribution of a model constrained to write
    one of the options. It is what makes scoring the 61 one-decimal values of [-3, 3] cheap: the full-vocabulary
    head over every option position would otherwise dominate the cost (49k columns x hundreds of positions).

    The options' tokens (all but each one's last) are appended after the row's prompt as a prefix tree
    (:func:`option_trie`: a prefix the options share, such as the "-2." of "-2.3" and "-2.4", is read once), and a
    custom 4-D attention mask lets every tree node see the prompt and its own path only, with positions continuing
    from the prompt's end: the prompt is read once and all options are scored beside it, exactly as if each had
    been run after the prompt on its own (checked against that brute force in the tests). The 61 values of
    [-3, 3] take 78 appended columns with SmolLM2's digit tokens instead of 213 one option after another.

    ``share_prefix``: the leading tokens every row shares (the task instruction) are read once, not per row.

    ``scoring`` (:data:`LABEL_SCORINGS`): an option's score is the sum of its tokens' log-probabilities (EOS
    included), their mean, or the first token's alone; the log-probabilities returned are the log-softmax of the
    scores over each row's options. ``"first"`` needs options with distinct first tokens (checked); ``"sum"`` and
    ``"first"`` agree on the ranking of a model whose later tokens are certain, ``"mean"`` divides the deciding
    first token's log-probability by the length and so favours long options there.
    """
    if scoring not in LABEL_SCORINGS:
        raise ConfigError(f"label scoring: got {scoring!r}; valid choices: {', '.join(LABEL_SCORINGS)}")
    if scoring == "first":
        for opts in options:
            if not distinct_first_tokens(opts):
                raise ConfigError("label scoring 'first': the options share a first token "
                                  f"({[o[:1] for o in opts]}); use 'sum' or 'mean'")
    next_pos = position_ids[:, -1] + 1  # options continue from the prompt's last position (left padded)
    p, cache, embeds, attention_mask, position_ids, key_bias = _after_shared_prefix(
        llm, embeds, attention_mask, position_ids, share_prefix, key_bias)
    if key_bias is not None:
        key_bias = key_bias[:, p:]
    attention_mask = attention_mask[:, p:]  # the prefix columns are added back to the 4-D mask below
    b, width = attention_mask.shape
    dev = embeds.device
    tries = [option_trie(opts) for opts in options]
    extra = max([len(t) for t in tries] + [0])
    total = width + extra
    ids = torch.zeros((b, extra), dtype=torch.long, device=dev)
    pos = torch.zeros((b, extra), dtype=torch.long, device=dev)
    allow = torch.zeros((b, total, total), dtype=torch.bool, device=dev)
    real = attention_mask.bool()
    allow[:, :width, :width] = torch.tril(torch.ones(width, width, dtype=torch.bool, device=dev)) & real[:, None, :]
    for i, trie in enumerate(tries):
        for prefix, k in trie.items():
            col = width + k
            ids[i, k] = prefix[-1]
            pos[i, k] = next_pos[i] + len(prefix) - 1
            allow[i, col, :width] = real[i]
            for j in range(1, len(prefix) + 1):  # the node sees its own path: each ancestor prefix, itself included
                allow[i, col, width + trie[prefix[:j]]] = True
    idx = torch.arange(total, device=dev)
    allow[:, idx, idx] = True  # padding rows attend to themselves: no all-masked row, no NaN
    if p:  # every query also sees the shared prefix, read into the cache
        allow = torch.cat([allow.new_ones((b, total, p)), allow], dim=2)
    mask = allow[:, None]
    if key_bias is not None:  # the gate's bias on the prompt's slot columns; the options' own tokens get none
        bias = torch.cat([key_bias, key_bias.new_zeros((b, extra))], 1)
        if p:
            bias = torch.cat([bias.new_zeros((b, p)), bias], 1)
        bias = bias.to(embeds.dtype)[:, None, None, :].expand(mask.shape)
        mask = torch.where(mask, bias, torch.full_like(bias, torch.finfo(embeds.dtype).min))
    elif getattr(llm.config, "_attn_implementation", "sdpa") == "eager":  # eager wants an additive float mask
        mask = torch.zeros(mask.shape, dtype=embeds.dtype, device=dev).masked_fill(~mask, torch.finfo(embeds.dtype).min)
    x = torch.cat([embeds, llm.get_input_embeddings()(ids).to(embeds.dtype)], dim=1)
    positions = torch.cat([position_ids, pos], dim=1)
    vocab = None
    if restrict:
        vocab = sorted({t for opts in options for o in opts for t in o})
        hidden = llm.get_decoder()(inputs_embeds=x, attention_mask=mask, position_ids=positions, use_cache=bool(p),
                                   **cache)
        head = llm.get_output_embeddings()
        rows = torch.tensor(vocab, device=dev)
        weight = head.weight[rows]
        bias = head.bias[rows] if getattr(head, "bias", None) is not None else None
        logits = F.linear(hidden.last_hidden_state[:, width - 1:].to(weight.dtype), weight, bias)
        cap = getattr(llm.config, "final_logit_softcapping", None)
        if cap:  # Gemma 2 caps its logits in the LM head's forward, which the restricted path skips
            logits = torch.tanh(logits / cap) * cap
        where = {t: k for k, t in enumerate(vocab)}
    else:
        logits = llm(inputs_embeds=x, attention_mask=mask, position_ids=positions, logits_to_keep=extra + 1,
                     use_cache=bool(p), **cache).logits
    logp = logits.float().log_softmax(-1)  # column 0 = the prompt's last token, then the option tokens
    result = []
    for i, opts in enumerate(options):
        scores = []
        for o in opts:
            cols = [0] + [1 + tries[i][tuple(o[:j])] for j in range(1, len(o))]
            targets = [where[t] for t in o] if vocab is not None else o
            token_logp = logp[i, cols, torch.tensor(targets, device=dev)]
            if scoring == "first":
                token_logp = token_logp[:1]
            scores.append(token_logp.mean() if scoring == "mean" else token_logp.sum())
        result.append(torch.stack(scores).log_softmax(-1) if scores else logp.new_empty(0))
    return result


def option_trie(options: list[list[int]]) -> dict[tuple[int, ...], int]:
    """The column of each distinct proper prefix of ``options`` (token-id sequences) after the prompt, in first-seen
    order: the tree :func:`option_log_probs` reads. An option's token ``j > 0`` is predicted at the column of its
    prefix ``o[:j]``, its first token at the prompt's last column; an option's full sequence needs no column."""
    trie: dict[tuple[int, ...], int] = {}
    for o in options:
        for j in range(1, len(o)):
            trie.setdefault(tuple(o[:j]), len(trie))
    return trie


class NumberConstraint:
    """Allowed next tokens for a one-decimal number inside ``[lo, hi]`` (e.g. "-1.4", "0.0", "3.0")."""

    def __init__(self, tokenizer, lo: float, hi: float):
        first, last = math.ceil(lo * 10 - 1e-6), math.floor(hi * 10 + 1e-6)
        if last < first:
            raise ConfigError(f"score range [{lo}, {hi}]: holds no one-decimal value to answer with")
        if last - first + 1 > MAX_GRID:
            raise ConfigError(f"score range [{lo}, {hi}]: too wide for constrained decoding (max {MAX_GRID} values)")
        self.values = {format_score(k / 10) for k in range(first, last + 1)}
        self.prefixes = {v[:i] for v in self.values for i in range(len(v) + 1)}
        self.max_len = max(len(v) for v in self.values)
        self.eos = tokenizer.eos_token_id
        self.candidates = _number_tokens(tokenizer)

    def allowed(self, text: str) -> list[int]:
        ids = [t for t, s in self.candidates if text + s in self.prefixes]
        if text in self.values:
            ids.append(self.eos)
        return ids

    def complete(self, text: str) -> str:
        """The finished answer: ``text`` when valid, else the shortest valid number it starts, nearest 0
        (never fails; only reached when a tokenizer lacks the pieces to finish a number)."""
        if text in self.values:
            return text
        starts = sorted((v for v in self.values if v.startswith(text)), key=lambda v: (len(v), abs(float(v))))
        return starts[0] if starts else min(self.values, key=lambda v: abs(float(v)))


def _number_tokens(tokenizer) -> tuple[tuple[int, str], ...]:
    """Tokens whose text uses only sign, digits and '.', with that text (cached per tokenizer)."""
    cached = getattr(tokenizer, "_egmf_number_tokens", None)
    if cached is None:
        pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        special = set(tokenizer.all_special_ids)
        cached = tuple((i, s) for i, s in enumerate(pieces) if i not in special and s and set(s) <= NUMBER_CHARS)
        tokenizer._egmf_number_tokens = cached
    return cached


@torch.no_grad()
def greedy_decode(llm, embeds, attention_mask, position_ids, tokenizer, max_new_tokens: int,
                  constraints: list[NumberConstraint | None] | None = None, share_prefix: bool = True,
                  key_bias=None) -> list[str]:
    """Greedy decoding of each row until EOS or ``max_new_tokens``; returns the text of each row.

    Rows with a :class:`NumberConstraint` may only write valid numbers (and get at least enough steps to
    finish one); their text is completed by the constraint if the step budget ran out.
    """
    b = embeds.shape[0]
    constraints = constraints or [None] * b
    steps = max([max_new_tokens] + [c.max_len + 1 for c in constraints if c is not None])
    eos = tokenizer.eos_token_id
    logits, cache, mask, bias = _prefill_biased(llm, embeds, attention_mask, position_ids, share_prefix, key_bias)
    pos = position_ids[:, -1:]
    out_ids: list[list[int]] = [[] for _ in range(b)]
    texts = [""] * b
    done = [False] * b
    for step in range(steps):
        next_ids = []
        for i in range(b):
            if done[i]:
                next_ids.append(eos)
                continue
            c = constraints[i]
            if c is not None:
                allowed = c.allowed(texts[i])
                if not allowed:  # a tokenizer lacking the needed pieces: finish the number here
                    done[i] = True
                    next_ids.append(eos)
                    continue
                idx = torch.tensor(allowed, device=logits.device)
                tok = int(idx[logits[i, idx].argmax()])
            else:
                tok = int(logits[i].argmax())
            if tok == eos:
                done[i] = True
            else:
                out_ids[i].append(tok)
                texts[i] = tokenizer.decode(out_ids[i], skip_special_tokens=True)
            next_ids.append(tok)
        if all(done) or step == steps - 1:
            break
        ids = torch.tensor(next_ids, device=embeds.device)[:, None]
        mask = torch.cat([mask, mask.new_ones((b, 1))], dim=1)
        step_mask = mask
        if bias is not None:  # the new token is an ordinary key: bias 0
            bias = torch.cat([bias, bias.new_zeros((b, 1))], dim=1)
            step_mask = biased_mask(mask, bias, 1, embeds.dtype)
        pos = pos + 1
        out = llm(input_ids=ids, attention_mask=step_mask, position_ids=pos, use_cache=True, **{CACHE_ARG: cache})
        logits, cache = out.logits[:, -1].float(), getattr(out, CACHE_OUT)
        # Free rows stop after max_new_tokens even when constrained rows in the batch need more steps.
        for i in range(b):
            if constraints[i] is None and len(out_ids[i]) >= max_new_tokens:
                done[i] = True
    return [c.complete(t) if c is not None else t for c, t in zip(constraints, texts)]


# -- parsing free text -----------------------------------------------------------------------------------
_NUMBER = re.compile(r"[-+\u2212]?\d+(?:\.\d+)?")


def parse_label(text: str, labels: tuple[str, ...]) -> str | None:
    """The label word that appears first in ``text`` (case-insensitive; Chinese words as substrings).

    English words must stand alone ("joy" in "Joy." but not in "joyful"); at one position the longest
    label wins. ``None`` when no label appears.
    """
    best = None
    for label in labels:
        if label.isascii():
            m = re.search(r"(?<![A-Za-z])" + re.escape(label) + r"(?![A-Za-z])", text, flags=re.IGNORECASE)
        else:
            m = re.search(re.escape(label), text)
        if m is not None:
            key = (m.start(), -len(label))
            if best is None or key < best[0]:
                best = (key, label)
    return best[1] if best else None


def parse_score(text: str, lo: float, hi: float) -> float | None:
    """The first number in ``text`` (a minus sign may be ASCII or U+2212), clamped to ``[lo, hi]``."""
    m = _NUMBER.search(text)
    if m is None:
        return None
    raw = m.group(0).replace("\u2212", "-")
    value = float(raw)
    return float(min(max(value, lo), hi))
