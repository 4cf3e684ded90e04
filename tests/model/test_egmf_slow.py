"""The embedded SmolLM2 end to end (slow: loads the real LLM; first run also builds its safetensors cache).

Run with ``.venv/bin/python -m pytest tests/model/test_egmf_slow.py -m slow -q``.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import numpy as np
import pytest
import torch

from egmf.data.collate import collate
from egmf.data.schema import MELD_EMOTIONS, DatasetInfo, Sample
from egmf.model.config import ModelConfig

pytestmark = pytest.mark.slow

INFOS = {
    "meld": DatasetInfo("meld", "erc", "en", labels=MELD_EMOTIONS, metric_family="erc"),
    "mosei": DatasetInfo("mosei", "msa", "en", score_range=(-3.0, 3.0), metric_family="mosi"),
}
DIMS = {"meld": {"text": 0, "audio": 16, "vision": 12}, "mosei": {"text": 0, "audio": 16, "vision": 12}}


def meld_like(i: int, rng) -> Sample:
    return Sample(f"dia1_utt{i}", "Oh my God, I can't believe you did that to me!", "anger", "meld", "erc", "en",
                  speaker="Rachel", context=[("Ross", "We were on a break!"), ("Monica", "Guys, please stop.")],
                  audio=rng.normal(size=(20, 16)).astype(np.float32), vision=rng.normal(size=(15, 12)).astype(np.float32))


@pytest.fixture(scope="module")
def smol():
    from egmf.model.egmf import EGMF

    torch.manual_seed(0)
    return EGMF(ModelConfig(), INFOS, DIMS).eval()


def test_smollm2_answers_with_pseudo_tokens_spliced_in(smol):
    rng = np.random.default_rng(0)
    assert smol.llm.base_model.model.config.model_type == "llama" and smol.hidden_size == 576
    samples = [meld_like(0, rng), Sample("v$_$1", "The movie was wonderful, I loved it.", 2.0, "mosei", "msa", "en",
                                         audio=rng.normal(size=(9, 16)).astype(np.float32))]
    batch = collate(samples)
    eb = smol._encode(batch.samples, with_target=False)
    text = smol.tokenizer.decode(eb.input_ids[0][eb.attention_mask[0].bool()])
    assert text.count("<|im_start|>") == 3 and "Options: neutral, joy" in text
    with torch.no_grad():
        out = smol(batch)
    assert torch.isfinite(out.loss) and 0 < float(out.task_loss) < 20
    preds = smol.predict(batch)
    assert preds[0].prediction in MELD_EMOTIONS and abs(sum(preds[0].probabilities.values()) - 1) < 1e-4
    assert -3.0 <= preds[1].prediction <= 3.0 and round(preds[1].prediction, 1) == preds[1].prediction
    free = smol.predict(batch, decoding="free")
    assert all(isinstance(p.generated, str) and p.generated for p in free)
    # The pseudo tokens reach the LLM: other audio/vision features give other label probabilities.
    other = collate([dataclasses.replace(samples[0], audio=samples[0].audio * -3, vision=samples[0].vision + 2)])
    p_other = smol.predict(other)[0].probabilities
    assert max(abs(p_other[k] - preds[0].probabilities[k]) for k in MELD_EMOTIONS) > 1e-6


def test_constrained_classification_is_faster_than_free_generation(smol):
    """MELD-like prompt (about 120 tokens), one utterance at a time, 12 new tokens at most."""
    rng = np.random.default_rng(1)
    batch = collate([meld_like(0, rng)])
    smol.predict(batch), smol.predict(batch, decoding="free")  # warm-up

    def median(decoding):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            smol.predict(batch, decoding=decoding)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    constrained, free = median("constrained"), median("free")
    print(f"constrained {constrained:.3f}s, free {free:.3f}s, ratio {free / constrained:.2f}")
    assert free / constrained > 1.5
