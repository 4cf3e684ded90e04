"""One clip's features from its media: the unit that ``egmf extract`` runs in each worker, and the
entry point of single-file prediction (:func:`sample_from_media`).

Missing pieces are masks, never crashes: a video without an audio track has no audio arrays, a clip
without a visible face has no vision array, a silent clip transcribes to ``""``. A file FFmpeg cannot
decode raises :class:`egmf.errors.DataFormatError` naming the file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from egmf.data.schema import Sample
from egmf.errors import ConfigError
from egmf.features import audio as A
from egmf.features.config import ExtractSettings

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac", ".wma")


@dataclass
class ClipFeatures:
    """Everything extracted from one clip. ``sequences``/``pooled`` are keyed by feature-set name."""

    text: str
    lang: str
    sequences: dict[str, np.ndarray] = field(default_factory=dict)  # [T, d] per set
    pooled: dict[str, np.ndarray] = field(default_factory=dict)  # [1, d] per set (audio sets, "sentence")
    text_feats: np.ndarray | None = None
    vision: np.ndarray | None = None
    audio_main: str = ""
    notes: dict[str, object] = field(default_factory=dict)  # per-modality status and timings

    @property
    def audio(self) -> np.ndarray | None:
        return self.sequences.get(self.audio_main)


class ClipExtractor:
    """Loads each model once (lazily) and extracts clips one after another."""

    def __init__(self, settings: ExtractSettings | None = None, cpu_threads: int = 1):
        self.settings = settings or ExtractSettings()
        self.cpu_threads = cpu_threads
        self._whisper = None
        self._faces = None

    @property
    def whisper(self):
        if self._whisper is None:
            from egmf.features.whisper import Whisper

            self._whisper = Whisper(self.settings.whisper, cpu_threads=self.cpu_threads)
        return self._whisper

    @property
    def faces(self):
        if self._faces is None:
            from egmf.features.video import FaceExpression

            self._faces = FaceExpression()
        return self._faces

    def extract(self, video: str | Path | None = None, audio: str | Path | None = None,
                text: str | None = None) -> ClipFeatures:
        """Features of one clip. ``audio`` defaults to the video's own track; ``text`` to a transcript."""
        s = self.settings
        if video is None and audio is None and text is None:
            raise ConfigError("a clip needs at least one of video, audio or text")
        notes: dict[str, object] = {}
        out = ClipFeatures(text=text or "", lang=s.lang, audio_main=s.audio_main, notes=notes)
        t0 = time.perf_counter()
        wave = None
        source = audio if audio is not None else video
        if source is not None:
            wave = A.load_audio(source, s.sample_rate)
            notes["audio"] = "no audio track" if wave is None else "ok"
            if wave is not None:
                notes["audio_seconds"] = round(wave.size / s.sample_rate, 3)
        if wave is not None and wave.size > 0:
            self._audio_sets(wave, out)
        notes["audio_s"] = round(time.perf_counter() - t0, 3)

        if text is None:
            if wave is not None and s.transcribe == "auto":
                t1 = time.perf_counter()
                out.text, _ = self.whisper.transcribe(wave, s.lang)
                notes["transcribed"] = True
                notes["transcribe_s"] = round(time.perf_counter() - t1, 3)
            else:
                notes["transcribed"] = False

        if video is not None:
            t2 = time.perf_counter()
            from egmf.features.video import decode_frames

            frames = decode_frames(video, s.fps, s.max_video_seconds)
            if frames is None:
                notes["vision"] = "no video stream"
            else:
                out.vision, seen = self.faces.clip_features(frames)
                notes["vision"] = "ok" if out.vision is not None else "no face"
                notes["frames"] = seen
                notes["face_frames"] = 0 if out.vision is None else int(out.vision.shape[0])
            notes["vision_s"] = round(time.perf_counter() - t2, 3)

        if s.text_features == "sentence" and out.text.strip():
            from egmf.features.text import clip_text_features

            out.text_feats, out.pooled["sentence"] = clip_text_features(out.text, s.sentence_encoder)
        return out

    def _audio_sets(self, wave: np.ndarray, out: ClipFeatures) -> None:
        s = self.settings
        sr = s.sample_rate
        start, end = A.speech_bounds(wave, s.speech_top_db)
        out.notes["speech_bounds_s"] = [round(start / sr, 3), round(end / sr, 3)]
        if "egemaps" in s.audio_features:
            lld = A.egemaps_lld(wave, sr)
            out.sequences["egemaps"] = lld
            out.pooled["egemaps"] = A.egemaps_functionals(wave, sr)
        if "mfcc" in s.audio_features:
            m = A.mfcc(wave, sr, s.n_mfcc)
            out.sequences["mfcc"] = m
            out.pooled["mfcc"] = A.mean_std(m)
        if "whisper" in s.audio_features:
            from egmf.features.whisper import SAMPLES_PER_FRAME

            frames = self.whisper.encode(wave)
            # Keep the frames of the speech region only: leading/trailing silence carries no emotion.
            lo = min(start // SAMPLES_PER_FRAME, frames.shape[0] - 1)
            hi = max(lo + 1, -(-end // SAMPLES_PER_FRAME))
            speech = frames[lo:hi]
            out.sequences["whisper"] = speech
            out.pooled["whisper"] = A.mean_std(speech)


def pooled_sets(clip: ClipFeatures) -> dict[str, np.ndarray]:
    """The pooled sets ``egmf extract`` writes for ``clip`` (``features/pooled/{set}``), as the custom loader
    reads them into ``Sample.pooled``: the clip's audio sets, plus the ``sentence`` vector of its text
    whenever text features were extracted."""
    return {name: np.asarray(a, dtype=np.float32).reshape(1, -1) for name, a in clip.pooled.items()}


def sample_from_media(video: str | Path | None = None, audio: str | Path | None = None,
                      text: str | None = None, settings: ExtractSettings | None = None, *,
                      dataset: str = "custom", task: str = "erc", extractor: ClipExtractor | None = None,
                      ) -> Sample:
    """A :class:`Sample` (no label) from raw media, for ``egmf predict --video/--audio``.

    Use the settings the training data was extracted with (``dataset.yaml`` key ``extract``, see
    :func:`egmf.features.config.ExtractSettings.from_dict`), so that the feature dims match the model. The
    sample has the fields the custom loader gives an extracted clip: text, audio, vision, text features and
    the pooled sets (:func:`pooled_sets`).
    """
    ex = extractor or ClipExtractor(settings)
    clip = ex.extract(video=video, audio=audio, text=text)
    name = Path(video or audio).stem if (video or audio) else "text"
    return Sample(id=name, text=clip.text, label=None, dataset=dataset, task=task, lang=clip.lang,
                  text_feats=clip.text_feats, audio=clip.audio, vision=clip.vision, pooled=pooled_sets(clip))
