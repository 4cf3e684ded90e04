"""Pooled sets (``features/pooled/{set}/{id}.npy``) in the custom loader, the feature dims and the batch.

Run: .venv/bin/python -m pytest tests/data/test_custom_pooled.py -q
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from egmf.data.collate import collate
from egmf.data.custom import load_custom
from egmf.data.schema import Sample
from egmf.data.synth import custom as synth_custom
from egmf.errors import DataFormatError


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return synth_custom.write(tmp_path_factory.mktemp("pooled"), 12, seed=2, task="erc", lang="en")


def ids(folder: Path) -> list[str]:
    return sorted(p.stem for p in (folder / "features" / "audio").glob("*.npy"))


def with_pooled(base: Path, tmp_path: Path, dims=None, skip=()) -> Path:
    """A copy of ``base`` with pooled sets ``{set: dim}`` written for every id but those in ``skip``."""
    folder = Path(shutil.copytree(base, tmp_path / "data"))
    rng = np.random.default_rng(0)
    for name, d in (dims or {"egemaps": 88, "sentence": 6}).items():
        out = folder / "features" / "pooled" / name
        out.mkdir(parents=True)
        for i in ids(folder):
            if i not in skip:
                # the extractor writes [1, d]; a [d] vector is one vector too
                v = rng.standard_normal(d).astype(np.float32)
                np.save(out / f"{i}.npy", v[None, :] if name == "egemaps" else v)
    return folder


def test_the_loader_reads_pooled_sets_into_samples_and_feature_dims(base, tmp_path):
    first = ids(base)[0]
    folder = with_pooled(base, tmp_path, skip=(first,))
    data = load_custom(folder)
    samples = {s.id: s for split in data.splits.values() for s in split}
    s = next(s for i, s in samples.items() if i != first)
    assert sorted(s.pooled) == ["egemaps", "sentence"]
    assert s.pooled["egemaps"].shape == (1, 88) and s.pooled["sentence"].shape == (1, 6)
    np.testing.assert_array_equal(s.pooled["egemaps"], np.load(folder / "features/pooled/egemaps" / f"{s.id}.npy"))
    assert samples[first].pooled == {}  # a missing file leaves the set out for that row
    dims = data.feature_dims()
    assert dims["pooled:egemaps"] == 88 and dims["pooled:sentence"] == 6
    assert {k: v for k, v in dims.items() if not k.startswith("pooled:")} == load_custom(base).feature_dims()


def test_a_dataset_without_pooled_sets_is_unchanged(base):
    data = load_custom(base)
    assert all(s.pooled == {} for split in data.splits.values() for s in split)
    assert not any(k.startswith("pooled:") for k in data.feature_dims())


def test_a_pooled_file_with_several_frames_is_refused_by_name(base, tmp_path):
    folder = with_pooled(base, tmp_path, dims={"egemaps": 4})
    bad = folder / "features/pooled/egemaps" / f"{ids(folder)[1]}.npy"
    np.save(bad, np.zeros((3, 4), np.float32))
    with pytest.raises(DataFormatError, match=rf"{bad.name}: shape: expected one pooled vector"):
        load_custom(folder)


def test_pooled_dims_must_agree_within_a_set(base, tmp_path):
    folder = with_pooled(base, tmp_path, dims={"egemaps": 4})
    np.save(folder / "features/pooled/egemaps" / f"{ids(folder)[2]}.npy", np.zeros((1, 5), np.float32))
    with pytest.raises(DataFormatError, match="pooled:egemaps feature dim"):
        load_custom(folder)


def test_collate_batches_pooled_sets_with_a_presence_mask():
    a = Sample("a", "x", "joy", "d", "erc", "en", audio=np.ones((3, 2), np.float32),
               pooled={"egemaps": np.arange(4, dtype=np.float32)[None, :]})
    b = Sample("b", "x", "joy", "d", "erc", "en", audio=np.ones((5, 2), np.float32),
               pooled={"sentence": np.full(3, 2.0, np.float32)})  # a [d] vector
    c = Sample("c", "x", "joy", "d", "erc", "en", audio=np.ones((1, 2), np.float32))
    batch = collate([a, b, c])
    assert [k for k in batch.features if k.startswith("pooled:")] == ["pooled:egemaps", "pooled:sentence"]
    assert batch.features["pooled:egemaps"].shape == (3, 1, 4)
    assert batch.masks["pooled:egemaps"][:, 0].tolist() == [True, False, False]
    assert batch.masks["pooled:sentence"][:, 0].tolist() == [False, True, False]
    assert batch.features["pooled:sentence"][1, 0].tolist() == [2.0, 2.0, 2.0]
    assert batch.dims["pooled:egemaps"].tolist() == [4, 0, 0]
    assert batch.features["audio"].shape == (3, 5, 2)  # the modalities are as before
    assert "pooled:egemaps" in batch.to("cpu").features
    assert not any(k.startswith("pooled:") for k in collate([c]).features)
