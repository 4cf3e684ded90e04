"""The restricted unpickler: numpy arrays and builtins load; anything else is refused without running.

Run: .venv/bin/python -m pytest tests/data/test_safe_pickle.py -q
"""

from __future__ import annotations

import collections
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from egmf.data.registry import load_dataset
from egmf.data.safe_pickle import safe_load
from egmf.errors import DataFormatError, UnsafePickleError


class RunsCode:
    """Unpickling this calls ``os.system`` (the classic pickle exploit) to create a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def dump(tmp_path: Path, obj, protocol: int = 4) -> Path:
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_and_builtins_round_trip(tmp_path, protocol):
    obj = {
        "train": {
            "audio": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
            "ids": np.array(["a$_$1", "b$_$2"], dtype=object),
            "labels": np.array([0.5, -1.0]),
            "lengths": [3, 2],
            "nested": collections.OrderedDict(x=(1, 2.5, "s", b"bytes", None, True)),
            "scalar": np.float64(1.5),
        },
        "set": {1, 2},
    }
    back = safe_load(dump(tmp_path, obj, protocol))
    np.testing.assert_array_equal(back["train"]["audio"], obj["train"]["audio"])
    assert back["train"]["audio"].dtype == np.float32
    assert list(back["train"]["ids"]) == ["a$_$1", "b$_$2"]
    assert back["train"]["nested"] == obj["train"]["nested"]
    assert back["train"]["scalar"] == 1.5 and back["set"] == {1, 2}


def test_os_system_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = dump(tmp_path, {"train": RunsCode(marker)})
    with pytest.raises(UnsafePickleError, match=r"pickle global: expected numpy arrays and builtin containers only, got (posix|nt)\.system"):
        safe_load(path)
    assert not marker.exists()


def test_counter_is_refused(tmp_path):
    path = dump(tmp_path, {"train": {"labels": collections.Counter("aab")}})
    with pytest.raises(UnsafePickleError, match=r"got collections\.Counter") as err:
        safe_load(path)
    assert str(path) in str(err.value)


def test_any_other_class_is_refused(tmp_path):
    path = dump(tmp_path, {"x": Path("/etc/passwd")})
    with pytest.raises(UnsafePickleError, match=r"got pathlib\.\w*Path"):
        safe_load(path)


def test_unsafe_mmsa_pickle_is_refused_by_the_loader(make_mmsa, tmp_path):
    """An otherwise valid MMSA file with one injected object is refused before any sample is built."""
    path = make_mmsa("mosei")
    raw = safe_load(path)
    marker = tmp_path / "pwned"
    raw["valid"]["annotations"] = RunsCode(marker)
    path.write_bytes(pickle.dumps(raw, protocol=4))
    with pytest.raises(UnsafePickleError):
        load_dataset("mosei", path)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_files_raise_data_format_error(tmp_path, damage):
    good = pickle.dumps({"a": np.zeros((4, 4))}, protocol=4)
    data = {"truncated": good[: len(good) - 20], "garbage": b"not a pickle at all", "empty": b""}[damage]
    path = tmp_path / "x.pkl"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match=r"x\.pkl: pickle: expected a complete, readable pickle file") as err:
        safe_load(path)
    assert not isinstance(err.value, UnsafePickleError)
