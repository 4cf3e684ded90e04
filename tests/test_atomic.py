"""egmf.atomic: a file or folder is replaced only by a complete new version, never half of one."""

from __future__ import annotations

import json
import os

import pytest

from egmf.atomic import atomic_file, atomic_folder, recover_folder, write_json_atomic, write_text_atomic
from egmf.errors import RunFolderExistsError


def test_a_file_is_replaced_on_success(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    write_text_atomic(path, "old")
    with atomic_file(path) as f:
        f.write("new")
        assert path.read_text() == "old", "readers see the old version while the new one is written"
    assert path.read_text() == "new"
    with atomic_file(tmp_path / "b.bin", mode="wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "sub"]


def test_an_error_leaves_the_old_content_and_no_temporary_file(tmp_path):
    path = tmp_path / "a.txt"
    write_text_atomic(path, "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(path) as f:
            f.write("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_json_is_utf8_and_indented_unless_told_otherwise(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"é": 1})
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == '{\n  "é": 1\n}'
    write_json_atomic(tmp_path / "b.json", [1, 2], indent=None)
    assert json.loads((tmp_path / "b.json").read_text()) == [1, 2]


def _fill(path, text):
    with atomic_folder(path, exists="replace") as tmp:
        (tmp / "f.txt").write_text(text)


def test_folder_error_mode_refuses_a_non_empty_folder_and_publishes_into_an_empty_one(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with atomic_folder(out, exists="error") as tmp:  # an empty folder is taken over
        (tmp / "f.txt").write_text("1")
    assert (out / "f.txt").read_text() == "1"
    assert oct(out.stat().st_mode & 0o777) == "0o755", "an ordinary folder, not mkdtemp's private one"
    with pytest.raises(RunFolderExistsError, match="already exists"):
        with atomic_folder(out, exists="error") as tmp:
            (tmp / "f.txt").write_text("2")
    assert (out / "f.txt").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "the refused temporary folder is gone"


def test_folder_error_mode_runs_the_check_first(tmp_path):
    def check(path):
        raise ValueError(f"{path.name}: clearer error")

    with pytest.raises(ValueError, match="out: clearer error"):
        with atomic_folder(tmp_path / "out", exists="error", check=check):
            pass
    assert list(tmp_path.iterdir()) == []


def test_folder_keep_mode_keeps_the_copy_already_there(tmp_path):
    cache = tmp_path / "cache"
    with atomic_folder(cache, exists="keep") as tmp:
        (tmp / "f.txt").write_text("first")
    with atomic_folder(cache, exists="keep") as tmp:
        (tmp / "f.txt").write_text("second")
    assert (cache / "f.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_folder_replace_mode_replaces_on_success_only(tmp_path):
    ckpt = tmp_path / "last"
    _fill(ckpt, "1")
    _fill(ckpt, "2")
    assert (ckpt / "f.txt").read_text() == "2"
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(ckpt, exists="replace") as tmp:
            (tmp / "f.txt").write_text("half")
            raise KeyboardInterrupt
    assert (ckpt / "f.txt").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["last"]


def test_recover_folder_puts_back_a_replace_killed_between_its_renames(tmp_path, monkeypatch):
    ckpt = tmp_path / "last"
    _fill(ckpt, "old")
    real, calls = os.replace, []

    def replace(src, dst):  # the second rename (new folder into place) never happens
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        with pytest.raises(KeyboardInterrupt):
            _fill(ckpt, "new")
    assert not ckpt.exists() and next(tmp_path.iterdir()).name.startswith(".last.old-")
    (tmp_path / ".last.tmp-stale").mkdir()  # an unfinished write of an earlier kill

    assert "restored" in recover_folder(ckpt)
    assert (ckpt / "f.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["last"], "stale temporary folders are removed"
    assert recover_folder(ckpt) is None
    assert recover_folder(tmp_path / "missing" / "last") is None
