"""Audio: decoding (PyAV), eGeMAPSv02 (openSMILE), MFCC (librosa) and the speech region.

Every function takes a mono float32 waveform at a known rate and returns ``[T, d]`` float32 arrays, so
the extractor, single-file prediction and the RAVDESS anchors share the same numbers.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from egmf.errors import DataFormatError

EGEMAPS_LLD_DIM = 25
EGEMAPS_FUNCTIONALS_DIM = 88


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray | None:
    """The first audio stream of ``path`` as mono float32 in [-1, 1] at ``sample_rate``.

    Returns ``None`` when the file has no audio stream (a silent video), and raises
    :class:`DataFormatError` when the file cannot be decoded at all.
    """
    import av

    path = Path(path)
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                return None
            resampler = av.audio.resampler.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks = []
            for frame in container.decode(audio=0):
                frame.pts = None  # resampler must not enforce monotonic timestamps on odd files
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except (av.error.FFmpegError, OSError) as e:
        raise DataFormatError(path, "media", "an audio or video file that FFmpeg can decode", repr(e)) from e
    if not chunks:
        raise DataFormatError(path, "audio stream", "at least one decodable audio frame", "none")
    return np.concatenate(chunks).astype(np.float32, copy=False)


def speech_bounds(wave: np.ndarray, top_db: float = 40.0, frame: int = 512, hop: int = 128) -> tuple[int, int]:
    """``(start, end)`` sample indices of the region louder than ``peak - top_db`` dB (frame RMS).

    The same rule as ``librosa.effects.trim``, in numpy: librosa's version JIT-compiles on first use,
    which costs each worker process seconds. Digital silence has no such region: the whole clip is
    returned so that features stay defined.
    """
    n = int(wave.size)
    if n == 0 or not np.any(np.abs(wave) > 1e-6):
        return 0, n
    padded = np.pad(wave.astype(np.float64), frame // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop]
    rms = np.sqrt(np.mean(frames**2, axis=1))
    db = 20 * np.log10(np.maximum(rms, 1e-10) / rms.max())
    loud = np.flatnonzero(db > -top_db)
    start = int(loud[0] * hop)
    end = min(n, int((loud[-1] + 1) * hop))
    return (start, end) if end > start else (0, n)


@lru_cache(maxsize=2)
def _smile(level: str):
    import opensmile

    feature_level = {
        "lld": opensmile.FeatureLevel.LowLevelDescriptors,
        "functionals": opensmile.FeatureLevel.Functionals,
    }[level]
    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=feature_level)


def _pad_min(wave: np.ndarray, sample_rate: int, seconds: float = 0.1) -> np.ndarray:
    # openSMILE returns no LLD frame for clips shorter than its 60 ms window: pad very short clips.
    need = int(seconds * sample_rate)
    return wave if wave.size >= need else np.pad(wave, (0, need - wave.size))


def egemaps_lld(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """eGeMAPSv02 low-level descriptors, ``[T, 25]`` at 100 frames/s (the SIMS v2 audio features)."""
    df = _smile("lld").process_signal(_pad_min(wave, sample_rate), sample_rate)
    return np.nan_to_num(df.to_numpy(dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def egemaps_functionals(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """eGeMAPSv02 functionals over the whole clip, ``[1, 88]``."""
    df = _smile("functionals").process_signal(_pad_min(wave, sample_rate), sample_rate)
    return np.nan_to_num(df.to_numpy(dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def mfcc(wave: np.ndarray, sample_rate: int, n_mfcc: int = 40) -> np.ndarray:
    """MFCC frames ``[T, n_mfcc]`` at 100 frames/s (25 ms window, 10 ms hop), librosa's defaults otherwise."""
    import librosa

    hop = sample_rate // 100
    m = librosa.feature.mfcc(
        y=_pad_min(wave, sample_rate), sr=sample_rate, n_mfcc=n_mfcc, n_fft=int(0.025 * sample_rate) * 2,
        win_length=int(0.025 * sample_rate), hop_length=hop,
    )
    return m.T.astype(np.float32)


def mean_std(frames: np.ndarray) -> np.ndarray:
    """The pooled vector ``[1, 2d]``: mean and standard deviation over frames."""
    if frames.shape[0] == 0:
        return np.zeros((1, 2 * frames.shape[1]), np.float32)
    return np.concatenate([frames.mean(0), frames.std(0)])[None].astype(np.float32)
