"""Fixtures shared across the test suite. Keep this file small: a fixture used by one file lives there."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from egmf.data.synth import mmsa as synth_mmsa
from egmf.features.sentence_cache import SENTENCE_CACHE_ENV
from egmf.model.llm.precision import NATIVE_BF16_ENV

# Every 'auto' precision resolves as on a machine without native bf16 (fp32), in this process and the CLI
# subprocesses the tests start: results must not depend on the CPU or GPU that CI happens to run on.
os.environ[NATIVE_BF16_ENV] = "0"
# No test reads or fills the developer's sentence-vector cache (a test's stand-in encoder would poison it); the
# cache's own tests point it at a temporary folder.
os.environ[SENTENCE_CACHE_ENV] = "off"

# Small MMSA dims and padded lengths: every test pickle stays well under a megabyte.
MMSA_SMALL = {
    "dims": {"text": 8, "audio": 5, "vision": 6},
    "seq_lens": {"text": 12, "audio": 20, "vision": 16},
}


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module: tiny tensors gain nothing from threads, and on a shared 2-core machine
    spinning threads cost 5x. A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``;
    the previous setting comes back after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_mmsa(tmp_path) -> Callable[..., Path]:
    """``make_mmsa(flavour="mosei", variant="unaligned", n_train=12, seed=0, **options) -> pickle path``."""

    def make(flavour: str = "mosei", variant: str = "unaligned", n_train: int = 12, seed: int = 0, **options) -> Path:
        options = {**MMSA_SMALL, **options}
        out = tmp_path / f"{flavour}_{variant}_{n_train}_{seed}"
        return synth_mmsa.write(out, n_train=n_train, seed=seed, flavour=flavour, variant=variant, **options)

    return make
