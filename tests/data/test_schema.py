"""The data types every loader returns (egmf.data.schema): what a dataset must declare, feature access."""

from __future__ import annotations

import numpy as np
import pytest

from egmf.data.schema import BenchmarkData, DatasetInfo, Sample


def test_a_dataset_must_declare_its_labels_or_score_range():
    with pytest.raises(ValueError, match="dataset d: an ERC dataset needs its label words"):
        DatasetInfo("d", "erc", "en")
    with pytest.raises(ValueError, match="dataset d: an MSA dataset needs its score range"):
        DatasetInfo("d", "msa", "en")


def test_features_by_modality_and_dims_over_every_split():
    info = DatasetInfo("d", "msa", "en", score_range=(-1.0, 1.0))
    a = Sample("a", "hi", 0.5, "d", "msa", "en", text_feats=np.zeros((2, 8), np.float32))
    b = Sample("b", "yo", -0.5, "d", "msa", "en", audio=np.zeros((3, 5), np.float32))
    assert a.features("text").shape == (2, 8) and a.features("audio") is None
    with pytest.raises(KeyError, match="unknown modality 'smell'"):
        a.features("smell")
    data = BenchmarkData(info, {"train": [a], "test": [b]})
    assert data.feature_dims() == {"text": 8, "audio": 5, "vision": 0}
