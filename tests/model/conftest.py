"""Fixtures of the LLM/EGMF tests: two small datasets (MELD-like ERC in English, SIMS-like MSA in Chinese),
a sample factory, and a builder of the tiny-LLM EGMF."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from egmf.data.schema import MELD_EMOTIONS, DatasetInfo, Sample
from egmf.model.config import ModelConfig
from egmf.model.fusion import FusionConfig
from egmf.model.llm.config import LLMConfig, LoraSettings, PromptConfig

INFOS = {
    "meld": DatasetInfo("meld", "erc", "en", labels=MELD_EMOTIONS, metric_family="erc"),
    "simsv2": DatasetInfo("simsv2", "msa", "zh", score_range=(-1.0, 1.0), metric_family="sims"),
}
DIMS = {"meld": {"text": 0, "audio": 6, "vision": 5}, "simsv2": {"text": 8, "audio": 4, "vision": 3}}
WORDS = ["oh", "really", "I", "can't", "believe", "you", "did", "that", "great", "no", "way"]


def make_sample(i: int, dataset: str = "meld", seed: int = 0, frames: int | None = None, drop: tuple = ()) -> Sample:
    """A sample whose lengths (text, context, frames) vary with ``i``; ``drop`` removes modalities."""
    rng = np.random.default_rng(seed * 1000 + i)
    t = frames if frames is not None else 2 + (i * 3) % 7

    def arr(n, d):
        return rng.normal(size=(n, d)).astype(np.float32)

    if dataset == "meld":
        text = " ".join(rng.choice(WORDS, size=1 + i % 5))
        s = Sample(f"meld-{i}", text, MELD_EMOTIONS[i % 7], "meld", "erc", "en", speaker=["Ross", "Rachel"][i % 2],
                   context=[("Monica", "hi there"), ("Joey", "how you doin")][: i % 3],
                   audio=arr(t, 6), vision=arr(t + 1, 5))
    else:
        text = "我很高兴" * (1 + i % 3)
        s = Sample(f"sims-{i}", text, round(float(rng.uniform(-1, 1)), 2), "simsv2", "msa", "zh",
                   text_feats=arr(t + 2, 8), audio=arr(t, 4), vision=arr(t + 3, 3))
    for m in drop:
        if m == "text":
            s.text_feats = None
        else:
            setattr(s, m, None)
    return s


def tiny_config(**kw) -> ModelConfig:
    """A small, fast EGMF config on the tiny LLM. Keyword args override top-level fields; a dict given for a
    sub-config (``fusion={"num_pseudo_tokens": 1}``) overrides fields of that sub-config."""
    base = dict(
        llm=LLMConfig(backend="tiny", tiny_hidden_size=32, tiny_layers=2),
        fusion=FusionConfig(d_model=16, n_heads=2, gate_hidden=8, global_layers=1, dropout=0.0, num_pseudo_tokens=3),
        lora=LoraSettings(r=4, dropout=0.0),
        prompt=PromptConfig(max_prompt_tokens=400),
    )
    for key, value in kw.items():
        base[key] = dataclasses.replace(base[key], **value) if isinstance(value, dict) else value
    return ModelConfig(**base)


def nonzero_lora(model):
    """``model`` with its LoRA B matrices drawn small and nonzero (seeded): a fresh adapter is zero, which would
    hide gradient errors in A and make every adapter placement look alike."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


@pytest.fixture(name="nonzero_lora")
def _nonzero_lora():
    return nonzero_lora


@pytest.fixture(name="infos")
def _infos():
    return INFOS


@pytest.fixture(name="dims")
def _dims():
    return DIMS


@pytest.fixture(name="make_sample")
def _make_sample():
    return make_sample


@pytest.fixture(name="tiny_config")
def _tiny_config():
    return tiny_config


@pytest.fixture
def mixed_batch():
    """``mixed_batch(n=4, seed=0, **sample_kw)``: MELD-like English ERC and SIMS-like Chinese MSA, alternating."""
    from egmf.data.collate import collate

    def make(n: int = 4, seed: int = 0, **kw):
        return collate([make_sample(i, "meld" if i % 2 == 0 else "simsv2", seed=seed, **kw) for i in range(n)])

    return make


@pytest.fixture
def build():
    """``build(**config_overrides) -> EGMF`` on the tiny LLM, in eval mode, seeded."""
    from egmf.model.egmf import EGMF

    def make(infos=None, dims=None, **kw):
        torch.manual_seed(0)
        model = EGMF(tiny_config(**kw), infos or INFOS, dims or DIMS)
        return model.eval()

    return make


@pytest.fixture(autouse=True)
def _one_thread(request):
    """The LLM tests run tiny matmuls: one thread avoids spin-wait stalls on the shared 2-core machine
    (measured 100x faster under load). Only this area's modules are affected; the setting is restored."""
    import torch

    path = request.path  # tests/model/llm/* and tests/model/test_egmf*.py run the (tiny) LLM
    if path.parent.name != "llm" and not path.name.startswith("test_egmf"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
