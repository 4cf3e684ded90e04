"""Atomic writes: a file or a folder is written under a temporary sibling name and renamed into place.

A reader (or a run resumed after a kill) therefore sees either the previous version or the complete new
one, never half of a file. Every write of a result, feature array, cache or checkpoint in EGMF goes
through this module:

    with atomic_file(path) as f:            # text; mode="wb" for bytes (np.save, torch.save)
        f.write(...)
    write_text_atomic(path, text); write_json_atomic(path, obj)
    with atomic_folder(out, exists="error") as tmp:   # a new dataset / feature folder
        ...write into tmp...
    with atomic_folder(cache, exists="keep") as tmp:  # a cache: a concurrent writer that won keeps its copy
    with atomic_folder(ckpt, exists="replace") as tmp # a checkpoint: the old one moves aside, then goes

``exists="replace"`` needs two renames (old aside, new in); :func:`recover_folder` repairs a kill between
them by putting the aside folder back.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from egmf.errors import RunFolderExistsError


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_file(path: str | Path, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None):
    """Open a temporary sibling of ``path`` for writing; on a clean exit it is flushed, synced and renamed
    onto ``path``; on an error it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    binary = "b" in mode
    try:
        with open(tmp, mode, encoding=None if binary else encoding, newline=None if binary else newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_file(path) as f:
        f.write(text)
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any, **dump_options: Any) -> Path:
    """``obj`` as UTF-8 JSON (``ensure_ascii=False``, ``indent=2`` unless overridden)."""
    options = {"ensure_ascii": False, "indent": 2, **dump_options}
    return write_text_atomic(path, json.dumps(obj, **options))


def _aside(path: Path) -> Path:
    return path.with_name(f".{path.name}.old-{os.getpid()}")


@contextmanager
def atomic_folder(
    path: str | Path,
    exists: Literal["error", "keep", "replace"] = "error",
    check: Callable[[Path], None] | None = None,
) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; on a clean exit it becomes ``path``.

    ``exists`` says what happens when ``path`` is already there at the moment of publishing:
    ``"error"``: refuse unless it is an empty folder (``check(path)``, when given, runs first and may raise a
    clearer error); ``"keep"``: keep the existing one (a cache another process completed first) and drop ours;
    ``"replace"``: move the old one aside, rename ours in, then delete the old one (see :func:`recover_folder`).
    On an error inside the block the temporary folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a published folder is an ordinary folder
        for p in tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        _publish(tmp, path, exists, check)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(tmp: Path, path: Path, exists: str, check: Callable[[Path], None] | None) -> None:
    if exists == "replace":
        old = None
        if path.exists():
            old = _aside(path)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return
    if exists == "keep" and path.exists():
        shutil.rmtree(tmp, ignore_errors=True)
        return
    if check is not None:
        check(path)  # again at publishing: someone may have written to path while tmp was filled
    if path.exists():
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        else:
            raise RunFolderExistsError(f"{path}: already exists and is not empty; not overwritten")
    try:
        os.replace(tmp, path)
    except OSError:
        if exists == "keep" and path.exists():  # a concurrent writer won the race; its copy is as good
            shutil.rmtree(tmp, ignore_errors=True)
            return
        raise


def recover_folder(path: str | Path) -> str | None:
    """Put back the folder a kill caught between the two renames of ``atomic_folder(..., exists="replace")``.

    Such a kill leaves ``path`` missing while the previous version, complete, sits aside (``.NAME.old-PID``).
    Unfinished ``.NAME.tmp-*`` folders of a killed write are removed. Returns what was done, for the log.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return None
    done = None
    aside = sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not path.exists() and aside:
        os.replace(aside.pop(), path)
        done = f"restored {path} from a save interrupted between its renames"
    for stale in [*aside, *path.parent.glob(f".{path.name}.tmp-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    return done
