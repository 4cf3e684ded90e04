"""Settings of the raw-media extractor (``egmf extract``), validated when built.

The settings are saved in ``extract_report.json`` and in the resume state of an output folder: a second
run with different settings refuses to mix its arrays with the first run's (see :mod:`egmf.features.extract`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from egmf.errors import ConfigError

AUDIO_SETS = ("egemaps", "mfcc", "whisper")
WHISPER_MODELS = ("tiny.en", "base", "small")
TRANSCRIBE_MODES = ("auto", "never")
TEXT_SOURCES = ("sentence", "none")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}: unknown value {value!r}; valid choices: {', '.join(choices)}")


@dataclass
class ExtractSettings:
    """What to extract from each clip and how."""

    audio_features: tuple[str, ...] = field(
        default=("egemaps", "mfcc", "whisper"),
        metadata={"help": f"audio feature sets to compute, any of {AUDIO_SETS}"},
    )
    audio_main: str = field(
        default="",
        metadata={
            "help": "the set written to features/audio (the model's audio input); empty = whisper when "
            "selected, else the first selected set. Every set is also written to features/extra/<set>."
        },
    )
    whisper: str = field(
        default="",
        metadata={"help": f"Whisper model, one of {WHISPER_MODELS}; empty = tiny.en for English, base otherwise"},
    )
    transcribe: str = field(
        default="auto",
        metadata={"help": "auto: Whisper writes the text of a clip that has no transcript; never: leave it empty"},
    )
    lang: str = field(default="en", metadata={"help": "language of the speech and text: en or zh"})
    text_features: str = field(
        default="sentence",
        metadata={"help": "sentence: MiniLM token embeddings [T, 384] in features/text; none: no text arrays"},
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
        self.audio_features = tuple(self.audio_features)
        for s in self.audio_features:
            _choice("audio_features", s, AUDIO_SETS)
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
        _choice("lang", self.lang, ("en", "zh"))
        if not self.whisper:
            self.whisper = "tiny.en" if self.lang == "en" else "base"
        _choice("whisper", self.whisper, WHISPER_MODELS)
        _choice("transcribe", self.transcribe, TRANSCRIBE_MODES)
        _choice("text_features", self.text_features, TEXT_SOURCES)
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
        """Settings saved by :meth:`to_dict` (e.g. ``dataset.yaml`` key ``extract``); unknown keys fail."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"extract settings: unknown keys {unknown}; valid keys: {', '.join(sorted(known))}")
        return cls(**d)
