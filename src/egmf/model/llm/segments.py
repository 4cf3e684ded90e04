"""Reading a left-padded batch through the LLM in segments joined by a KV cache (decoding and training).

A batch of prompts is left padded (``[pads | tokens]`` per row). Two kinds of tokens need not go through the
LLM the ordinary way:

* the leading tokens every row shares (system message, instruction, label options: about a third of a MELD
  prompt) — read ONCE at batch size 1 and their keys/values expanded (a view, not a copy) over the rows;
* with LoRA on the upper layers only, the tokens before the pseudo-token slot — they depend on nothing
  trainable below the first LoRA layer, so read apart from the rest, fed detached, autograd records none of
  the lower layers for them.

Each segment is re-laid left padded (:func:`realign`), so the keys of the whole batch are laid out
``[prefix | pads | segment 2 | pads | segment 3]``: pads are masked and positions continue from the previous
segment, which gives every row exactly the attention it has in one pass (checked in the tests, loss and
gradients included). Gradients flow through the cache: it holds the autograd graph of its keys and values.
"""

from __future__ import annotations

import torch

# Below this many shared tokens, a separate pass over them costs about what it saves.
MIN_SHARED_PREFIX = 8


def _cache_names() -> tuple[str, str]:
    """transformers >= 5.2x calls the KV cache ``cache``; older versions ``past_key_values``."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return ("cache", "cache") if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else (
        "past_key_values", "past_key_values")


CACHE_ARG, CACHE_OUT = _cache_names()


def shared_prefix_length(embeds, attention_mask, limit: int | None = None) -> int:
    """How many leading prompt tokens every row of the batch shares exactly (0 when not worth sharing).

    Compared on the input embeddings, so pseudo tokens (different in every row) end the shared part and a
    batch mixing datasets shares only what their templates have in common. At least one token of each row
    is left to the batched pass, which reads the next-token logits; ``limit`` caps the count further (training
    keeps the pseudo slot and the answer out of the shared part).
    """
    b, width = attention_mask.shape
    lengths = attention_mask.sum(1)
    n = int(lengths.min()) - 1
    if limit is not None:
        n = min(n, limit)
    if b < 2 or n < MIN_SHARED_PREFIX:
        return 0
    with torch.no_grad():
        cols = (width - lengths)[:, None] + torch.arange(n, device=embeds.device)
        aligned = embeds.gather(1, cols[..., None].expand(-1, -1, embeds.shape[-1]))
        same = (aligned == aligned[:1]).all(-1).all(0)
        p = int(same.long().cumprod(0).sum())
    return p if p >= MIN_SHARED_PREFIX else 0


def biased_mask(key_mask, key_bias, q_len: int, dtype=torch.float32):
    """The 4-D additive attention mask ``[B, 1, q_len, Kv]`` of the last ``q_len`` key columns as queries: causal,
    padded keys (``key_mask == 0``) masked, and ``key_bias`` ``[B, Kv]`` added on every other key.

    Keys are laid out ``[cache columns | query columns]`` (every layout here is), so query ``i`` sees keys up to
    column ``Kv - q_len + i``. A query always sees itself, so no row is all masked (a pad query's output is never
    read). Masked entries hold the dtype's most negative value (``torch.where``, never a sum that overflows).
    """
    b, kv = key_mask.shape
    dev = key_mask.device
    q = torch.arange(q_len, device=dev)[:, None] + (kv - q_len)
    k = torch.arange(kv, device=dev)[None]
    allowed = ((k <= q)[None] & key_mask.bool()[:, None, :]) | (k == q)[None]
    bias = key_bias.to(dtype)[:, None, :].expand(b, q_len, kv)
    return torch.where(allowed, bias, torch.full_like(bias, torch.finfo(dtype).min))[:, None]


def realign(embeds, attention_mask, position_ids, begin, end):
    """Each row's real tokens ``[begin_i, end_i)`` (counted from its first real token), left padded anew to the
    longest: ``(embeds, attention_mask, position_ids)`` of that segment. ``begin``/``end``: ints or ``[B]``.

    Positions are the original ones, so they continue from the tokens before the segment. A pad column reads
    the original column of the same index (any valid column: it is masked).
    """
    b, width = attention_mask.shape
    dev = attention_mask.device
    pad = width - attention_mask.sum(1)
    begin = torch.as_tensor(begin, device=dev).expand(b)
    n = torch.as_tensor(end, device=dev).expand(b) - begin
    seg = int(n.max())
    col = torch.arange(seg, device=dev)[None]
    new_pad = (seg - n)[:, None]
    real = col >= new_pad
    src = torch.where(real, pad[:, None] + begin[:, None] + col - new_pad, col)
    out = embeds.gather(1, src[..., None].expand(-1, -1, embeds.shape[-1]))
    return out, real.to(attention_mask.dtype), position_ids.gather(1, src)


def realign_columns(values, attention_mask, position_ids, begin, end):
    """:func:`realign` of a per-column ``[B, L]`` tensor (e.g. a key bias): the same columns, padded the same way."""
    return realign(values.unsqueeze(-1), attention_mask, position_ids, begin, end)[0].squeeze(-1)


def expand_cache(cache, b: int):
    """The batch-1 cache ``cache`` seen by ``b`` rows: keys/values expanded (views; the next segment's
    ``torch.cat`` writes the only copy), gradients summed back over the rows by autograd."""
    layers = getattr(cache, "layers", None)
    if layers is None or not all(hasattr(layer, "keys") and hasattr(layer, "values") for layer in layers):
        cache.batch_repeat_interleave(b)  # an unfamiliar cache class: a copy, still exact
        return cache
    for layer in layers:
        if layer.keys is not None and layer.keys.numel():
            layer.keys = layer.keys.expand(b, *layer.keys.shape[1:])
            layer.values = layer.values.expand(b, *layer.values.shape[1:])
    return cache


def read_prefix(llm, embeds, attention_mask, position_ids, p: int):
    """Read the ``p`` leading tokens every row shares ONCE (row 0's copy of them); returns the KV cache
    expanded over the rows: ``(cache, attention mask of the prefix columns [B, p])``."""
    b, width = attention_mask.shape
    start = int(width - attention_mask[0].sum())
    head = slice(start, start + p)
    out = llm(inputs_embeds=embeds[:1, head], position_ids=position_ids[:1, head], use_cache=True, logits_to_keep=1)
    return expand_cache(getattr(out, CACHE_OUT), b), attention_mask.new_ones((b, p))


def segmented_logits(llm, embeds, attention_mask, position_ids, logits_to_keep: int, prefix: int = 0,
                     cut=None, key_bias=None):
    """The logits of the last ``logits_to_keep`` columns, as one LLM pass over the batch gives them, read in
    up to three segments: the ``prefix`` tokens every row shares (batch size 1), then, when ``cut`` ([B],
    counted from each row's first real token, ``>= prefix``) is given, the tokens before it, then the rest.

    Tokens before ``cut`` and the prefix are fed detached: the caller guarantees that nothing trainable acts on
    them below the first layer that has trainable weights (frozen embeddings, no pseudo token among them).
    Every row's rest must hold its ``logits_to_keep`` last tokens (checked). ``key_bias`` (``[B, L]``, see the
    module docstring) must be 0 on the prefix and on the tokens before ``cut`` (they are read without it).
    """
    b, width = attention_mask.shape
    lengths = attention_mask.sum(1)
    cache, masks = None, []
    if prefix:
        cache, m = read_prefix(llm, embeds.detach(), attention_mask, position_ids, prefix)
        masks.append(m)
    begin = prefix
    if cut is not None:
        x, m, pos = realign(embeds.detach(), attention_mask, position_ids, begin, cut)
        masks.append(m)
        kw = {CACHE_ARG: cache} if cache is not None else {}
        out = llm.get_decoder()(inputs_embeds=x, attention_mask=torch.cat(masks, 1), position_ids=pos,
                                use_cache=True, **kw)
        cache, begin = getattr(out, CACHE_OUT), cut
    x, m, pos = realign(embeds, attention_mask, position_ids, begin, lengths)
    if x.shape[1] < logits_to_keep:
        raise ValueError(f"segmented_logits: the last segment has {x.shape[1]} columns, {logits_to_keep} are kept")
    masks.append(m)
    mask = torch.cat(masks, 1)
    if key_bias is not None:
        rest = realign_columns(key_bias, attention_mask, position_ids, begin, lengths)
        bias = torch.cat([rest.new_zeros((b, mask.shape[1] - rest.shape[1])), rest], 1)
        mask = biased_mask(mask, bias, x.shape[1], x.dtype)
    kw = {CACHE_ARG: cache, "use_cache": True} if cache is not None else {"use_cache": False}
    out = llm(inputs_embeds=x, attention_mask=mask, position_ids=pos, logits_to_keep=logits_to_keep, **kw)
    return out.logits
