"""The on-disk sentence-vector cache (egmf.features.sentence_cache): the vectors it returns are the encoder's, a
text is encoded once, encoders and weight versions never share vectors, and a bad file is bypassed, not trusted."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from egmf.features import sentence_cache as sc
from egmf.features.sentence_cache import SENTENCE_CACHE_ENV, cache_file, cached_sentence_embeddings


class CountingEncoder:
    """A stand-in encoder: a fixed vector per text (seeded by the text), and every text it was asked for."""

    def __init__(self, dim: int = 384, salt: int = 0):
        self.dim, self.salt, self.seen = dim, salt, []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        return np.stack([np.random.default_rng([self.salt, *t.encode()]).standard_normal(self.dim)
                         for t in texts]).astype(np.float32)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(SENTENCE_CACHE_ENV, str(tmp_path / "sentences"))
    return tmp_path / "sentences"


def test_a_second_call_reads_every_vector_back_and_encodes_nothing(cache_dir):
    texts = ["I am so happy", "这本书太好了", "I am so happy", "ok"]  # a repeated text is encoded once
    first_encoder = CountingEncoder()
    first = cached_sentence_embeddings(texts, "minilm", encode=first_encoder)
    assert first_encoder.seen == ["I am so happy", "这本书太好了", "ok"]
    np.testing.assert_array_equal(first, CountingEncoder()(texts))  # what the encoder gives, in the given order

    again = CountingEncoder()
    second = cached_sentence_embeddings(["ok", "这本书太好了", "new text"], "minilm", encode=again)
    assert again.seen == ["new text"]
    np.testing.assert_array_equal(second, CountingEncoder()(["ok", "这本书太好了", "new text"]))
    assert second.dtype == np.float32 and second.shape == (3, 384)
    assert cache_file("minilm").parent == cache_dir and cache_file("minilm").is_file()


def test_encoders_and_weight_versions_keep_separate_vectors(cache_dir, monkeypatch):
    cached_sentence_embeddings(["hello"], "minilm", encode=CountingEncoder(salt=1))
    e5 = CountingEncoder(salt=2)
    out = cached_sentence_embeddings(["hello"], "multilingual-e5-small", encode=e5)
    assert e5.seen == ["hello"]  # MiniLM's vector of the same text is not reused
    np.testing.assert_array_equal(out, CountingEncoder(salt=2)(["hello"]))

    monkeypatch.setattr(sc, "weights_version", lambda encoder: "9.9.9")  # a new release of the weights' package
    upgraded = CountingEncoder(salt=3)
    cached_sentence_embeddings(["hello"], "minilm", encode=upgraded)
    assert upgraded.seen == ["hello"] and cache_file("minilm").name == "minilm-9.9.9.sqlite"


def test_off_encodes_every_time_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("EGMF_CACHE", str(tmp_path))
    monkeypatch.setenv(SENTENCE_CACHE_ENV, "off")
    assert cache_file("minilm") is None
    for _ in range(2):
        enc = CountingEncoder()
        cached_sentence_embeddings(["a", "b"], "minilm", encode=enc)
        assert enc.seen == ["a", "b"]
    assert not any(tmp_path.rglob("*.sqlite"))


def test_default_location_is_under_egmf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EGMF_CACHE", str(tmp_path))
    monkeypatch.delenv(SENTENCE_CACHE_ENV)
    assert cache_file("multilingual-e5-small").parent == tmp_path / "sentences"


def test_an_unreadable_file_is_bypassed_with_a_warning_naming_it(cache_dir):
    path = cache_file("minilm")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not an SQLite database" * 100)
    enc = CountingEncoder()
    with pytest.warns(UserWarning, match=f"{path}: sentence-vector cache unreadable"):
        out = cached_sentence_embeddings(["a"], "minilm", encode=enc)
    assert enc.seen == ["a"]
    np.testing.assert_array_equal(out, CountingEncoder()(["a"]))
    assert path.read_bytes().startswith(b"this is not")  # left as it was for the user to look at


def test_a_stored_vector_of_the_wrong_length_is_encoded_again_and_replaced(cache_dir):
    cached_sentence_embeddings(["a", "b"], "minilm", encode=CountingEncoder())
    with sqlite3.connect(cache_file("minilm")) as db:
        db.execute("UPDATE vectors SET vector = ? WHERE key = ?", (b"\0" * 12, sc._key("a")))
    enc = CountingEncoder()
    out = cached_sentence_embeddings(["a", "b"], "minilm", encode=enc)
    assert enc.seen == ["a"]
    np.testing.assert_array_equal(out, CountingEncoder()(["a", "b"]))
    again = CountingEncoder()
    cached_sentence_embeddings(["a"], "minilm", encode=again)
    assert again.seen == []


def test_an_encoder_answer_of_the_wrong_shape_is_refused_and_not_stored(cache_dir):
    with pytest.raises(ValueError, match=r"sentence encoder minilm: expected vectors of shape \(2, 384\), got \(2, 8\)"):
        cached_sentence_embeddings(["a", "b"], "minilm", encode=CountingEncoder(dim=8))
    enc = CountingEncoder()
    cached_sentence_embeddings(["a", "b"], "minilm", encode=enc)
    assert enc.seen == ["a", "b"]


def test_more_texts_than_one_query_holds(cache_dir):
    texts = [f"text {i}" for i in range(2 * sc._CHUNK + 7)]
    cached_sentence_embeddings(texts, "minilm", encode=CountingEncoder(dim=384))
    enc = CountingEncoder()
    out = cached_sentence_embeddings(texts[::-1], "minilm", encode=enc)
    assert enc.seen == []
    np.testing.assert_array_equal(out, CountingEncoder()(texts[::-1]))


def test_an_unknown_encoder_gets_the_encoders_own_error(cache_dir):
    from egmf.errors import ConfigError

    with pytest.raises(ConfigError, match="sentence encoder: invalid value 'labse'"):
        cached_sentence_embeddings(["x"], "labse")
    assert not cache_dir.exists()


def test_training_data_reads_sentence_vectors_through_the_cache(cache_dir, monkeypatch):
    """apply_text_source: a second load of the same texts does not call the encoder."""
    from egmf.data.schema import Sample
    from egmf.features import text
    from egmf.training.data import apply_text_source

    enc = CountingEncoder()
    monkeypatch.setattr(text, "sentence_embeddings", lambda texts, encoder: enc(texts))

    def samples():
        return [Sample(id=f"u{i}", text=t, label="joy", dataset="d", task="erc", lang="en")
                for i, t in enumerate(["hello there", "so sad"])]

    first = samples()
    assert apply_text_source(first, "sentence") == ["d"]
    assert enc.seen == ["hello there", "so sad"]
    second = samples()
    apply_text_source(second, "sentence")
    assert enc.seen == ["hello there", "so sad"]  # nothing encoded the second time
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.text_feats, b.text_feats)
        assert b.text_feats.shape == (1, 384)
