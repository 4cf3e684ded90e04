"""The embedded Gemma 3 270M end to end on a Chinese prompt (slow: loads the real LLM; the first run also joins
the GGUF chunks and builds its safetensors cache).

Run with ``.venv/bin/python -m pytest tests/model/test_egmf_gemma3_slow.py -m slow -q``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from egmf.data.collate import collate
from egmf.data.schema import CHERMA_EMOTIONS, DatasetInfo, Sample
from egmf.model.config import ModelConfig
from egmf.model.fusion import FusionConfig
from egmf.model.llm.config import LLMConfig

pytestmark = pytest.mark.slow

INFOS = {"cherma": DatasetInfo("cherma", "erc", "zh", labels=CHERMA_EMOTIONS, metric_family="erc")}
DIMS = {"cherma": {"text": 0, "audio": 16, "vision": 12}}
# 19 characters (punctuation included), 57 UTF-8 bytes: what the byte-level view of SmolLM2 must read.
SENTENCE = "我今天真的很高兴，因为考试终于通过了。"


def cherma_like(i: int, rng, text: str = SENTENCE) -> Sample:
    return Sample(f"cherma_{i}", text, "高兴", "cherma", "erc", "zh", speaker="小王",
                  context=[("小李", "你考得怎么样？")],
                  audio=rng.normal(size=(20, 16)).astype(np.float32), vision=rng.normal(size=(15, 12)).astype(np.float32))


@pytest.fixture(scope="module")
def gemma():
    from egmf.model.egmf import EGMF

    torch.manual_seed(0)
    cfg = ModelConfig(llm=LLMConfig(backend="gemma3-270m"),
                      fusion=FusionConfig(d_model=32, n_heads=2, gate_hidden=16, global_layers=1))
    return EGMF(cfg, INFOS, DIMS).eval()


def test_gemma3_reads_chinese_in_far_fewer_tokens_than_bytes(gemma):
    assert gemma.llm.base_model.model.config.model_type == "gemma3_text" and gemma.hidden_size == 640
    ids = gemma.tokenizer(SENTENCE, add_special_tokens=False)["input_ids"]
    assert len(SENTENCE) == 19 and len(SENTENCE.encode()) == 57
    assert len(ids) < 19 < 57  # fewer tokens than characters; SmolLM2 needs about 2 per character
    assert gemma.tokenizer.decode(ids) == SENTENCE
    adapted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in gemma.llm.named_parameters() if "lora_A" in n}
    assert adapted == {"q_proj", "v_proj"}


def test_gemma3_answers_a_chinese_prompt_with_pseudo_tokens_spliced_in(gemma):
    rng = np.random.default_rng(0)
    samples = [cherma_like(0, rng), cherma_like(1, rng, "你怎么能这样对我？我真的很生气！")]
    batch = collate(samples)
    eb = gemma._encode(batch.samples, with_target=False)
    row = eb.input_ids[0][eb.attention_mask[0].bool()]
    text = gemma.tokenizer.decode(row)
    # Gemma's own chat template: the system text opens the user turn (Gemma has no system turn), then the model turn.
    assert text.startswith("<bos><start_of_turn>user\n你根据文本、语音和面部线索识别对话中的情绪和情感。")
    assert "选项：愤怒、厌恶、恐惧、高兴、平静、悲伤、惊奇。" in text and SENTENCE in text
    assert text.endswith("只回答一个选项。<end_of_turn>\n<start_of_turn>model\n")
    start = int(eb.pseudo_index[0, 0]) - int((~eb.attention_mask[0].bool()).sum())
    assert row[start: start + gemma.num_pseudo].tolist() == [gemma.tokenizer.pad_token_id] * gemma.num_pseudo
    with torch.no_grad():
        out = gemma(batch)
    assert torch.isfinite(out.loss) and 0 < float(out.task_loss) < 30
    preds = gemma.predict(batch)
    for p in preds:
        assert p.prediction in CHERMA_EMOTIONS and abs(sum(p.probabilities.values()) - 1) < 1e-4
    free = gemma.predict(batch, decoding="free")
    assert all(isinstance(p.generated, str) for p in free)
    # The pseudo tokens reach the LLM: other audio/vision features give other label probabilities.
    other = collate([dataclasses.replace(samples[0], audio=samples[0].audio * -3, vision=samples[0].vision + 2)])
    p_other = gemma.predict(other)[0].probabilities
    assert max(abs(p_other[k] - preds[0].probabilities[k]) for k in CHERMA_EMOTIONS) > 1e-6


def test_shared_prompt_prefix_changes_no_answer_of_gemma(gemma, monkeypatch):
    from egmf.model.llm import decoding

    rng = np.random.default_rng(2)
    samples = [cherma_like(i, rng) for i in range(3)]
    samples[1] = dataclasses.replace(samples[1], context=[], text="什么？")  # rows of different lengths
    batch = collate(samples)
    shared = gemma.predict(batch)
    monkeypatch.setattr(decoding, "MIN_SHARED_PREFIX", 10**9)
    whole = gemma.predict(batch)
    for a, b in zip(shared, whole):
        assert a.prediction == b.prediction
        assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in CHERMA_EMOTIONS) < 1e-4
