"""The shared file readers (egmf.data.readers): strict UTF-8 CSV and JSON, and ``.npy`` feature files; every
error names the file, the field and what was expected."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from egmf.data.readers import load_array, load_feature_files, read_csv, read_json, read_utf8
from egmf.errors import DataFormatError


def test_read_utf8_drops_a_bom_and_names_the_file_and_byte_of_bad_text(tmp_path):
    good = tmp_path / "good.csv"
    good.write_bytes("\ufeffid,text\n1,café\n".encode("utf-8"))
    assert read_utf8(good) == "id,text\n1,café\n"
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("id,text\n1,café\n".encode("latin-1"))
    with pytest.raises(DataFormatError) as e:
        read_utf8(bad)
    assert str(e.value) == f"{bad}: encoding: expected UTF-8 text (re-save the file as UTF-8), got byte 0xe9 at offset 13"
    with pytest.raises(DataFormatError, match=r"missing\.csv: path: expected an existing file, got no such file"):
        read_utf8(tmp_path / "missing.csv")


def test_read_csv_strips_header_names_and_checks_columns_and_cell_counts(tmp_path):
    file = tmp_path / "data.csv"
    file.write_text(" id , text\n1,hello\n2,\"a, b\"\n", encoding="utf-8")
    assert read_csv(file, ["id", "text"]) == [{"id": "1", "text": "hello"}, {"id": "2", "text": "a, b"}]
    with pytest.raises(DataFormatError, match=r"data\.csv: label: expected columns \['id', 'label'\], got header \['id', 'text'\]"):
        read_csv(file, ["id", "label"])
    file.write_text("id,text\n1,hello,extra\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"data\.csv: row 2: expected 2 cells \(as the header\), got a different count"):
        read_csv(file, ["id"])
    file.write_text("id,text\n1\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="row 2: expected 2 cells"):
        read_csv(file, ["id"])


def test_read_json_names_the_line_of_a_broken_document(tmp_path):
    file = tmp_path / "train.json"
    file.write_text('[{"id": 1}]', encoding="utf-8")
    assert read_json(file) == [{"id": 1}]
    file.write_text('[\n{"id": 1},\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"train\.json: json: expected a complete JSON document, got .* at line 3"):
        read_json(file)


def test_load_array_makes_a_vector_one_frame_counts_and_cleans_non_finite_values(tmp_path):
    vec = tmp_path / "v.npy"
    np.save(vec, np.array([1, 2, 3], dtype=np.int64))
    arr, counts = load_array(vec)
    assert arr.dtype == np.float32 and arr.shape == (1, 3)
    assert counts == {"nan": 0, "neg_inf": 0, "pos_inf": 0}
    odd = tmp_path / "odd.npy"
    np.save(odd, np.array([[1.0, np.inf], [-np.inf, 2.0]], dtype=np.float32))
    arr, counts = load_array(odd)
    np.testing.assert_array_equal(arr, [[1.0, 0.0], [0.0, 2.0]])
    assert counts == {"nan": 0, "neg_inf": 1, "pos_inf": 1}
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([[np.nan, 1.0]], dtype=np.float32))
    with pytest.raises(DataFormatError, match=r"nan\.npy: values: expected finite values .*got 1 NaN"):
        load_array(nan)
    np.testing.assert_array_equal(load_array(nan, nan="zero")[0], [[0.0, 1.0]])
    assert np.isnan(load_array(nan, nan="keep")[0][0, 0])


@pytest.mark.parametrize("write, field, expected", [
    (lambda p: np.save(p, np.zeros((2, 3, 4), np.float32)), "shape", r"\[T, d\] or \[d\], got \(2, 3, 4\)"),
    (lambda p: np.save(p, np.array([["a", "b"]])), "dtype", "numbers"),
    (lambda p: np.save(p, np.zeros((0, 3), np.float32)), "shape", "at least one frame and one feature"),
    (lambda p: p.write_bytes(b"\x93NUMPY truncated"), "npy", "a complete .npy array file"),
])
def test_load_array_refuses_what_is_not_a_feature_array(tmp_path, write, field, expected):
    path = tmp_path / "bad.npy"
    write(path)
    with pytest.raises(DataFormatError, match=rf"bad\.npy: {field}: expected {expected}"):
        load_array(path)
    with pytest.raises(DataFormatError, match=r"gone\.npy: path: expected an existing \.npy file"):
        load_array(tmp_path / "gone.npy")


def test_load_feature_files_counts_missing_files_and_refuses_a_second_dim(tmp_path, caplog):
    for name, dim in (("a", 4), ("b", 4)):
        np.save(tmp_path / f"{name}.npy", np.ones((2, dim), np.float32))
    files = {"a": tmp_path / "a.npy", "b": tmp_path / "b.npy", "c": tmp_path / "c.npy"}
    with caplog.at_level(logging.WARNING, logger="egmf.data.readers"):
        fs = load_feature_files(files, "audio", where="train")
    assert fs.dim == 4 and fs.missing == ["c"] and fs.arrays["c"] is None and fs.arrays["a"].shape == (2, 4)
    assert "train: audio: 1 of 3 feature files missing (c...)" in caplog.text
    np.save(tmp_path / "c.npy", np.ones((2, 5), np.float32))
    with pytest.raises(DataFormatError, match=r"c\.npy: audio feature dim: expected 4 \(as a\.npy\), got 5"):
        load_feature_files(files, "audio")
