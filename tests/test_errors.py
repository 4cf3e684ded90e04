"""The errors a user can act on (egmf.errors): one message format, and the classes callers catch."""

from __future__ import annotations

from pathlib import Path

from egmf.errors import ConfigError, DataFormatError, EGMFError, RunFolderExistsError, UnsafePickleError


def test_data_format_error_reads_file_field_expected_got():
    e = DataFormatError(Path("data") / "train.csv", "label", "one of joy, sad", "'happy'")
    assert str(e) == f"{Path('data') / 'train.csv'}: label: expected one of joy, sad, got 'happy'"
    assert (e.file, e.field, e.expected, e.got) == (str(Path("data") / "train.csv"), "label", "one of joy, sad", "'happy'")
    assert str(DataFormatError("x.npy", "path", "an existing file")) == "x.npy: path: expected an existing file"
    assert str(DataFormatError("x.npy", "dim", "8", 0)) == "x.npy: dim: expected 8, got 0"  # a falsy got is shown


def test_every_error_is_an_egmf_error_and_keeps_its_builtin_base():
    assert issubclass(UnsafePickleError, DataFormatError)
    for cls, builtin in ((DataFormatError, ValueError), (ConfigError, ValueError), (RunFolderExistsError, FileExistsError)):
        assert issubclass(cls, EGMFError) and issubclass(cls, builtin)
