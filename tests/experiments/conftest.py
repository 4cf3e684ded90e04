"""What the experiments tests share: reading back the markdown tables the runners write."""

from __future__ import annotations

import pytest


def _table_cells(text: str) -> list[list[str]]:
    """Every markdown table line of ``text`` (header, alignment row, rows) as stripped cells, any padding."""
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]


@pytest.fixture
def md_cells():
    return _table_cells
