"""Audio features (egmf.features.audio) on clips the tests make (see conftest.py): loading, speech bounds,
eGeMAPS, MFCC, pooling, resampling."""

from __future__ import annotations

import numpy as np
import pytest

from egmf.errors import DataFormatError
from egmf.features import audio as A

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


def test_wav_written_at_another_rate_is_resampled(tmp_path):
    path = write_wav(tmp_path / "x.wav", tone(1.0)[::2], sr=8000)
    assert abs(A.load_audio(path).size - SR) <= 32
