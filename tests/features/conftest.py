"""Media the feature tests make themselves: WAVs from numpy, MP4s from scikit-image's still face via PyAV;
a custom-layout input folder over them, and the fast extraction settings (the CLI tests use these too)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SR = 16000


def tone(seconds: float, freqs=(220.0, 440.0), noise: float = 0.01, seed: int = 0, lead: float = 0.0,
         tail: float = 0.0) -> np.ndarray:
    """A harmonic tone plus noise, with ``lead``/``tail`` seconds of digital silence around it."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(0.3 * np.sin(2 * np.pi * f * t) for f in freqs)
    x = x + noise * np.random.default_rng(seed).standard_normal(t.size)
    return np.concatenate([np.zeros(int(lead * SR)), x, np.zeros(int(tail * SR))]).astype(np.float32)


def write_wav(path: Path, wave: np.ndarray, sr: int = SR) -> Path:
    import soundfile as sf

    sf.write(str(path), wave, sr)
    return path


def face_frame(size: int = 256) -> np.ndarray:
    """scikit-image's astronaut (one frontal face), shrunk so that encoding stays fast."""
    import cv2
    from skimage import data

    return cv2.resize(data.astronaut(), (size, size))


def write_mp4(path: Path, frame: np.ndarray, seconds: float = 2.0, fps: int = 10,
              wave: np.ndarray | None = None) -> Path:
    """An MPEG-4 video repeating ``frame``, with an AAC track from ``wave`` (16 kHz mono) when given."""
    import av

    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height = frame.shape[1], frame.shape[0]
        vs.pix_fmt = "yuv420p"
        a_s = out.add_stream("aac", rate=SR, layout="mono") if wave is not None else None
        for _ in range(int(seconds * fps)):
            for packet in vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if a_s is not None:
            step = 1024
            for i in range(0, wave.size, step):
                chunk = wave[i:i + step]
                af = av.AudioFrame.from_ndarray(chunk[None, :].astype(np.float32), format="fltp", layout="mono")
                af.sample_rate = SR
                af.pts = i
                for packet in a_s.encode(af):
                    out.mux(packet)
            for packet in a_s.encode():
                out.mux(packet)
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """One folder of every kind of clip the extractor must survive (made once per test session)."""
    d = tmp_path_factory.mktemp("media")
    face = face_frame()
    blank = np.zeros_like(face)
    write_mp4(d / "face.mp4", face, wave=tone(2.0, seed=1))
    write_mp4(d / "face_mute.mp4", face)  # no audio track
    write_mp4(d / "blank.mp4", blank, wave=tone(2.0, freqs=(330.0,), seed=2))  # no face
    write_wav(d / "tone.wav", tone(1.0, lead=0.5, tail=0.5, seed=3))
    write_wav(d / "silent.wav", np.zeros(SR, np.float32))
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return d


FAST = dict(audio_features=("egemaps", "mfcc"), transcribe="never")


def _custom_input(media_dir, tmp_path):
    d = tmp_path / "in"
    shutil.copytree(media_dir, d)
    rows = [
        ("face", "what a great day", "joy", "train"),
        ("face_mute", "no sound here", "neutral", "train"),
        ("blank", "nobody in view", "neutral", "valid"),
        ("tone", "just a tone", "joy", "test"),
        ("silent", "", "neutral", "test"),  # no transcript and (transcribe=never) no text: excluded
        ("corrupt", "broken file", "anger", "train"),
        ("ghost", "", "anger", "train"),  # no media file and no text
    ]
    pd.DataFrame(rows, columns=["id", "text", "label", "split"]).to_csv(d / "data.csv", index=False)
    return d
