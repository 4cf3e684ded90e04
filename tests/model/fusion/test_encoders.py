"""The modality encoders (egmf.model.fusion.encoders): per-source projections, the learned placeholder,
feature-dims checks, masked pooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egmf.data.collate import collate
from egmf.errors import ConfigError
from egmf.model.fusion import ExpertFusion

from .conftest import OUT, build, cfg, mixed_samples, run, sample


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, one thread


def test_learned_placeholder_trains_when_a_modality_is_missing():
    fusion = build(missing_modality="learned").train()
    out = run(fusion, mixed_samples())
    (out.tokens * torch.randn_like(out.tokens)).sum().backward()
    grad = fusion.encoders.placeholder.grad
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0  # text (beta), audio (sample 2)
    assert grad[2].abs().sum() == 0  # every sample has vision


def test_mixed_sources_use_their_own_projection():
    fusion = build()
    rng = np.random.default_rng(3)
    s = sample(rng, "beta", {"text": 0, "audio": 5, "vision": 5})
    with torch.no_grad():
        before = run(fusion, [s]).tokens
        fusion.encoders.proj["alpha__audio"].weight.mul_(3.0)  # alpha's projection must not touch beta
        after = run(fusion, [s]).tokens
        fusion.encoders.proj["beta__audio"].weight.mul_(3.0)
        changed = run(fusion, [s]).tokens
    torch.testing.assert_close(before, after, atol=0, rtol=0)
    assert not torch.allclose(before, changed)


def test_unknown_source_lists_known_ones():
    fusion = build()
    batch = collate(mixed_samples())
    with pytest.raises(ConfigError, match=r"unknown source \['gamma'\].*built for: alpha, beta"):
        fusion(batch.features, batch.masks, ["alpha", "gamma", "alpha", "beta"])


def test_frames_for_a_modality_the_source_lacks_is_an_error():
    fusion = build()
    batch = collate(mixed_samples())
    batch.masks["text"][1, 0] = True  # beta declares text dim 0
    with pytest.raises(ConfigError, match=r"source 'beta' declares no text features"):
        fusion.forward_batch(batch)


@pytest.mark.parametrize(
    "dims,match",
    [
        ({}, "at least one source"),
        ({"a": {"txt": 3}}, r"unknown modality \['txt'\]; valid choices: text, audio, vision"),
        ({"a": {"text": 0, "audio": 0}}, "every modality has dim 0"),
        ({"a": {"audio": -1, "text": 3}}, "expected dims >= 0"),
        ({"a.b": {"audio": 3}, "a_b": {"audio": 3}}, "collide"),
    ],
)
def test_bad_feature_dims(dims, match):
    with pytest.raises(ConfigError, match=match):
        ExpertFusion(cfg(), dims, OUT)


def test_masked_adaptive_pool_averages_real_frames_only():
    from egmf.model.fusion.encoders import masked_adaptive_pool

    x = torch.arange(16, dtype=torch.float32).view(2, 8, 1)
    mask = torch.tensor([[True] * 6 + [False] * 2, [True] * 3 + [False] * 5])
    x[0, 6:] = 99.0  # padding values must never leak into a bin
    pooled, pmask = masked_adaptive_pool(x, mask, 3)
    # 6 real frames -> 3 bins of 2; 3 real frames (<= 3) are kept as they are
    torch.testing.assert_close(pooled[..., 0], torch.tensor([[0.5, 2.5, 4.5], [8.0, 9.0, 10.0]]))
    assert pmask.all()
    pooled, pmask = masked_adaptive_pool(x, mask, 4)  # frame r goes to bin floor(r * 4 / 6): [0, 1], [2], [3, 4], [5]
    torch.testing.assert_close(pooled[0, :, 0], torch.tensor([0.5, 2.0, 3.5, 5.0]))
    assert pmask[1].tolist() == [True, True, True, False]
