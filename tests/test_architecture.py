"""Imports flow one way: data -> features -> model -> evaluation -> training -> experiments -> cli.

The contract is the ``[tool.importlinter]`` section of pyproject.toml; these tests run it with the venv's
``lint-imports`` (import-linter), on the real package and on a generated one that breaks it, so a passing
check is known to be able to fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
# The layers, top first, exactly as pyproject.toml lists them (read back in the test below).
LAYERS = ["cli", "experiments", "training", "evaluation", "model", "features", "data"]

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (pip install .[dev])")


def lint(package_root: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the repository's contract over the ``egmf`` package found under ``package_root``."""
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(REPO / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_the_contract_lists_the_documented_order():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    assert layers == [f"egmf.{name}" for name in LAYERS]


def test_the_package_imports_only_downwards(tmp_path):
    result = lint(REPO / "src", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def _fake_egmf(root: Path, importer: str, imported: str) -> None:
    """An ``egmf`` with every layer as an empty package and one module of ``importer`` importing ``imported``."""
    (root / "egmf").mkdir(parents=True)
    (root / "egmf" / "__init__.py").write_text("")
    for name in LAYERS:
        (root / "egmf" / name).mkdir()
        (root / "egmf" / name / "__init__.py").write_text("")
    # Inside a function, as evaluation/ablation.py used to import training: a hidden edge is still an edge.
    (root / "egmf" / importer / "leak.py").write_text(f"def f():\n    import egmf.{imported}.thing\n")
    (root / "egmf" / imported / "thing.py").write_text("")


@pytest.mark.parametrize("importer, imported", [("evaluation", "training"), ("data", "cli"), ("features", "model")])
def test_a_back_edge_breaks_the_contract(tmp_path, importer, imported):
    _fake_egmf(tmp_path / "src", importer, imported)
    result = lint(tmp_path / "src", tmp_path)
    assert result.returncode != 0, result.stdout
    assert "0 kept, 1 broken" in result.stdout
    assert f"egmf.{importer}.leak -> egmf.{imported}.thing" in result.stdout


def test_a_shared_module_may_be_imported_from_any_layer(tmp_path):
    """``egmf.config`` (and errors, atomic, ...) sits outside the layers; importing it downwards is fine."""
    _fake_egmf(tmp_path / "src", "cli", "data")  # a legal edge: cli -> data
    (tmp_path / "src" / "egmf" / "config.py").write_text("import egmf.data\n")
    (tmp_path / "src" / "egmf" / "data" / "uses_config.py").write_text("import egmf.config\n")
    result = lint(tmp_path / "src", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
