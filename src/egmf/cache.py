"""Where EGMF keeps what it derives once per machine and reuses: the embedded LLMs dequantised to safetensors,
Whisper's converted weights, sentence vectors. ``$EGMF_CACHE``, or ``~/.cache/egmf`` when it is unset or empty."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "EGMF_CACHE"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "egmf")
