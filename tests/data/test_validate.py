"""The checks every loader shares (egmf.data.validate): each returns what it checked or raises naming the file,
the field and what was expected."""

from __future__ import annotations

import numpy as np
import pytest

from egmf.data import validate as V
from egmf.errors import ConfigError, DataFormatError


def test_nan_policy_and_kept_nan_are_refused_with_the_choices():
    V.check_nan_policy("zero")
    with pytest.raises(ConfigError, match="nan: expected one of error, zero, keep, got 'drop'"):
        V.check_nan_policy("drop")
    V.refuse_kept_nan({"nan": "zero"}, "data.datasets[0]")
    with pytest.raises(ConfigError, match=r"data.datasets\[0\]: nan=keep .* valid choices here: error, zero"):
        V.refuse_kept_nan({"nan": "keep"}, "data.datasets[0]")


def test_require_keys_names_the_first_missing_key_under_where():
    V.require_keys({"a": 1, "b": 2}, ["a", "b"], "f.pkl")
    with pytest.raises(DataFormatError, match=r"f\.pkl: train\.b: expected keys \['a', 'b'\], got missing \['b'\]"):
        V.require_keys({"a": 1}, ["a", "b"], "f.pkl", "train")


def test_require_array_checks_type_dims_and_dtype():
    a = np.zeros((2, 3), np.float32)
    assert V.require_array(a, "f", "audio", 2) is a
    with pytest.raises(DataFormatError, match="f: audio: expected a numpy array with 2 dims, got list"):
        V.require_array([[0.0]], "f", "audio", 2)
    with pytest.raises(DataFormatError, match=r"f: audio: expected 3 dims, got shape \(2, 3\)"):
        V.require_array(a, "f", "audio", 3)
    with pytest.raises(DataFormatError, match="f: ids: expected dtype kind 'iu', got float32"):
        V.require_array(a, "f", "ids", 2, "iu")


def test_clean_features_sets_inf_to_zero_and_follows_the_nan_policy():
    x = np.array([[1.0, np.inf, -np.inf]], np.float64)
    out = V.clean_features(x, "f", "audio")
    assert out.dtype == np.float32 and out.tolist() == [[1.0, 0.0, 0.0]]
    y = np.array([[np.nan, 2.0]])
    with pytest.raises(DataFormatError, match=r"f: audio: expected finite values \(pass nan='zero'.*got 1 NaN"):
        V.clean_features(y, "f", "audio")
    assert V.clean_features(y, "f", "audio", nan="zero").tolist() == [[0.0, 2.0]]
    assert np.isnan(V.clean_features(y, "f", "audio", nan="keep")[0, 0])


def test_count_nonfinite_counts_each_kind_and_ignores_integers():
    x = np.array([np.nan, np.nan, -np.inf, np.inf, np.inf, 1.0])
    assert V.count_nonfinite(x) == {"nan": 2, "neg_inf": 1, "pos_inf": 2}
    assert V.count_nonfinite(np.arange(3)) == {"nan": 0, "neg_inf": 0, "pos_inf": 0}


def test_dims_scores_labels_and_texts():
    assert V.require_same_dim({"train": 5, "test": 5}, "f", "audio") == 5
    assert V.require_same_dim({}, "f", "audio") == 0
    with pytest.raises(DataFormatError, match=r"f: audio: expected the same feature dim in every split, got \{'train': 5, 'test': 4\}"):
        V.require_same_dim({"train": 5, "test": 4}, "f", "audio")
    assert V.require_score("1.5", -3, 3, "f", "label") == 1.5
    for bad in (3.5, float("nan")):
        with pytest.raises(DataFormatError, match=r"f: label: expected a score in \[-3, 3\]"):
            V.require_score(bad, -3, 3, "f", "label")
    assert V.require_label("joy", ("joy", "sadness"), "f", "row 2") == "joy"
    with pytest.raises(DataFormatError, match="f: row 2: expected one of joy, sadness, got 'happy'"):
        V.require_label("happy", ("joy", "sadness"), "f", "row 2")
    assert V.require_text("hi", "f", "text") == "hi"
    for bad in ("  ", None):
        with pytest.raises(DataFormatError, match="f: text: expected a non-empty string"):
            V.require_text(bad, "f", "text")
