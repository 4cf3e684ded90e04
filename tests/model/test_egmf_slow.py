"""The embedded SmolLM2 end to end (slow: loads the real LLM; first run also builds its safetensors cache).

Run with ``.venv/bin/python -m pytest tests/model/test_egmf_slow.py -m slow -q``.
"""

from __future__ import annotations

import dataclasses

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


def test_shared_prompt_prefix_changes_no_answer_of_the_real_llm(smol, monkeypatch):
    """SmolLM2 + LoRA (fp32): a batch reading its shared instruction once (one prefix pass, then the rest)
    scores labels and writes text exactly as each prompt read whole."""
    from egmf.model.llm import decoding

    rng = np.random.default_rng(2)
    samples = [meld_like(i, rng) for i in range(3)]
    samples[1] = dataclasses.replace(samples[1], context=[], text="What?")  # rows of different lengths
    batch = collate(samples)
    widths = []
    hook = smol.llm.register_forward_pre_hook(lambda m, a, kw: widths.append(tuple(kw["inputs_embeds"].shape[:2]))
                                              if kw.get("inputs_embeds") is not None else None, with_kwargs=True)
    shared, shared_free = smol.predict(batch), smol.predict(batch, decoding="free")
    hook.remove()
    assert widths[0][0] == 1 and widths[0][1] >= 30  # the system + task instruction, read once for the batch
    monkeypatch.setattr(decoding, "MIN_SHARED_PREFIX", 10**9)
    whole, whole_free = smol.predict(batch), smol.predict(batch, decoding="free")
    for a, b in zip(shared, whole):
        assert a.prediction == b.prediction
        assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in MELD_EMOTIONS) < 1e-4
    assert [p.generated for p in shared_free] == [p.generated for p in whole_free]
