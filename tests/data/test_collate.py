"""``collate``: zero padding in time and feature dim, masks, missing modalities, mixed dims, truncation.

Run: .venv/bin/python -m pytest tests/data/test_collate.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egmf.data.collate import collate
from egmf.data.schema import Sample


def sample(i: int, text=None, audio=None, vision=None, dataset="meld") -> Sample:
    return Sample(id=f"u{i}", text=f"t{i}", label="joy", dataset=dataset, task="erc", lang="en",
                  text_feats=text, audio=audio, vision=vision)


def frames(t: int, d: int, start: float = 1.0) -> np.ndarray:
    """Distinct non-zero values, so padding (zeros) is never confused with data."""
    return (start + np.arange(t * d, dtype=np.float32)).reshape(t, d)


def test_padding_and_masks():
    a, b = frames(3, 4), frames(1, 4, start=100.0)
    batch = collate([sample(0, audio=a), sample(1, audio=b)])
    feat, mask = batch.features["audio"], batch.masks["audio"]
    assert feat.shape == (2, 3, 4) and feat.dtype == torch.float32
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    np.testing.assert_array_equal(feat[0].numpy(), a)
    np.testing.assert_array_equal(feat[1, 0].numpy(), b[0])
    assert torch.count_nonzero(feat[1, 1:]) == 0  # zero padding
    assert batch.dims["audio"].tolist() == [4, 4]
    assert len(batch) == 2 and [s.id for s in batch.samples] == ["u0", "u1"]


def test_missing_modality_is_an_all_false_mask():
    batch = collate([sample(0, text=frames(2, 3)), sample(1, text=frames(4, 3), vision=frames(2, 5))])
    # audio: absent everywhere -> a [B, 1, 1] zero tensor with an all-False mask, not a crash
    assert batch.features["audio"].shape == (2, 1, 1)
    assert not batch.masks["audio"].any()
    assert batch.dims["audio"].tolist() == [0, 0]
    # vision: absent in sample 0 only
    assert batch.masks["vision"].tolist() == [[False, False], [True, True]]
    assert batch.dims["vision"].tolist() == [0, 5]
    assert torch.count_nonzero(batch.features["vision"][0]) == 0


def test_empty_sequence_counts_as_missing():
    batch = collate([sample(0, audio=np.zeros((0, 4), np.float32)), sample(1, audio=frames(2, 4))])
    assert batch.masks["audio"].tolist() == [[False, False], [True, True]]
    assert batch.dims["audio"].tolist() == [0, 4]


def test_mixed_feature_dims_pad_to_the_widest():
    """A batch mixing datasets (e.g. MELD audio 300-d and CHERMA 1024-d) pads the feature dim too."""
    narrow, wide = frames(2, 3), frames(3, 6, start=50.0)
    batch = collate([sample(0, audio=narrow, dataset="meld"), sample(1, audio=wide, dataset="cherma")])
    feat = batch.features["audio"]
    assert feat.shape == (2, 3, 6)
    assert batch.dims["audio"].tolist() == [3, 6]
    np.testing.assert_array_equal(feat[0, :2, :3].numpy(), narrow)
    assert torch.count_nonzero(feat[0, :, 3:]) == 0 and torch.count_nonzero(feat[0, 2]) == 0
    np.testing.assert_array_equal(feat[1].numpy(), wide)
    assert [s.dataset for s in batch.samples] == ["meld", "cherma"]


def test_max_frames_truncates_per_modality():
    batch = collate([sample(0, text=frames(10, 2), audio=frames(7, 3))], max_frames={"audio": 4})
    assert batch.features["audio"].shape == (1, 4, 3)
    np.testing.assert_array_equal(batch.features["audio"][0].numpy(), frames(7, 3)[:4])
    assert batch.features["text"].shape == (1, 10, 2)  # untouched


def test_float64_input_becomes_float32():
    batch = collate([sample(0, vision=np.full((2, 2), 0.1, dtype=np.float64))])
    assert batch.features["vision"].dtype == torch.float32
    assert batch.features["vision"][0, 0, 0].item() == pytest.approx(0.1)


def test_to_moves_every_tensor():
    batch = collate([sample(0, audio=frames(2, 2))]).to("cpu")
    assert all(t.device.type == "cpu" for t in [*batch.features.values(), *batch.masks.values(), *batch.dims.values()])


def test_empty_list_is_an_error():
    with pytest.raises(ValueError, match="expected at least one sample"):
        collate([])
