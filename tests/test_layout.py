"""The test tree mirrors the package: a test file in ``tests/<path>/`` tests a module of ``src/egmf/<path>/``
(``tests/model/fusion/test_gating.py`` tests ``egmf/model/fusion/gating.py``), so this test fails when a test
folder matches no package folder (a typo, a renamed package, an ad-hoc ``tests/misc/``)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS, PACKAGE = REPO / "tests", REPO / "src" / "egmf"


def stray_test_folders(tests: Path, package: Path) -> list[str]:
    """Folders under ``tests`` that hold Python files but have no package folder at the same path."""
    folders = {p.parent.relative_to(tests) for p in tests.rglob("*.py") if "__pycache__" not in p.parts}
    return sorted(str(f) for f in folders if not (package / f / "__init__.py").is_file())


def test_every_test_folder_mirrors_a_package_folder():
    stray = stray_test_folders(TESTS, PACKAGE)
    assert not stray, f"tests/<path>/ must mirror src/egmf/<path>/; no package for: {', '.join(stray)}"


def test_a_folder_that_mirrors_nothing_is_caught(tmp_path):
    package, tests = tmp_path / "src" / "egmf", tmp_path / "tests"
    for folder in (package / "model" / "fusion", tests / "model" / "fusion", tests / "misc"):
        folder.mkdir(parents=True)
    for init in (package / "__init__.py", package / "model" / "__init__.py", package / "model" / "fusion" / "__init__.py"):
        init.touch()
    (tests / "test_errors.py").touch()
    (tests / "model" / "fusion" / "test_gating.py").touch()
    (tests / "misc" / "test_things.py").touch()
    assert stray_test_folders(tests, package) == ["misc"]
    (tests / "model" / "fusoin").mkdir()
    (tests / "model" / "fusoin" / "conftest.py").touch()
    assert stray_test_folders(tests, package) == ["misc", "model/fusoin"]
