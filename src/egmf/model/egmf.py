"""The EGMF model: expert fusion -> K pseudo tokens spliced into the prompt -> LLM (+LoRA) -> answer text.

``forward(batch)`` renders each sample's prompt (a batch may mix datasets, tasks and languages: each
:class:`~egmf.data.schema.Sample` carries its own), runs the fusion, writes its K pseudo tokens over the
placeholder slots of the prompt's input embeddings and computes the LM loss on the answer tokens only
(logits are computed only for the last columns, where left padding puts every answer). The leading prompt
tokens every row shares are read once per batch (``model.llm.share_prefix``; with LoRA on the upper layers
only, the tokens before the pseudo slot are also read apart, without gradients below; see
``egmf.model.llm.segments``). ``predict`` answers with constrained decoding (always a valid label / in-range
score) or free generation + parsing.

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
from egmf.model.config import ModelConfig, text_feature_dim
from egmf.model.llm.backends import load_llm
from egmf.model.llm.decoding import NumberConstraint, greedy_decode, parse_label, parse_score, score_options
from egmf.model.llm.lora import lora_parameters, wrap_with_lora
from egmf.model.llm.precision import cast_frozen_linears, resolve_frozen_dtype
from egmf.model.llm.prompts import IGNORE, EncodedBatch, PromptEncoder, format_score
from egmf.model.llm.segments import segmented_logits, shared_prefix_length

DECODINGS = ("constrained", "free")


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
        emb = llm.get_input_embeddings()
        self.hidden_size = emb.embedding_dim
        self.num_pseudo = cfg.num_pseudo_tokens  # K: the one definition (0 without fusion)
        self.prompts = PromptEncoder(tokenizer, cfg.prompt, self.num_pseudo)
        self.fusion = None
        if cfg.use_fusion:
            from egmf.model.fusion import ExpertFusion

            # Pseudo tokens start at the mean norm of the word embeddings: neither drowned nor dominating.
            target_norm = float(emb.weight.detach().float().norm(dim=-1).mean())
            dims = self.fusion_dims(feature_dims)
            self.fusion = ExpertFusion(cfg.fusion, dims, self.hidden_size, target_norm=target_norm)
            # _embeds writes the fusion's tokens over the prompt's slots: the two counts must agree.
            if self.fusion.num_tokens != self.prompts.k:
                raise ConfigError(
                    f"EGMF: the fusion emits {self.fusion.num_tokens} pseudo tokens but the prompt has "
                    f"{self.prompts.k} slots for them; both must be model.fusion.num_pseudo_tokens"
                )
        self.llm = wrap_with_lora(llm, cfg.lora, cfg.llm.gradient_checkpointing)
        cast_frozen_linears(self.llm, resolve_frozen_dtype(cfg.llm))
        self._answers: dict[tuple[str, str], list[int]] = {}
        self._constraints: dict[str, NumberConstraint] = {}

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
        if self.cfg.llm.autocast == "bf16":
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

    def _embeds(self, eb: EncodedBatch, fusion: FusionOutput | None) -> torch.Tensor:
        embeds = self.llm.get_input_embeddings()(eb.input_ids)
        if fusion is None or self.num_pseudo == 0:
            return embeds
        b, k = eb.pseudo_index.shape
        rows = torch.arange(b, device=embeds.device).repeat_interleave(k)
        # index_put (not in place on a leaf view) keeps the gradient path to the fusion.
        return embeds.index_put((rows, eb.pseudo_index.reshape(-1)), fusion.tokens.reshape(b * k, -1).to(embeds.dtype))

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
        with self._autocast():
            if prefix or cut is not None:
                return segmented_logits(self.llm, embeds, eb.attention_mask, eb.position_ids, keep, prefix, cut)
            return self.llm(inputs_embeds=embeds, attention_mask=eb.attention_mask, position_ids=eb.position_ids,
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
        n = (s.targets != IGNORE).sum().clamp(min=1)
        task_loss = s.token_loss.sum() / n  # mean over every answer token of the batch
        aux = s.fusion.aux_loss if s.fusion is not None else None
        loss = task_loss + aux if aux is not None else task_loss
        gates = s.fusion.gates if s.fusion is not None else {}
        return ModelOutput(loss=loss, task_loss=task_loss.detach(), aux_loss=aux, gates=gates)

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
        with self._autocast():
            if decoding == "constrained":
                answers = self._constrained(samples, eb, embeds, rows)
            else:
                answers = self._free(samples, eb, embeds, rows)
        preds = []
        for i, s in enumerate(samples):
            gates = {k: [float(x) for x in v[i].float()] for k, v in fusion.gates.items()} if fusion else {}
            preds.append(dataclasses.replace(answers[i], gates=gates))
        return preds

    def _constrained(self, samples, eb: EncodedBatch, embeds, rows: list[int]) -> dict[int, Prediction]:
        answers: dict[int, Prediction] = {}
        erc = [i for i in rows if self._info(samples[i]).task == "erc"]
        msa = [i for i in rows if i not in erc]
        if erc:
            idx = torch.tensor(erc, device=embeds.device)
            infos = [self._info(samples[i]) for i in erc]
            options = [[self.answer_ids(info, lab) for lab in info.labels] for info in infos]
            probs = score_options(self.llm, embeds[idx], eb.attention_mask[idx], eb.position_ids[idx], options)
            for i, info, p in zip(erc, infos, probs):
                dist = {lab: float(x) for lab, x in zip(info.labels, p)}
                answers[i] = Prediction(samples[i].id, info.name, "erc", info.labels[int(p.argmax())], probabilities=dist)
        if msa and self.cfg.score_decoding == "median":
            idx = torch.tensor(msa, device=embeds.device)
            infos = [self._info(samples[i]) for i in msa]
            grids = [self.score_grid(info) for info in infos]
            options = [[self.answer_ids(info, format_score(v)) for v in grid] for info, grid in zip(infos, grids)]
            probs = score_options(self.llm, embeds[idx], eb.attention_mask[idx], eb.position_ids[idx], options,
                                  restrict=True)
            for i, info, grid, p in zip(msa, infos, grids, probs):
                value = weighted_median(grid, p)
                answers[i] = Prediction(samples[i].id, info.name, "msa", value, score=value)
        elif msa:
            idx = torch.tensor(msa, device=embeds.device)
            infos = [self._info(samples[i]) for i in msa]
            texts = greedy_decode(self.llm, embeds[idx], eb.attention_mask[idx], eb.position_ids[idx], self.tokenizer,
                                  max_new_tokens=1, constraints=[self.constraint(info) for info in infos])
            for i, info, text in zip(msa, infos, texts):
                answers[i] = Prediction(samples[i].id, info.name, "msa", float(text), score=float(text))
        return answers

    def _free(self, samples, eb: EncodedBatch, embeds, rows: list[int]) -> dict[int, Prediction]:
        """Free generation + parsing; a sample whose text does not parse gets the constrained answer and
        ``parsed=False`` (its generated text is kept)."""
        texts = greedy_decode(self.llm, embeds, eb.attention_mask, eb.position_ids, self.tokenizer,
                              self.cfg.max_new_tokens)
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
            for i, p in self._constrained(samples, eb, embeds, failed).items():
                answers[i] = dataclasses.replace(p, generated=texts[i], parsed=False)
        return answers

    # -- what training changes ------------------------------------------------------------------------------
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"lora": lora_parameters(self.llm)}
        groups["fusion"] = [p for p in self.fusion.parameters() if p.requires_grad] if self.fusion is not None else []
        return groups

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """LoRA weights and the whole fusion state (parameters and buffers), detached copies."""
        state = {f"llm.{n}": p.detach().clone() for n, p in self.llm.named_parameters() if p.requires_grad}
        if self.fusion is not None:
            state.update({f"fusion.{k}": v.detach().clone() for k, v in self.fusion.state_dict().items()})
        return state

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.trainable_state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ConfigError(
                f"trainable state: does not match this model (check model settings: K, LoRA rank/targets, experts, "
                f"text_source); missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
            )
        params = dict(self.llm.named_parameters())
        with torch.no_grad():
            for k, v in state.items():
                if k.startswith("llm."):
                    params[k[4:]].copy_(v)
        if self.fusion is not None:
            self.fusion.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("fusion.")})


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
