"""Settings of the raw-media extractor (``egmf extract``), validated when built.

The settings are saved in ``extract_report.json`` and in the resume state of an output folder: a second
run with different settings refuses to mix its arrays with the first run's (see :mod:`egmf.features.extract`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from egmf.errors import ConfigError
from egmf.features.text import encoder_for
from egmf.typed_config import check_choices
from egmf.typed_config import from_dict as typed_from_dict

AudioSet = Literal["egemaps", "mfcc", "whisper"]
WhisperModel = Literal["tiny.en", "base", "small"]


@dataclass
class ExtractSettings:
    """What to extract from each clip and how."""

    audio_features: tuple[AudioSet, ...] = field(
        default=("egemaps", "mfcc", "whisper"),
        metadata={"help": "audio feature sets to compute, any of egemaps, mfcc, whisper"},
    )
    # Optional: None (or "", what the CLI passes) is resolved in __post_init__, so saved settings always
    # hold the set and the model that were used.
    audio_main: AudioSet | None = field(
        default=None,
        metadata={
            "help": "the set written to features/audio (the model's audio input); empty = whisper when "
            "selected, else the first selected set. Every set is also written to features/extra/<set>."
        },
    )
    whisper: WhisperModel | None = field(
        default=None,
        metadata={"help": "Whisper model: tiny.en, base or small; empty = tiny.en for English, base otherwise"},
    )
    transcribe: Literal["auto", "never"] = field(
        default="auto",
        metadata={"help": "auto: Whisper writes the text of a clip that has no transcript; never: leave it empty"},
    )
    lang: Literal["en", "zh"] = field(default="en", metadata={"help": "language of the speech and text: en or zh"})
    text_features: Literal["sentence", "none"] = field(
        default="sentence",
        metadata={"help": "sentence: the sentence encoder's vectors in features/text (MiniLM: its token vectors "
                  "[T, 384]; multilingual-e5-small: the sentence vector [1, 384]) and features/pooled/sentence; "
                  "none: no text arrays"},
    )
    sentence_encoder: Literal["auto", "minilm", "multilingual-e5-small"] | None = field(
        default="auto",
        metadata={"help": "text encoder of text_features=sentence: auto = MiniLM for en, multilingual-e5-small "
                  "for zh (MiniLM is English-only)"},
    )
    sample_rate: int = field(default=16000, metadata={"help": "audio is resampled to this rate (Hz), mono"})
    n_mfcc: int = field(default=40, metadata={"help": "MFCC coefficients (librosa)"})
    fps: float = field(default=5.0, metadata={"help": "video frames sampled per second for face analysis"})
    max_video_seconds: float = field(
        default=60.0, metadata={"help": "video past this many seconds is not decoded (long clips stay cheap)"}
    )
    speech_top_db: float = field(
        default=40.0,
        metadata={"help": "speech region = audio louder than peak minus this many dB (librosa.effects.trim)"},
    )

    def __post_init__(self):
        self.audio_main = self.audio_main or None
        self.whisper = self.whisper or None
        check_choices(self)
        if len(set(self.audio_features)) != len(self.audio_features):
            raise ConfigError(f"audio_features: a set is named twice in {list(self.audio_features)}")
        if not self.audio_main:
            if self.audio_features:
                self.audio_main = "whisper" if "whisper" in self.audio_features else self.audio_features[0]
        elif self.audio_main not in self.audio_features:
            raise ConfigError(
                f"audio_main: {self.audio_main!r} is not among the selected audio_features "
                f"{list(self.audio_features)}"
            )
        if not self.whisper:
            self.whisper = "tiny.en" if self.lang == "en" else "base"
        if self.text_features == "none":
            self.sentence_encoder = None
        elif self.sentence_encoder in (None, "", "auto"):
            self.sentence_encoder = encoder_for("auto", self.lang)
        if self.whisper == "tiny.en" and self.lang != "en" and self.transcribe == "auto":
            raise ConfigError(
                "whisper: tiny.en is English-only and cannot transcribe lang=zh; valid choices: base, small"
            )
        if self.sample_rate != 16000 and "whisper" in self.audio_features:
            raise ConfigError("sample_rate: Whisper needs 16000 Hz; valid choices with whisper: 16000")
        if self.fps <= 0 or self.max_video_seconds <= 0 or self.n_mfcc < 1 or self.speech_top_db <= 0:
            raise ConfigError("fps, max_video_seconds, n_mfcc and speech_top_db must be positive")

    @property
    def needs_whisper(self) -> bool:
        return "whisper" in self.audio_features or self.transcribe == "auto"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["audio_features"] = list(self.audio_features)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ExtractSettings":
        """Settings saved by :meth:`to_dict` (``extract_report.json`` key ``settings``), built and checked
        like every config (:func:`egmf.typed_config.from_dict`): unknown keys and wrong types fail."""
        auto = {k: None for k in ("audio_main", "whisper") if isinstance(d, dict) and d.get(k) == ""}
        if isinstance(d, dict) and "sentence_encoder" not in d and d.get("text_features", "sentence") == "sentence":
            # Saved before the setting existed, when every extraction's text arrays were MiniLM's (any language).
            auto["sentence_encoder"] = "minilm"
        return typed_from_dict(cls, {**d, **auto} if auto else d, "extract")
