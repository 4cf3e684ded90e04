"""What the experiments tests share: reading back the markdown tables the runners write, and (for the run
tests) the trainer tests' tiny generated data and fast late-fusion config."""

from __future__ import annotations

import pytest

# One definition of the tiny data and the fast config, in tests/training/conftest.py: tiny_data is a fixture,
# re-exported here so that the run tests (tests/experiments/test_run.py) can ask for it.
from ..training.conftest import make_config, tiny_data  # noqa: F401


def _table_cells(text: str) -> list[list[str]]:
    """Every markdown table line of ``text`` (header, alignment row, rows) as stripped cells, any padding."""
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]


@pytest.fixture
def md_cells():
    return _table_cells
