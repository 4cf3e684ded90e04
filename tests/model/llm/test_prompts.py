"""Prompt templates and tokenisation: what the LLM reads, where the pseudo slots sit, where the loss is."""

from __future__ import annotations

import pytest
import torch

from egmf.data.schema import CHERMA_EMOTIONS, DatasetInfo, Sample
from egmf.errors import ConfigError, DataFormatError
from egmf.model.llm.backends import build_byte_tokenizer
from egmf.model.llm.config import PromptConfig
from egmf.model.llm.prompts import (
    IGNORE, PSEUDO, TEMPLATES, PromptEncoder, PromptView, format_score, format_target, register_template,
)

MELD = DatasetInfo("meld", "erc", "en", labels=("neutral", "joy", "anger"), metric_family="erc")
CHERMA = DatasetInfo("cherma", "erc", "zh", labels=CHERMA_EMOTIONS, metric_family="erc")
MOSEI = DatasetInfo("mosei", "msa", "en", score_range=(-3.0, 3.0), metric_family="mosi")


@pytest.fixture(scope="module")
def tok():
    t = build_byte_tokenizer()
    t.padding_side = "left"
    return t


def text_of(tok, ids):
    return tok.decode([i for i in ids if i != IGNORE])


def erc_sample(**kw):
    base = dict(id="d1_u3", text="You did what?", label="anger", dataset="meld", task="erc", lang="en",
                speaker="Ross", context=[("Monica", "first"), ("Joey", "second"), ("Rachel", "third")])
    base.update(kw)
    return Sample(**base)


def test_english_erc_prompt_has_instruction_options_context_speaker_and_slots(tok):
    enc = PromptEncoder(tok, PromptConfig(max_context_turns=2), num_pseudo=4)
    e = enc.encode(erc_sample(), MELD)
    text = tok.decode(e.input_ids)
    assert text.startswith("<|im_start|>system\n")
    assert "Options: neutral, joy, anger." in text
    assert "Joey: second\nRachel: third\n" in text and "first" not in text  # last 2 turns, oldest dropped
    assert 'Utterance by Ross: "You did what?"' in text
    assert "Multimodal cues: " + "<|pad|>" * 4 + "\n" in text
    assert text.endswith("<|im_start|>assistant\nanger<|im_end|>")
    assert e.input_ids[e.pseudo_start: e.pseudo_start + 4] == [tok.pad_token_id] * 4
    assert tok.decode(e.input_ids[: e.pseudo_start]).endswith("Multimodal cues: ")


def test_chinese_prompts_and_targets(tok):
    enc = PromptEncoder(tok, PromptConfig(), num_pseudo=2)
    s = erc_sample(text="你怎么敢", label="愤怒", dataset="cherma", lang="zh", speaker=None, context=[])
    text = tok.decode(enc.encode(s, CHERMA).input_ids)
    assert "判断目标话语的情绪。" in text and "选项：愤怒、厌恶、恐惧、高兴、平静、悲伤、惊奇。" in text
    assert "话语：“你怎么敢”" in text and text.endswith("assistant\n愤怒<|im_end|>")
    sims = DatasetInfo("sims", "msa", "zh", score_range=(-1.0, 1.0), metric_family="sims")
    m = Sample("v$_$1", "还行吧", -0.4, "sims", "msa", "zh")
    text = tok.decode(enc.encode(m, sims).input_ids)
    assert "范围从 -1.0（非常消极）到 1.0（非常积极）" in text and text.endswith("assistant\n-0.4<|im_end|>")


def test_loss_labels_cover_only_target_and_eos(tok):
    enc = PromptEncoder(tok, PromptConfig(), num_pseudo=3)
    e = enc.encode(Sample("a", "meh", 1.26, "mosei", "msa", "en"), MOSEI)
    targets = [i for i in e.labels if i != IGNORE]
    assert text_of(tok, targets) == "1.3<|im_end|>"
    assert e.labels[: e.prompt_len] == [IGNORE] * e.prompt_len
    assert e.labels[e.prompt_len:] == e.input_ids[e.prompt_len:] == targets
    prompt_only = enc.encode(Sample("a", "meh", 1.26, "mosei", "msa", "en"), MOSEI, with_target=False)
    assert prompt_only.input_ids == e.input_ids[: e.prompt_len] and set(prompt_only.labels) == {IGNORE}


@pytest.mark.parametrize("value, text", [(1.26, "1.3"), (-0.04, "0.0"), (-1.45, "-1.4"), (7.0, "3.0"), (-3.5, "-3.0"),
                                         (0, "0.0"), (2.95, "3.0")])
def test_score_targets_have_one_decimal_inside_the_range(value, text):
    assert format_target(Sample("a", "", value, "mosei", "msa", "en"), MOSEI) == text


def test_bad_labels_are_data_format_errors():
    with pytest.raises(DataFormatError, match=r"meld: x.label: expected one of neutral, joy, anger, got 'happy'"):
        format_target(erc_sample(id="x", label="happy"), MELD)
    with pytest.raises(DataFormatError, match=r"mosei: y.label: expected a finite score, got nan"):
        format_target(Sample("y", "", float("nan"), "mosei", "msa", "en"), MOSEI)
    with pytest.raises(DataFormatError, match=r"meld: z.label: expected a label to train on, got None"):
        format_target(erc_sample(id="z", label=None), MELD)


def test_format_score_never_writes_negative_zero():
    assert [format_score(v) for v in (-0.0, -0.01, 0.05, -2.0)] == ["0.0", "0.0", "0.1", "-2.0"]


def test_long_prompts_drop_context_first_then_cut_the_utterance(tok):
    ctx = [(f"S{i}", f"turn number {i} " * 3) for i in range(6)]
    s = erc_sample(context=ctx, text="word " * 40)
    full = PromptEncoder(tok, PromptConfig(max_context_turns=6, max_context_chars=10_000, max_prompt_tokens=4000), 4)
    n_full = len(full.prompt(s, MELD)[0])
    tight = PromptEncoder(tok, PromptConfig(max_context_turns=6, max_context_chars=10_000,
                                            max_prompt_tokens=n_full - 30), 4)
    ids, _ = tight.prompt(s, MELD)
    text = tok.decode(ids)
    assert "turn number 0" in tok.decode(full.prompt(s, MELD)[0])
    assert len(ids) <= n_full - 30
    assert "turn number 0" not in text and "turn number 5" in text and "word " * 40 in text
    no_room = PromptEncoder(tok, PromptConfig(max_prompt_tokens=len(full.prompt(erc_sample(context=[], text=""), MELD)[0]) + 10), 4)
    ids, _ = no_room.prompt(s, MELD)
    assert "Dialogue so far" not in tok.decode(ids) and len(ids) <= no_room.cfg.max_prompt_tokens
    with pytest.raises(ConfigError, match=r"max_prompt_tokens: 16 is too small for template 'default'"):
        PromptEncoder(tok, PromptConfig(max_prompt_tokens=16), 4).prompt(s, MELD)


def test_context_character_budget_drops_oldest_turns(tok):
    enc = PromptEncoder(tok, PromptConfig(max_context_turns=10, max_context_chars=30), 1)
    view = enc.view(erc_sample(context=[("A", "x" * 20), ("B", "y" * 10), ("C", "z" * 10)]), MELD)
    assert [spk for spk, _ in view.context] == ["B", "C"]
    off = PromptEncoder(tok, PromptConfig(include_context=False, include_speaker=False), 1).view(erc_sample(), MELD)
    assert off.context == () and off.speaker is None


def test_left_padding_aligns_prompt_ends_and_positions(tok):
    enc = PromptEncoder(tok, PromptConfig(), 2)
    items = [enc.encode(erc_sample(text="a", context=[]), MELD), enc.encode(erc_sample(text="a much longer line"), MELD)]
    b = enc.pad(items)
    short = len(items[0].input_ids)
    width = b.input_ids.shape[1]
    assert b.attention_mask[0].tolist() == [0] * (width - short) + [1] * short
    assert b.position_ids[0, -short:].tolist() == list(range(short))
    assert b.position_ids[1].tolist() == list(range(width))
    for i, e in enumerate(items):
        off = width - len(e.input_ids)
        assert b.pseudo_index[i].tolist() == [off + e.pseudo_start, off + e.pseudo_start + 1]
        assert torch.equal(b.labels[i, off:], torch.tensor(e.labels))


def test_templates_registry_minimal_and_custom(tok):
    assert {"default", "minimal"} <= set(TEMPLATES)
    text = tok.decode(PromptEncoder(tok, PromptConfig(template="minimal"), 1).encode(erc_sample(), MELD).input_ids)
    assert "Options" not in text and "Monica" not in text and 'Utterance: "You did what?"' in text
    with pytest.raises(ConfigError, match=r"model.prompt.template: unknown template 'fancy'; valid choices: .*default"):
        PromptEncoder(tok, PromptConfig(template="fancy"), 1)

    def broken(view: PromptView):
        return "", view.utterance  # forgets the pseudo placeholder

    register_template("test-broken", broken)
    try:
        with pytest.raises(ConfigError, match=r"must hold the pseudo placeholder .* exactly once, found 0"):
            PromptEncoder(tok, PromptConfig(template="test-broken"), 1).encode(erc_sample(), MELD)
    finally:
        TEMPLATES.pop("test-broken")
    with pytest.raises(ValueError, match="already registered"):
        register_template("default", broken)


def test_without_chat_template_an_answer_cue_ends_the_prompt(tok):
    enc = PromptEncoder(tok, PromptConfig(use_chat_template=False), 1)
    text = tok.decode(enc.encode(erc_sample(), MELD, with_target=False).input_ids)
    assert "<|im_start|>" not in text and text.endswith("Answer with one option only.\nAnswer: ")
    assert PSEUDO not in text


# Gemma 1 and 2 refuse a system message; other templates drop it without a word.
REFUSES_SYSTEM = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}<turn>{{ m['role'] }}\n{{ m['content'] }}<end>\n{% endfor %}"
    "{% if add_generation_prompt %}<turn>model\n{% endif %}"
)
DROPS_SYSTEM = (
    "{% for m in messages %}{% if m['role'] != 'system' %}<turn>{{ m['role'] }}\n{{ m['content'] }}<end>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<turn>model\n{% endif %}"
)


@pytest.mark.parametrize("template", [REFUSES_SYSTEM, DROPS_SYSTEM])
def test_a_template_without_a_system_role_gets_the_system_text_in_the_user_turn(template):
    from egmf.model.llm.prompts import template_keeps_system

    tok = build_byte_tokenizer()
    tok.chat_template = template
    assert not template_keeps_system(tok)
    enc = PromptEncoder(tok, PromptConfig(), num_pseudo=2)
    s = erc_sample(text="你怎么敢", label="愤怒", dataset="cherma", lang="zh", speaker=None, context=[])
    text = tok.decode(enc.encode(s, CHERMA).input_ids)
    assert text.startswith("<turn>user\n你根据文本、语音和面部线索识别对话中的情绪和情感。\n\n判断目标话语的情绪。")
    assert text.count("<turn>") == 2 and text.endswith("<turn>model\n愤怒<|im_end|>")


def test_chatml_keeps_its_system_turn(tok):
    from egmf.model.llm.prompts import template_keeps_system

    assert template_keeps_system(tok)
    text = tok.decode(PromptEncoder(tok, PromptConfig(), num_pseudo=1).encode(erc_sample(), MELD).input_ids)
    assert text.startswith("<|im_start|>system\nYou recognise emotions")
