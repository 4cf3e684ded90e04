"""Generated datasets in each benchmark's exact distributed layout, with a learnable label signal in
every modality. Tests and the quickstart use them; ``egmf data synth`` writes them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

FORMATS = ("mmsa", "meld", "cherma", "custom")


def write_synthetic(fmt: str, out: str | Path, size: str | int = "small", seed: int = 0, **options) -> Path:
    """Write a generated dataset of format ``fmt`` into ``out`` and return the path a loader reads.

    ``size`` is ``tiny``, ``small``, ``medium`` or a number of utterances in the train split.
    Each format module exposes ``write(out: Path, n_train: int, seed: int, **options) -> Path``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown synthetic format {fmt!r}; valid choices: {', '.join(FORMATS)}")
    n_train = size_to_count(size)
    module = importlib.import_module(f"egmf.data.synth.{fmt}")
    return module.write(Path(out), n_train=n_train, seed=seed, **options)


SIZES = {"tiny": 24, "small": 240, "medium": 1200}


def size_to_count(size: str | int) -> int:
    if isinstance(size, int) or (isinstance(size, str) and size.isdigit()):
        n = int(size)
        if n < 4:
            raise ValueError(f"size: expected at least 4 train utterances, got {n}")
        return n
    if size not in SIZES:
        raise ValueError(f"size: expected one of {', '.join(SIZES)} or a number, got {size!r}")
    return SIZES[size]
