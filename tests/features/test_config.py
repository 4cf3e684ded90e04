"""Extraction settings (egmf.features.config): bad values and saved settings get the typed-config checks."""

from __future__ import annotations

import pytest

from egmf.errors import ConfigError
from egmf.features.config import ExtractSettings


@pytest.mark.parametrize("kwargs, message", [
    ({"audio_features": ("egemaps", "wav2vec")},
     r"audio_features\[1\]: invalid value 'wav2vec'; valid choices: egemaps, mfcc, whisper"),
    ({"lang": "fr"}, "lang: invalid value 'fr'; valid choices: en, zh"),
    ({"text_features": "bert"}, "text_features: invalid value 'bert'; valid choices: sentence, none"),
    ({"audio_features": ("mfcc",), "audio_main": "whisper"}, "audio_main: 'whisper' is not among"),
    ({"whisper": "large"}, "whisper: invalid value 'large'; valid choices: tiny.en, base, small"),
    ({"lang": "zh", "whisper": "tiny.en"}, "tiny.en is English-only"),
    ({"transcribe": "always"}, "transcribe: invalid value 'always'; valid choices: auto, never"),
    ({"fps": 0}, "must be positive"),
    ({"sentence_encoder": "labse"}, "sentence_encoder: invalid value 'labse'; valid choices: auto, minilm, "),
])
def test_settings_reject_bad_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ExtractSettings(**kwargs)


def test_settings_defaults_and_round_trip():
    s = ExtractSettings(lang="zh")
    assert (s.whisper, s.audio_main) == ("base", "whisper")
    assert ExtractSettings(audio_features=("mfcc", "egemaps")).audio_main == "mfcc"
    assert ExtractSettings.from_dict(s.to_dict()) == s
    assert ExtractSettings(whisper="", audio_main="") == ExtractSettings()  # what the CLI passes: the defaults


@pytest.mark.parametrize("saved, message", [
    ({"bogus": 1}, r"extract.bogus: unknown key; valid keys: audio_features, audio_main, fps, lang"),
    ({"fps": "fast"}, "extract.fps: expected a number, got 'fast'"),
    ({"audio_features": "mfcc"}, "extract.audio_features: expected a list, got 'mfcc'"),
    ({"audio_features": ["mfcc", "wav2vec"]}, r"extract.audio_features\[1\]: invalid value 'wav2vec'; valid choices"),
    ({"lang": "zh", "whisper": "tiny.en"}, "tiny.en is English-only"),
])
def test_saved_settings_are_read_through_typed_config(saved, message):
    """Saved settings (extract_report.json) get the checks and error format of every other config."""
    with pytest.raises(ConfigError, match=message):
        ExtractSettings.from_dict(saved)


@pytest.mark.parametrize("kwargs, encoder", [
    ({}, "minilm"),
    ({"lang": "zh"}, "multilingual-e5-small"),  # MiniLM is English-only
    ({"lang": "zh", "sentence_encoder": "minilm"}, "minilm"),  # a choice is kept
    ({"lang": "en", "sentence_encoder": "multilingual-e5-small"}, "multilingual-e5-small"),
    ({"lang": "zh", "text_features": "none"}, None),  # no text arrays: no encoder is saved
])
def test_the_sentence_encoder_follows_the_language_and_is_saved_resolved(kwargs, encoder):
    s = ExtractSettings(**kwargs)
    assert s.sentence_encoder == encoder
    assert s.to_dict()["sentence_encoder"] == encoder and ExtractSettings.from_dict(s.to_dict()) == s


def test_settings_saved_before_the_sentence_encoder_existed_read_back_as_minilm():
    """Every extraction before the setting wrote MiniLM arrays, Chinese included: that is what they hold."""
    old = {k: v for k, v in ExtractSettings(lang="zh").to_dict().items() if k != "sentence_encoder"}
    assert ExtractSettings.from_dict(old).sentence_encoder == "minilm"
    assert ExtractSettings.from_dict({**old, "text_features": "none"}).sentence_encoder is None
