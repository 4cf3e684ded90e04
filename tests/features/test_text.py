"""Sentence embeddings (egmf.features.text): unit norm, paraphrases rank first."""

from __future__ import annotations

import numpy as np


def test_sentence_embeddings_rank_paraphrases_first():
    from egmf.features.text import sentence_embeddings

    e = sentence_embeddings(["I am so happy today", "Today I feel really glad", "The invoice is overdue"])
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3
    assert sentence_embeddings([]).shape == (0, 384)
