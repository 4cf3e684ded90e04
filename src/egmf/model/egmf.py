"""The EGMF model: expert fusion -> K pseudo tokens spliced into the prompt -> LLM (+LoRA) -> answer text.

``forward(batch)`` renders each sample's prompt (a batch may mix datasets, tasks and languages: each
:class:`~egmf.data.schema.Sample` carries its own), runs the fusion, writes its K pseudo tokens over the
placeholder slots of the prompt's input embeddings and computes the LM loss on the answer tokens only
(logits are computed only for the last columns, where left padding puts every answer). The leading prompt
tokens every row shares are read once per batch (``model.llm.share_prefix``; with LoRA on the upper layers
only, the tokens before the pseudo slot are also read apart, without gradients below; see
``egmf.model.llm.segments``). ``predict`` answers with constrained decoding (always a valid label / in-range
score) or free generation + parsing.

How it starts (``model.pseudo_init`` / ``pseudo_visibility``): each pseudo slot is a learned anchor drawn from the
word embeddings plus the fusion's residual, and a per-slot visibility gate, almost closed at init, biases every
query's attention to the slots by ``log sigmoid(g_k)`` while the slots take no position of their own; so at step 0
EGMF reads its prompt as the text-only LLM does (within the leak ``sigmoid(g)``) and fusion can only add.

The loss (``model.answer_loss``) is per sample over its answer tokens, then the mean over samples, optionally
with class weights fitted on the train labels (:meth:`EGMF.fit_class_weights`); constrained classification scores
each label by ``model.label_scoring``.

Registered as ``egmf``; ``llm_text`` is the same model without fusion (the text-only LLM baseline) and
``egmf_mean_gate`` the same model with both gating levels off (uniform means).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from egmf.data.collate import Batch
from egmf.data.schema import DatasetInfo, Sample
from egmf.errors import ConfigError, DataFormatError
from egmf.model.base import FusionOutput, ModelOutput, Prediction
from egmf.model.class_weights import fit_class_weights, sample_weights
from egmf.model.config import ModelConfig, text_feature_dim
from egmf.model.llm.backends import input_embedding_scale, load_llm
from egmf.model.llm.decoding import (NumberConstraint, distinct_first_tokens, greedy_decode, option_log_probs,
                                     parse_label, parse_score, score_options)
from egmf.model.llm.lora import lora_parameters, wrap_with_lora
from egmf.model.llm.precision import cast_frozen_linears, resolve_autocast, resolve_frozen_dtype
from egmf.model.llm.prompts import IGNORE, EncodedBatch, PromptEncoder, format_score
from egmf.model.llm.segments import biased_mask, segmented_logits, shared_prefix_length

DECODINGS = ("constrained", "free")


class SlotVisibility(nn.Module):
    """The per-slot visibility gate: ``g_k = init + RATE * theta_k`` (``theta`` starts at 0); the LLM adds
    ``log sigmoid(g_k)`` to every attention logit on slot k's key, i.e. scales its attention weight by
    ``sigmoid(g_k)``.

    ``RATE``: Adam moves ``theta`` by about the learning rate per step whatever the gradient's size (which is
    ``~sigmoid(g)``, small while the gate is nearly closed), so with ``g`` itself as the parameter a gate starting
    at -6 would need some 6,000 steps at lr 1e-3 to open; scaled by 50 it can open within about a hundred, as fast
    as the evidence for it arrives. Weight decay on ``theta`` pulls ``g`` back to its (closed) start, not to 0.
    """

    RATE = 50.0

    def __init__(self, k: int, init: float):
        super().__init__()
        self.init = float(init)
        self.theta = nn.Parameter(torch.zeros(k))

    def logits(self) -> torch.Tensor:
        return self.init + self.RATE * self.theta

    def forward(self) -> torch.Tensor:
        """``[K]``: the additive attention bias ``log sigmoid(g)`` of each slot (<= 0)."""
        return F.logsigmoid(self.logits())


class FusionHeads(nn.Module):
    """One linear head per dataset on the fusion's gated vector ``fused [B, d]``, trained on the label: label
    logits (ERC, cross-entropy) or a score in units of the half range (MSA, absolute error against the score mapped
    to [-1, 1]). Its loss reaches the fusion whatever the LLM makes of the slots, which the visibility gate hides
    at the start: without it the fusion learns only through that nearly closed gate."""

    def __init__(self, d_model: int, infos: dict[str, DatasetInfo]):
        super().__init__()
        self.infos = dict(infos)
        self.names = list(self.infos)
        self.heads = nn.ModuleList(nn.Linear(d_model, len(i.labels) if i.task == "erc" else 1) for i in infos.values())

    def loss(self, fused: torch.Tensor, samples: list[Sample]) -> torch.Tensor:
        """The mean over the labelled samples of their head loss (fp32, outside any autocast)."""
        total, n = fused.new_zeros((), dtype=torch.float32), 0
        with torch.autocast(device_type=fused.device.type, enabled=False):
            for head, name in zip(self.heads, self.names):
                rows = [i for i, s in enumerate(samples) if s.dataset == name and s.label is not None]
                if not rows:
                    continue
                out = head(fused[rows].float())
                info = self.infos[name]
                if info.task == "erc":
                    target = torch.tensor([info.labels.index(str(samples[i].label)) for i in rows], device=out.device)
                    total = total + F.cross_entropy(out, target, reduction="sum")
                else:
                    lo, hi = info.score_range
                    y = torch.tensor([float(samples[i].label) for i in rows], device=out.device)
                    target = ((y - (lo + hi) / 2) / ((hi - lo) / 2)).clamp(-1.0, 1.0)
                    total = total + (out.squeeze(-1) - target).abs().sum()
                n += len(rows)
        return total / max(n, 1)


def anchor_rows(weight: torch.Tensor, k: int, exclude=(), seed: int = 0) -> torch.Tensor:
    """K distinct, typical rows of an embedding matrix: drawn (seeded) among the tokens whose cosine with the mean
    embedding lies between its quartiles, leaving out ``exclude`` (special tokens). Returns their ids ``[K]``."""
    w = weight.detach().float()
    cos = F.cosine_similarity(w, w.mean(0, keepdim=True), dim=-1)
    lo, hi = torch.quantile(cos, torch.tensor([0.25, 0.75]))
    ok = (cos >= lo) & (cos <= hi)
    ok[torch.tensor([i for i in exclude if 0 <= i < len(ok)], dtype=torch.long)] = False
    ids = ok.nonzero().squeeze(-1)
    if len(ids) < k:
        raise ConfigError(f"EGMF: the LLM's vocabulary has {len(ids)} typical tokens, {k} pseudo anchors are needed")
    g = torch.Generator().manual_seed(seed)
    return ids[torch.randperm(len(ids), generator=g)[:k]]


def check_sliding_window(config, tokens: int) -> None:
    """Refuse prompts longer than a sliding-window layer's window (Gemma 3: 512 tokens). EGMF hands the LLM
    4-D attention masks of its own (the slots' visibility bias, option scoring, segments), and such a mask is
    used as it is by every layer: past the window, the sliding layers would see what they were never trained on."""
    window = getattr(config, "sliding_window", None)
    if window and "sliding_attention" in (getattr(config, "layer_types", None) or ()) and tokens > window:
        raise ConfigError(
            f"model.prompt.max_prompt_tokens: prompt plus answer ({tokens} tokens with model.max_new_tokens) exceeds "
            f"the sliding window of {config.model_type} ({window} tokens); expected max_prompt_tokens <= "
            f"{window} - max_new_tokens"
        )


@dataclass
class ScoreOutput:
    """Teacher-forced scores of a batch: per-sample mean target loss and the logits that predict targets.

    ``logits[i, t]`` predicts ``targets[i, t]`` (``-100`` = not a target); rows are left aligned to the end.
    """

    sample_loss: torch.Tensor  # [B]
    token_loss: torch.Tensor  # [B, T] (0 where not a target)
    logits: torch.Tensor  # [B, T, V]
    targets: torch.Tensor  # [B, T]
    fusion: FusionOutput | None


class EGMF(nn.Module):
    def __init__(self, cfg: ModelConfig, infos: dict[str, DatasetInfo], feature_dims: dict[str, dict[str, int]],
                 llm: nn.Module | None = None, tokenizer=None):
        super().__init__()
        if not infos:
            raise ConfigError("EGMF: expected the DatasetInfo of at least one dataset")
        self.cfg = cfg
        self.infos = dict(infos)
        if llm is None:
            llm, tokenizer = load_llm(cfg.llm)
        self.tokenizer = tokenizer
        check_sliding_window(llm.config, cfg.prompt.max_prompt_tokens + cfg.max_new_tokens)
        emb = llm.get_input_embeddings()
        self.hidden_size = emb.embedding_dim
        self.num_pseudo = cfg.num_pseudo_tokens  # K: the one definition (0 without fusion)
        gated = bool(self.num_pseudo) and cfg.pseudo_visibility == "gated"
        # A gated slot takes no position: the text keeps the text-only prompt's positions.
        self.prompts = PromptEncoder(tokenizer, cfg.prompt, self.num_pseudo, slot_positions=not gated)
        self.fusion = None
        self.visibility = SlotVisibility(self.num_pseudo, cfg.pseudo_gate_init) if gated else None
        if cfg.use_fusion:
            from egmf.model.fusion import ExpertFusion

            # Pseudo tokens start at the mean norm of the word embeddings the LLM reads: neither drowned nor
            # dominating. Gemma's embedding layer multiplies its rows by sqrt(hidden) (25x at 640), so the norm
            # and the anchors are taken as the layer outputs them, not as its weight stores them.
            scale = input_embedding_scale(emb)
            target_norm = float(emb.weight.detach().float().norm(dim=-1).mean()) * scale
            dims = self.fusion_dims(feature_dims)
            anchors = None
            if cfg.pseudo_init == "anchored":
                ids = anchor_rows(emb.weight, cfg.fusion.num_pseudo_tokens, getattr(tokenizer, "all_special_ids", ()))
                anchors = emb.weight.detach()[ids].float() * scale
            self.fusion = ExpertFusion(cfg.fusion, dims, self.hidden_size, target_norm=target_norm, anchors=anchors,
                                       residual_scale=cfg.pseudo_residual_scale)
            # _embeds writes the fusion's tokens over the prompt's slots: the two counts must agree.
            if self.fusion.num_tokens != self.prompts.k:
                raise ConfigError(
                    f"EGMF: the fusion emits {self.fusion.num_tokens} pseudo tokens but the prompt has "
                    f"{self.prompts.k} slots for them; both must be model.fusion.num_pseudo_tokens"
                )
        self.fusion_heads = None
        if self.fusion is not None and cfg.fusion_head_weight > 0:
            self.fusion_heads = FusionHeads(cfg.fusion.d_model, self.infos)
        self.llm = wrap_with_lora(llm, cfg.lora, cfg.llm.gradient_checkpointing)
        # 'auto' is decided once, here: the frozen weights' dtype and every later forward must agree on it.
        self.autocast = resolve_autocast(cfg.llm)
        cast_frozen_linears(self.llm, resolve_frozen_dtype(cfg.llm, self.autocast))
        self._answers: dict[tuple[str, str], list[int]] = {}
        self._constraints: dict[str, NumberConstraint] = {}
        self._scorings: dict[str, str] = {}
        # {dataset: {label: weight}}; empty = every sample weighs 1 (set by fit_class_weights; not in checkpoints:
        # it shapes the training loss only and is refitted from the train split whenever training starts).
        self.class_weights: dict[str, dict[str, float]] = {}

    def fit_class_weights(self, samples: list[Sample]) -> None:
        """Set the ERC loss weights from the label counts of ``samples`` (the train split) under
        ``model.class_weighting``; ``none`` leaves every weight at 1."""
        self.class_weights = fit_class_weights(self.infos, samples, self.cfg.class_weighting)

    def sample_weights(self, samples: list[Sample]) -> torch.Tensor:
        """``[B]`` loss weight of each sample (1 unless class weights are fitted for its dataset)."""
        return sample_weights(self.class_weights, samples, self.device)

    # -- plumbing -------------------------------------------------------------------------------------------
    def fusion_dims(self, feature_dims: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        """The fusion's input dims per dataset, with the text modality set by ``text_source``."""
        missing = sorted(set(self.infos) - set(feature_dims))
        if missing:
            raise ConfigError(f"EGMF: feature_dims lacks datasets {missing}; it has {sorted(feature_dims)}")
        dims = {}
        for name in self.infos:
            d = dict(feature_dims[name])
            d["text"] = text_feature_dim(self.cfg.text_source, d.get("text", 0), self.hidden_size)
            dims[name] = d
        return dims

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    def _autocast(self):
        if self.autocast == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _info(self, sample: Sample) -> DatasetInfo:
        info = self.infos.get(sample.dataset)
        if info is None:
            raise DataFormatError(sample.dataset, f"{sample.id}.dataset", f"one of {sorted(self.infos)}", sample.dataset)
        return info

    def _fuse(self, batch: Batch) -> FusionOutput | None:
        if self.fusion is None:
            return None
        features = {m: t.to(self.device) for m, t in batch.features.items()}
        masks = {m: t.to(self.device) for m, t in batch.masks.items()}
        if self.cfg.text_source == "llm":
            features["text"], masks["text"] = self._utterance_embeddings(batch.samples)
        elif self.cfg.text_source == "none":
            features.pop("text", None)
            masks.pop("text", None)
        return self.fusion(features, masks, [s.dataset for s in batch.samples])

    def _utterance_embeddings(self, samples: list[Sample]):
        """The LLM's frozen input embeddings of each utterance (right padded), as the fusion's text modality."""
        ids = [self.prompts.utterance_ids(s, self.cfg.max_utterance_tokens) for s in samples]
        width = max([len(x) for x in ids] + [1])
        tok = torch.full((len(ids), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.bool)
        for i, x in enumerate(ids):
            tok[i, : len(x)] = torch.tensor(x, dtype=torch.long)
            mask[i, : len(x)] = True
        with torch.no_grad():
            emb = self.llm.get_input_embeddings()(tok.to(self.device)).float()
        return emb * mask.to(self.device).unsqueeze(-1), mask.to(self.device)

    def _encode(self, samples: list[Sample], with_target: bool) -> EncodedBatch:
        eb = self.prompts.pad([self.prompts.encode(s, self._info(s), with_target) for s in samples])
        d = self.device
        return dataclasses.replace(
            eb, input_ids=eb.input_ids.to(d), attention_mask=eb.attention_mask.to(d),
            position_ids=eb.position_ids.to(d), labels=eb.labels.to(d), pseudo_index=eb.pseudo_index.to(d),
        )

    def key_bias(self, eb: EncodedBatch) -> torch.Tensor | None:
        """``[B, L]``: the visibility gate's attention bias on each pseudo slot column, 0 elsewhere; ``None`` when
        the slots are ordinary tokens (no gate, or no slots)."""
        if self.visibility is None:
            return None
        b, k = eb.pseudo_index.shape
        bias = self.visibility()
        rows = torch.arange(b, device=bias.device).repeat_interleave(k)
        zeros = torch.zeros(eb.input_ids.shape, dtype=bias.dtype, device=bias.device)
        return zeros.index_put((rows, eb.pseudo_index.reshape(-1)), bias.repeat(b))

    def pseudo_visibility(self) -> list[float]:
        """``sigmoid(g_k)`` of each slot: the factor on its attention weight (1.0 each without the gate)."""
        if self.visibility is None:
            return [1.0] * self.num_pseudo
        return [float(x) for x in torch.sigmoid(self.visibility.logits().detach())]

    def _embeds(self, eb: EncodedBatch, fusion: FusionOutput | None, rows: list[int] | None = None) -> torch.Tensor:
        """The prompt's input embeddings with the fusion's pseudo tokens in its slots; ``rows``: the batch rows of
        ``fusion`` that ``eb`` encodes (default: all, in order)."""
        embeds = self.llm.get_input_embeddings()(eb.input_ids)
        if fusion is None or self.num_pseudo == 0:
            return embeds
        tokens = fusion.tokens if rows is None else fusion.tokens[rows]
        b, k = eb.pseudo_index.shape
        at = torch.arange(b, device=embeds.device).repeat_interleave(k)
        # index_put (not in place on a leaf view) keeps the gradient path to the fusion.
        return embeds.index_put((at, eb.pseudo_index.reshape(-1)), tokens.reshape(b * k, -1).to(embeds.dtype))

    # -- training -------------------------------------------------------------------------------------------
    def score(self, batch: Batch) -> ScoreOutput:
        """Teacher-forced LM scores of the answers (the basis of :meth:`forward`)."""
        eb = self._encode(batch.samples, with_target=True)
        # The fusion stays in fp32: it is small, and bf16 convolutions are slow on many CPUs.
        fusion = self._fuse(batch)
        embeds = self._embeds(eb, fusion)
        width = eb.input_ids.shape[1]
        is_target = eb.labels != IGNORE
        first = torch.where(is_target.any(1), is_target.float().argmax(1), torch.full_like(eb.labels[:, 0], width))
        keep = int(width - first.min()) + 1  # logits only from the column before the first answer token
        logits = self._lm_logits(eb, embeds, keep)[:, :-1].float()
        targets = eb.labels[:, width - keep + 1:]
        token_loss = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
        counts = (targets != IGNORE).sum(1).clamp(min=1)
        return ScoreOutput(token_loss.sum(1) / counts, token_loss, logits, targets, fusion)

    def _lm_logits(self, eb: EncodedBatch, embeds: torch.Tensor, keep: int) -> torch.Tensor:
        """The LLM's logits of the last ``keep`` columns: one pass over the batch, or the same numbers read in
        segments (:mod:`egmf.model.llm.segments`) when :meth:`_segments` finds any worth reading apart."""
        prefix, cut = self._segments(eb, embeds)
        bias = self.key_bias(eb)
        with self._autocast():
            if prefix or cut is not None:
                return segmented_logits(self.llm, embeds, eb.attention_mask, eb.position_ids, keep, prefix, cut,
                                        key_bias=bias)
            mask = eb.attention_mask if bias is None else biased_mask(eb.attention_mask, bias, embeds.shape[1],
                                                                      embeds.dtype)
            return self.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=eb.position_ids,
                            logits_to_keep=keep, use_cache=False).logits

    def _segments(self, eb: EncodedBatch, embeds: torch.Tensor) -> tuple[int, torch.Tensor | None]:
        """``(shared prefix length, per-row cut or None)`` of a teacher-forced batch (see ``segmented_logits``).

        Only tokens before ``free`` (per row, from its first real token) may leave the last pass: from the
        pseudo slot on they depend on the fusion, and the column before the first answer token carries logits.
        """
        llm, lora = self.cfg.llm, self.cfg.lora
        if llm.gradient_checkpointing:  # checkpointed layers drop the KV cache the segments are joined by
            return 0, None
        width = eb.input_ids.shape[1]
        start = width - eb.attention_mask.sum(1)
        is_target = eb.labels != IGNORE
        first = torch.where(is_target.any(1), is_target.float().argmax(1), torch.full_like(start, width))
        free = first - 1 - start
        if self.fusion is not None and self.num_pseudo:
            free = torch.minimum(free, eb.pseudo_index[:, 0] - start)
        prefix = shared_prefix_length(embeds, eb.attention_mask, limit=int(free.min())) if llm.share_prefix else 0
        cut = None
        if lora.layers_from > 0 and lora.r > 0 and lora.lower_layers_no_grad and int(free.max()) > prefix:
            cut = free.clamp(min=prefix)
        return prefix, cut

    def forward(self, batch: Batch) -> ModelOutput:
        s = self.score(batch)
        task_loss = self.answer_loss(s.token_loss, s.targets, self.sample_weights(batch.samples))
        aux = s.fusion.aux_loss if s.fusion is not None else None
        if self.fusion_heads is not None and s.fusion.fused is not None:
            head = self.fusion_heads.loss(s.fusion.fused, batch.samples) * self.cfg.fusion_head_weight
            aux = head if aux is None else aux + head
        if self.cfg.score_loss_weight > 0:
            grid = self.grid_loss(batch.samples, s.fusion)
            if grid is not None:
                grid = grid * self.cfg.score_loss_weight
                aux = grid if aux is None else aux + grid
        loss = task_loss + aux if aux is not None else task_loss
        gates = s.fusion.gates if s.fusion is not None else {}
        return ModelOutput(loss=loss, task_loss=task_loss.detach(), aux_loss=aux, gates=gates)

    def answer_loss(self, token_loss: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The task loss of ``token_loss [B, T]`` (0 off the targets) under ``model.answer_loss``, each sample
        weighted by ``weights [B]``: the weighted mean of the per-sample sums or means, or (``token_mean``) of
        every answer token."""
        n = (targets != IGNORE).sum(1)
        w = weights.to(token_loss.dtype)
        if self.cfg.answer_loss == "token_mean":
            return (w * token_loss.sum(1)).sum() / (w * n).sum().clamp(min=1e-12)
        per = token_loss.sum(1)
        if self.cfg.answer_loss == "sample_mean":
            per = per / n.clamp(min=1)
        return (w * per).sum() / w.sum().clamp(min=1e-12)

    def grid_loss(self, samples: list[Sample], fusion: FusionOutput | None) -> torch.Tensor | None:
        """``model.score_loss_weight``'s loss: over the batch's labelled MSA samples, the expected absolute error
        ``sum_v p(v) |v - y| / half range`` under the LLM's distribution over the score grid (read as 'median'
        decoding reads it: the prompt without its answer, every grid value scored beside it), summed and divided
        by the batch size, so that it weighs each sample as the token loss does. ``None`` without MSA samples."""
        rows = [i for i, s in enumerate(samples) if self._info(s).task == "msa" and s.label is not None]
        if not rows:
            return None
        eb = self._encode([samples[i] for i in rows], with_target=False)
        embeds = self._embeds(eb, fusion, rows)
        infos = [self._info(samples[i]) for i in rows]
        grids = [self.score_grid(info) for info in infos]
        options = [self.grid_answer_ids(info) for info in infos]
        with self._autocast():
            logps = option_log_probs(self.llm, embeds, eb.attention_mask, eb.position_ids, options, restrict=True,
                                     key_bias=self.key_bias(eb))
        total = embeds.new_zeros((), dtype=torch.float32)
        for i, info, grid, logp in zip(rows, infos, grids, logps):
            lo, hi = info.score_range
            y = min(max(float(samples[i].label), lo), hi)
            err = torch.tensor([abs(v - y) for v in grid], device=logp.device) / ((hi - lo) / 2)
            total = total + (logp.float().exp() * err).sum()
        return total / len(samples)

    # -- inference ------------------------------------------------------------------------------------------
    def answer_ids(self, info: DatasetInfo, label: str) -> list[int]:
        key = (info.name, label)
        if key not in self._answers:
            self._answers[key] = self.prompts.answer_ids(label)
        return self._answers[key]

    def prompt_length(self, sample: Sample) -> int:
        """Tokens of ``sample``'s prompt (pseudo slots included): the key inference batches are sorted by."""
        return len(self.prompts.prompt(sample, self._info(sample))[0])

    def score_grid(self, info: DatasetInfo) -> list[float]:
        """Every score the model can write for ``info``: the range in steps of 0.1."""
        lo, hi = info.score_range
        return [round(lo + k / 10, 1) for k in range(int(round((hi - lo) * 10)) + 1)]

    def grid_answer_ids(self, info: DatasetInfo) -> list[list[int]]:
        """The answer token ids of every value of :meth:`score_grid`, in its order: the options that median decoding
        and the grid loss score."""
        return [self.answer_ids(info, format_score(v)) for v in self.score_grid(info)]

    def label_scoring(self, info: DatasetInfo) -> str:
        """How ``info``'s labels are scored: ``model.label_scoring``, except that ``first`` falls back to ``sum``
        on a label set whose first tokens collide (the first token would not decide the label)."""
        if info.name not in self._scorings:
            scoring = self.cfg.label_scoring
            if scoring == "first" and not distinct_first_tokens([self.answer_ids(info, lab) for lab in info.labels]):
                scoring = "sum"
            self._scorings[info.name] = scoring
        return self._scorings[info.name]

    def constraint(self, info: DatasetInfo) -> NumberConstraint:
        if info.name not in self._constraints:
            lo, hi = info.score_range
            self._constraints[info.name] = NumberConstraint(self.tokenizer, lo, hi)
        return self._constraints[info.name]

    @torch.no_grad()
    def predict(self, batch: Batch, decoding: str = "constrained") -> list[Prediction]:
        if decoding not in DECODINGS:
            raise ConfigError(f"decoding: got {decoding!r}; valid choices: {', '.join(DECODINGS)}")
        samples = batch.samples
        eb = self._encode(samples, with_target=False)
        rows = list(range(len(samples)))
        fusion = self._fuse(batch)
        embeds = self._embeds(eb, fusion)
        bias = self.key_bias(eb)
        with self._autocast():
            if decoding == "constrained":
                answers = self._constrained(samples, eb, embeds, rows, bias)
            else:
                answers = self._free(samples, eb, embeds, rows, bias)
        preds = []
        for i, s in enumerate(samples):
            gates = {k: [float(x) for x in v[i].float()] for k, v in fusion.gates.items()} if fusion else {}
            preds.append(dataclasses.replace(answers[i], gates=gates))
        return preds

    def _constrained(self, samples, eb: EncodedBatch, embeds, rows: list[int], bias=None) -> dict[int, Prediction]:
        answers: dict[int, Prediction] = {}
        erc = [i for i in rows if self._info(samples[i]).task == "erc"]
        msa = [i for i in rows if i not in erc]

        def sub(idx):
            return None if bias is None else bias[idx]

        by_scoring: dict[str, list[int]] = {}
        for i in erc:
            by_scoring.setdefault(self.label_scoring(self._info(samples[i])), []).append(i)
        for scoring, group in by_scoring.items():
            idx = torch.tensor(group, device=embeds.device)
            infos = [self._info(samples[i]) for i in group]
            options = [[self.answer_ids(info, lab) for lab in info.labels] for info in infos]
            probs = score_options(self.llm, embeds[idx], eb.attention_mask[idx], eb.position_ids[idx], options,
                                  scoring=scoring, key_bias=sub(idx))
            for i, info, p in zip(group, infos, probs):
                dist = {lab: float(x) for lab, x in zip(info.labels, p)}
                answers[i] = Prediction(samples[i].id, info.name, "erc", info.labels[int(p.argmax())], probabilities=dist)
        if msa and self.cfg.score_decoding == "median":
            idx = torch.tensor(msa, device=embeds.device)
            infos = [self._info(samples[i]) for i in msa]
            grids = [self.score_grid(info) for info in infos]
            options = [self.grid_answer_ids(info) for info in infos]
            probs = score_options(self.llm, embeds[idx], eb.attention_mask[idx], eb.position_ids[idx], options,
                                  restrict=True, key_bias=sub(idx))
            for i, info, grid, p in zip(msa, infos, grids, probs):
                value = weighted_median(grid, p)
                answers[i] = Prediction(samples[i].id, info.name, "msa", value, score=value)
        elif msa:
            idx = torch.tensor(msa, device=embeds.device)
            infos = [self._info(samples[i]) for i in msa]
            texts = greedy_decode(self.llm, embeds[idx], eb.attention_mask[idx], eb.position_ids[idx], self.tokenizer,
                                  max_new_tokens=1, constraints=[self.constraint(info) for info in infos],
                                  key_bias=sub(idx))
            for i, info, text in zip(msa, infos, texts):
                answers[i] = Prediction(samples[i].id, info.name, "msa", float(text), score=float(text))
        return answers

    def _free(self, samples, eb: EncodedBatch, embeds, rows: list[int], bias=None) -> dict[int, Prediction]:
        """Free generation + parsing; a sample whose text does not parse gets the constrained answer and
        ``parsed=False`` (its generated text is kept)."""
        texts = greedy_decode(self.llm, embeds, eb.attention_mask, eb.position_ids, self.tokenizer,
                              self.cfg.max_new_tokens, key_bias=bias)
        answers: dict[int, Prediction] = {}
        failed = []
        for i in rows:
            info = self._info(samples[i])
            if info.task == "erc":
                label = parse_label(texts[i], info.labels)
                if label is not None:
                    answers[i] = Prediction(samples[i].id, info.name, "erc", label, generated=texts[i])
                    continue
            else:
                value = parse_score(texts[i], *info.score_range)
                if value is not None:
                    answers[i] = Prediction(samples[i].id, info.name, "msa", value, score=value, generated=texts[i])
                    continue
            failed.append(i)
        if failed:
            for i, p in self._constrained(samples, eb, embeds, failed, bias).items():
                answers[i] = dataclasses.replace(p, generated=texts[i], parsed=False)
        return answers

    # -- what training changes ------------------------------------------------------------------------------
    def _trained_modules(self) -> dict[str, nn.Module]:
        """The modules trained whole beside LoRA (the fusion, the slot visibility gate, the fusion heads), by their
        attribute name: the prefix of their keys in the trainable state."""
        named = {"fusion": self.fusion, "visibility": self.visibility, "fusion_heads": self.fusion_heads}
        return {name: m for name, m in named.items() if m is not None}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"lora": lora_parameters(self.llm),
                "fusion": [p for m in self._trained_modules().values() for p in m.parameters() if p.requires_grad]}

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """LoRA weights and the whole state (parameters and buffers) of the fusion, the slot visibility gate and the
        fusion heads, detached copies."""
        state = {f"llm.{n}": p.detach().clone() for n, p in self.llm.named_parameters() if p.requires_grad}
        for name, module in self._trained_modules().items():
            state.update({f"{name}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
        return state

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.trainable_state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ConfigError(
                f"trainable state: does not match this model (check model settings: K, LoRA rank/targets, experts, "
                f"text_source, pseudo_visibility, fusion_head_weight); missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
            )
        params = dict(self.llm.named_parameters())
        with torch.no_grad():
            for k, v in state.items():
                if k.startswith("llm."):
                    params[k[4:]].copy_(v)
        for name, module in self._trained_modules().items():
            prefix = f"{name}."
            module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


def weighted_median(values: list[float], probs: torch.Tensor) -> float:
    """The smallest value whose cumulative probability reaches one half (``values`` ascending)."""
    cdf = torch.cumsum(probs.double(), 0)
    return float(values[int(torch.searchsorted(cdf, torch.tensor(0.5, dtype=cdf.dtype)).clamp(max=len(values) - 1))])


def build_egmf(cfg: ModelConfig, infos: dict[str, DatasetInfo], feature_dims: dict[str, dict[str, int]]) -> EGMF:
    return EGMF(cfg, infos, feature_dims)


def build_llm_text(cfg: ModelConfig, infos, feature_dims) -> EGMF:
    return EGMF(dataclasses.replace(cfg, use_fusion=False), infos, feature_dims)


def build_egmf_mean_gate(cfg: ModelConfig, infos, feature_dims) -> EGMF:
    fusion = dataclasses.replace(cfg.fusion, modality_gating=False, expert_gating=False)
    return EGMF(dataclasses.replace(cfg, fusion=fusion), infos, feature_dims)


def register() -> None:
    from egmf.model.registry import register_model

    register_model("egmf", build_egmf, "EGMF: expert fusion -> pseudo tokens in the prompt -> LLM with LoRA")
    register_model("llm_text", build_llm_text, "text-only LLM with LoRA: EGMF's prompts without pseudo tokens")
    register_model("egmf_mean_gate", build_egmf_mean_gate, "EGMF with both gating levels off (uniform means)")
