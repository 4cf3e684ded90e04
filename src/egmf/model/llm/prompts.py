"""Prompt templates (registered by name) and their tokenisation into LLM inputs with K pseudo-token slots.

A template turns one sample into a chat message that contains :data:`PSEUDO` exactly once: the place where
the fusion's K pseudo-token embeddings are spliced in. :class:`PromptEncoder` wraps the message in the
tokenizer's chat template, tokenises the text on each side of the placeholder (the placeholder itself is never
tokenised, so no vocabulary change is needed), appends the target (label word or score, then EOS) with
labels = -100 everywhere else, and pads a batch on the left so every prompt ends in the last column.

Position ids count every real token, or (``slot_positions=False``) every real token but the K slots, which then
share the position of the token after them: the text keeps exactly the positions it has without slots (the
text-only prompt), which is what lets EGMF's closed visibility gate reproduce the text-only LLM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from egmf.data.schema import DatasetInfo, Sample
from egmf.errors import ConfigError, DataFormatError
from egmf.model.llm.config import PromptConfig

PSEUDO = "<|egmf_pseudo|>"
IGNORE = -100


@dataclass(frozen=True)
class PromptView:
    """What a template may show, already truncated by :class:`PromptEncoder`."""

    task: str
    lang: str
    labels: tuple[str, ...]
    score_range: tuple[float, float] | None
    utterance: str
    speaker: str | None
    context: tuple[tuple[str, str], ...]
    show_options: bool


# A template renders ``(system, user)`` messages; ``system`` may be "" (none).
Template = Callable[[PromptView], "tuple[str, str]"]
TEMPLATES: dict[str, Template] = {}


def register_template(name: str, template: Template) -> None:
    if name in TEMPLATES and TEMPLATES[name] is not template:
        raise ValueError(f"prompt template {name!r} is already registered")
    TEMPLATES[name] = template


def get_template(name: str) -> Template:
    if name not in TEMPLATES:
        raise ConfigError(f"model.prompt.template: unknown template {name!r}; valid choices: {', '.join(sorted(TEMPLATES))}")
    return TEMPLATES[name]


_TEXT = {
    "en": {
        "system": "You recognise emotions and sentiment in conversations from text, voice and face cues.",
        "erc": "Identify the emotion of the target utterance.",
        "msa": "Rate the sentiment of the utterance from {lo} (very negative) to {hi} (very positive), "
        "with one decimal.",
        "options": "Options: {options}.",
        "context": "Dialogue so far:",
        "utterance": "Utterance: \"{text}\"",
        "utterance_by": "Utterance by {speaker}: \"{text}\"",
        "cues": "Multimodal cues: " + PSEUDO,
        "answer_erc": "Answer with one option only.",
        "answer_msa": "Answer with the number only.",
        "sep": ", ",
    },
    "zh": {
        "system": "你根据文本、语音和面部线索识别对话中的情绪和情感。",
        "erc": "判断目标话语的情绪。",
        "msa": "为这句话的情感打分，范围从 {lo}（非常消极）到 {hi}（非常积极），保留一位小数。",
        "options": "选项：{options}。",
        "context": "之前的对话：",
        "utterance": "话语：“{text}”",
        "utterance_by": "{speaker} 的话语：“{text}”",
        "cues": "多模态线索：" + PSEUDO,
        "answer_erc": "只回答一个选项。",
        "answer_msa": "只回答数字。",
        "sep": "、",
    },
}


def _default_template(v: PromptView) -> tuple[str, str]:
    t = _TEXT[v.lang]
    lines = []
    if v.task == "erc":
        lines.append(t["erc"])
        if v.show_options:
            lines.append(t["options"].format(options=t["sep"].join(v.labels)))
    else:
        lo, hi = v.score_range
        lines.append(t["msa"].format(lo=format_score(lo), hi=format_score(hi)))
    if v.context:
        lines.append(t["context"])
        lines.extend(f"{spk}: {txt}" if spk else txt for spk, txt in v.context)
    key = "utterance_by" if v.speaker else "utterance"
    lines.append(t[key].format(text=v.utterance, speaker=v.speaker))
    lines.append(t["cues"])
    lines.append(t["answer_erc" if v.task == "erc" else "answer_msa"])
    return t["system"], "\n".join(lines)


def _minimal_template(v: PromptView) -> tuple[str, str]:
    """Utterance and cues only: the ablation without instruction, options or context."""
    t = _TEXT[v.lang]
    return "", t["utterance"].format(text=v.utterance) + "\n" + t["cues"]


register_template("default", _default_template)
register_template("minimal", _minimal_template)


def format_score(value: float) -> str:
    """A score as the model writes it: one decimal, no ``-0.0``."""
    s = f"{round(float(value), 1):.1f}"
    return "0.0" if s == "-0.0" else s


def format_target(sample: Sample, info: DatasetInfo) -> str:
    """The answer text: the label word (ERC) or the score with one decimal clamped to the range (MSA)."""
    if sample.label is None:
        raise DataFormatError(info.name, f"{sample.id}.label", "a label to train on", "None")
    if info.task == "erc":
        if sample.label not in info.labels:
            raise DataFormatError(info.name, f"{sample.id}.label", f"one of {', '.join(info.labels)}", repr(sample.label))
        return str(sample.label)
    value = float(sample.label)
    if not math.isfinite(value):
        raise DataFormatError(info.name, f"{sample.id}.label", "a finite score", value)
    lo, hi = info.score_range
    return format_score(min(max(value, lo), hi))


_SYSTEM_PROBE = "egmf-system-probe"


def template_keeps_system(tokenizer) -> bool:
    """Whether the tokenizer's chat template renders a system message. Some refuse one (Gemma 1 and 2 raise
    "System role not supported"), some drop it silently; for those the system text goes into the user turn.
    Gemma 3's template folds it into the first user turn itself, which counts as rendering it."""
    from jinja2 import TemplateError

    messages = [{"role": "system", "content": _SYSTEM_PROBE}, {"role": "user", "content": "u"}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except TemplateError:
        return False
    return _SYSTEM_PROBE in text


@dataclass
class Encoded:
    """One tokenised example: ``pseudo_start`` is where the K pseudo slots begin in ``input_ids``."""

    input_ids: list[int]
    labels: list[int]
    pseudo_start: int
    prompt_len: int


@dataclass
class EncodedBatch:
    input_ids: torch.Tensor  # [B, L], left padded
    attention_mask: torch.Tensor  # [B, L]
    position_ids: torch.Tensor  # [B, L], 0 at each row's first real token
    labels: torch.Tensor  # [B, L], -100 except target tokens (+ EOS)
    pseudo_index: torch.Tensor  # [B, K] column of each pseudo slot
    prompt_lens: list[int]


class PromptEncoder:
    """Renders and tokenises samples for one tokenizer, one :class:`PromptConfig` and K pseudo tokens."""

    def __init__(self, tokenizer, cfg: PromptConfig, num_pseudo: int, slot_positions: bool = True):
        self.tok = tokenizer
        self.cfg = cfg
        self.k = num_pseudo
        self.slot_positions = slot_positions
        self.template = get_template(cfg.template)
        self.chat = bool(cfg.use_chat_template and getattr(tokenizer, "chat_template", None))
        self.system_role = self.chat and template_keeps_system(tokenizer)

    # -- text ---------------------------------------------------------------------------------------------
    def view(self, sample: Sample, info: DatasetInfo, n_turns: int | None = None, max_chars: int | None = None):
        c = self.cfg
        context: list[tuple[str, str]] = []
        if c.include_context and sample.context:
            turns = n_turns if n_turns is not None else c.max_context_turns
            context = [(spk or "", txt) for spk, txt in sample.context[-turns:]] if turns else []
            # Drop the oldest turns first until the context fits its character budget.
            while context and sum(len(s) + len(t) + 2 for s, t in context) > c.max_context_chars:
                context.pop(0)
        limit = c.max_utterance_chars if max_chars is None else min(max_chars, c.max_utterance_chars)
        return PromptView(
            task=info.task,
            lang=sample.lang if sample.lang in _TEXT else info.lang,
            labels=tuple(info.labels),
            score_range=info.score_range,
            utterance=sample.text[:limit],
            speaker=sample.speaker if c.include_speaker and sample.speaker else None,
            context=tuple(context),
            show_options=c.include_label_options,
        )

    def render(self, view: PromptView) -> str:
        system, user = self.template(view)
        if user.count(PSEUDO) != 1:
            raise ConfigError(f"model.prompt.template {self.cfg.template!r}: the user message must hold the pseudo "
                              f"placeholder {PSEUDO} exactly once, found {user.count(PSEUDO)}")
        if self.chat:
            if system and not self.system_role:  # a template without a system role: the user turn opens with it
                system, user = "", system + "\n\n" + user
            messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
            return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        answer = "\n答案：" if view.lang == "zh" else "\nAnswer: "
        return (system + "\n\n" if system else "") + user + answer

    # -- tokens -------------------------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"] if text else []

    def _prompt_ids(self, view: PromptView) -> tuple[list[int], int]:
        prefix, suffix = self.render(view).split(PSEUDO)
        pre = self._ids(prefix)
        if not self.chat and getattr(self.tok, "add_bos_token", False) and self.tok.bos_token_id is not None:
            pre = [self.tok.bos_token_id] + pre
        slot = self.tok.pad_token_id  # any id: these embeddings are replaced by the pseudo tokens
        return pre + [slot] * self.k + self._ids(suffix), len(pre)

    def prompt(self, sample: Sample, info: DatasetInfo) -> tuple[list[int], int]:
        """Prompt ids and the pseudo start; context, then the utterance, are cut to fit ``max_prompt_tokens``."""
        budget = self.cfg.max_prompt_tokens
        view = self.view(sample, info)
        ids, start = self._prompt_ids(view)
        turns = len(view.context)
        while len(ids) > budget and turns > 0:  # drop context from the oldest turn
            turns -= 1
            view = self.view(sample, info, n_turns=turns)
            ids, start = self._prompt_ids(view)
        chars = len(view.utterance)
        while len(ids) > budget and chars > 0:  # then shorten the utterance
            chars //= 2
            view = self.view(sample, info, n_turns=0, max_chars=chars)
            ids, start = self._prompt_ids(view)
        if len(ids) > budget:
            raise ConfigError(f"model.prompt.max_prompt_tokens: {budget} is too small for template "
                              f"{self.cfg.template!r} ({len(ids)} tokens without context or utterance)")
        return ids, start

    def answer_ids(self, text: str) -> list[int]:
        """The tokens the model writes for an answer: the text, then EOS (ends the answer)."""
        return self._ids(text) + [self.tok.eos_token_id]

    def encode(self, sample: Sample, info: DatasetInfo, with_target: bool = True) -> Encoded:
        ids, start = self.prompt(sample, info)
        labels = [IGNORE] * len(ids)
        n = len(ids)
        if with_target:
            target = self.answer_ids(format_target(sample, info))
            ids = ids + target
            labels = labels + target
        return Encoded(ids, labels, start, n)

    def utterance_ids(self, sample: Sample, max_tokens: int) -> list[int]:
        return self._ids(sample.text[: self.cfg.max_utterance_chars])[:max_tokens]

    def pad(self, items: list[Encoded]) -> EncodedBatch:
        """Left-pad a list of examples into tensors."""
        width = max(len(e.input_ids) for e in items)
        b = len(items)
        ids = torch.full((b, width), self.tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((b, width), dtype=torch.long)
        labels = torch.full((b, width), IGNORE, dtype=torch.long)
        pseudo = torch.zeros((b, self.k), dtype=torch.long)
        for i, e in enumerate(items):
            off = width - len(e.input_ids)
            ids[i, off:] = torch.tensor(e.input_ids)
            mask[i, off:] = 1
            labels[i, off:] = torch.tensor(e.labels)
            pseudo[i] = off + e.pseudo_start + torch.arange(self.k)
        if self.slot_positions or not self.k:
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        else:  # text tokens count as without slots; a slot takes the position of the text token after it
            text = mask.clone()
            text.scatter_(1, pseudo, 0)
            position_ids = (text.cumsum(-1) - text).clamp(min=0)
        return EncodedBatch(ids, mask, position_ids, labels, pseudo, [e.prompt_len for e in items])
