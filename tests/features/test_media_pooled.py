"""``sample_from_media`` (what ``egmf predict --video/--audio`` feeds a model) gives a clip the same Sample
fields the custom loader gives the same clip after ``egmf extract``: frames, text features and pooled sets.

The extractor is replaced by a stand-in with fixed arrays, so the test checks the two paths, not openSMILE or
Whisper (tests/features/test_media.py covers those, and the sentence vector the real extractor adds); the
stand-in's sentence vector is the real MiniLM one (two texts).
"""

from __future__ import annotations

import numpy as np
import pytest

from egmf.data.custom import load_custom
from egmf.features import extract as X
from egmf.features.config import ExtractSettings
from egmf.features.layouts import Item
from egmf.features.media import ClipFeatures, sample_from_media
from egmf.features.text import sentence_embeddings


class StandIn:
    """``ClipExtractor.extract`` with arrays drawn from the clip's name."""

    def extract(self, video=None, audio=None, text=None) -> ClipFeatures:
        rng = np.random.default_rng(abs(hash(str(audio))) % 2**32)
        clip = ClipFeatures(text=text or "", lang="en", audio_main="egemaps")
        clip.sequences["egemaps"] = rng.standard_normal((6, 25)).astype(np.float32)
        clip.pooled["egemaps"] = rng.standard_normal((1, 88)).astype(np.float32)
        clip.pooled["whisper"] = rng.standard_normal((1, 12)).astype(np.float32)
        clip.text_feats = rng.standard_normal((4, 384)).astype(np.float32)
        clip.pooled["sentence"] = sentence_embeddings([clip.text])  # as ClipExtractor.extract adds it
        return clip


@pytest.fixture
def stand_in(monkeypatch):
    fake = StandIn()

    def init(settings, threads):
        X._worker = fake

    monkeypatch.setattr(X, "_init_worker", init)
    return fake


def test_a_clip_from_media_has_the_fields_the_loader_gives_it(stand_in, tmp_path):
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"")  # never decoded: the stand-in extracts
    items = [Item("c1", "train", "joy", "what a day", audio=audio), Item("c2", "test", "sad", "oh no", audio=audio)]
    info = {"name": "clips", "task": "erc", "lang": "en", "labels": ["joy", "sad"], "metric_family": "erc"}
    X.run_extraction(items, info, tmp_path / "out", ExtractSettings(), progress=False)
    loaded = load_custom(tmp_path / "out").splits["train"][0]
    direct = sample_from_media(audio=audio, text="what a day", dataset="clips", extractor=stand_in)

    assert sorted(direct.pooled) == sorted(loaded.pooled) == ["egemaps", "sentence", "whisper"]
    for name, vec in loaded.pooled.items():
        assert direct.pooled[name].shape == vec.shape == (1, vec.shape[1])
        np.testing.assert_allclose(direct.pooled[name], vec, rtol=1e-6, atol=1e-6)
    for m in ("text", "audio", "vision"):
        a, b = direct.features(m), loaded.features(m)
        assert (a is None) == (b is None), m
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-6)
    assert direct.pooled["sentence"].shape == (1, 384)
