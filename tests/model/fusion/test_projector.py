"""The pseudo-token projector (egmf.model.fusion.projector): the token norm."""

from __future__ import annotations

import math

import pytest
import torch

from .conftest import OUT, build, mixed_samples, run


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, one thread


def test_target_norm_sets_token_norm():
    fusion = build(target_norm=0.7)
    with torch.no_grad():
        out = run(fusion, mixed_samples())
    torch.testing.assert_close(out.tokens.norm(dim=-1), torch.full(out.tokens.shape[:2], 0.7), atol=1e-3, rtol=0)
    plain = build()
    with torch.no_grad():
        norms = run(plain, mixed_samples()).tokens.norm(dim=-1)
    torch.testing.assert_close(norms, torch.full_like(norms, math.sqrt(OUT)), atol=1e-2, rtol=0)
