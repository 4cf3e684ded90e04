"""The train split's input statistics (``feature_statistics``), how the trainer installs them, and the
``auto`` text source.

Run: .venv/bin/python -m pytest tests/training/test_data_statistics.py -q
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from egmf.data.schema import Sample
from egmf.errors import DataFormatError
from egmf.model.config import ModelConfig, text_feature_dim
from egmf.model.standardize import FeatureStandardizer, safe_std
from egmf.training import checkpoint as ckpt
from egmf.training.data import apply_text_source, feature_statistics, load_training_data
from egmf.training.trainer import fit

from .conftest import make_config


def sample(i, dataset="a", audio=None, text=None, pooled=None) -> Sample:
    return Sample(f"{dataset}-{i}", f"utterance {i}", "joy", dataset, "erc", "en", audio=audio, text_feats=text,
                  pooled=pooled or {})


def test_statistics_are_over_all_real_frames_per_dataset_and_key():
    rng = np.random.default_rng(0)
    frames = [rng.normal(3.0, 2.0, size=(t, 4)) for t in (1, 5, 2)]
    pooled = [rng.normal(size=(1, 3)) for _ in range(3)]
    samples = [sample(i, audio=f, pooled={"egemaps": p}) for i, (f, p) in enumerate(zip(frames, pooled))]
    samples.append(sample(9, "b", audio=np.full((2, 2), 7.0), text=np.ones((3, 5))))
    samples.append(sample(10))  # no features at all: counts for nothing
    stats = feature_statistics(samples)
    assert set(stats) == {"a", "b"} and set(stats["a"]) == {"audio", "pooled:egemaps"}
    assert set(stats["b"]) == {"audio", "text"}
    all_frames = np.concatenate(frames)
    np.testing.assert_allclose(stats["a"]["audio"][0], all_frames.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats["a"]["audio"][1], all_frames.std(0), rtol=1e-12)
    np.testing.assert_allclose(stats["a"]["pooled:egemaps"][1], np.concatenate(pooled).std(0), rtol=1e-12)
    assert stats["b"]["audio"][1].tolist() == [0.0, 0.0]


def test_statistics_keep_their_precision_under_a_large_offset():
    rng = np.random.default_rng(1)
    frames = [(2767.0 + 1e-3 * rng.standard_normal((50, 2))).astype(np.float32) for _ in range(40)]
    mean, std = feature_statistics([sample(i, audio=f) for i, f in enumerate(frames)])["a"]["audio"]
    ref = np.concatenate(frames).astype(np.float64)
    np.testing.assert_allclose(std, ref.std(0), rtol=1e-6)


def test_statistics_refuse_samples_of_one_dataset_with_different_dims():
    with pytest.raises(DataFormatError, match="audio features of sample 'a-1'.*dim 3"):
        feature_statistics([sample(0, audio=np.ones((2, 3))), sample(1, audio=np.ones((2, 4)))])


# --- the trainer ---------------------------------------------------------------------------------------


def buffers(model) -> dict[str, torch.Tensor]:
    (st,) = [m for m in model.modules() if isinstance(m, FeatureStandardizer)]
    return {k: v.clone() for k, v in st.state_dict().items()}


def scale_features(samples, factor):
    for s in samples:
        s.audio = None if s.audio is None else s.audio * factor + 3.0
        s.vision = None if s.vision is None else s.vision * factor


def test_the_trainer_fits_on_train_only_and_the_checkpoint_carries_the_statistics(tiny_data, tmp_path):
    cfg = make_config(tiny_data, tmp_path / "runs", max_steps=1, eval_every=1)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, text_source="none"))  # no MiniLM here
    data = load_training_data(cfg.data, "none")
    model, _ = fit(cfg, data, tmp_path / "seed")
    got = buffers(model)
    expected = feature_statistics(data.split("train"))
    for ds, per_key in expected.items():
        for key, (mean, std) in per_key.items():
            name = f"{ds}__{key}"
            np.testing.assert_allclose(got[f"mean__{name}"].numpy(), mean, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got[f"std__{name}"].numpy(), safe_std(mean, std), rtol=1e-5)
    assert any(v.abs().sum() > 0 for k, v in got.items() if k.startswith("mean__"))  # really fitted

    # valid and test values do not move the statistics
    scale_features(data.split("valid") + data.split("test"), 100.0)
    again, _ = fit(cfg, data, tmp_path / "seed2")
    for k, v in buffers(again).items():
        torch.testing.assert_close(v, got[k])

    # the best checkpoint holds them: a model rebuilt from it standardises the same way
    reloaded, _, _ = ckpt.load_model(tmp_path / "seed" / "checkpoints" / "best")
    for k, v in buffers(reloaded).items():
        torch.testing.assert_close(v, got[k])


# --- text_source: auto ---------------------------------------------------------------------------------


def test_auto_is_the_default_text_source_and_keeps_the_data_dim():
    assert ModelConfig().text_source == "auto"
    assert text_feature_dim("auto", 768) == 768 and text_feature_dim("auto", 384, llm_hidden=576) == 384


def test_auto_gives_sentence_vectors_only_to_datasets_without_text_features():
    own = np.ones((4, 8), np.float32)
    shipped = [sample(0, "with", text=own), sample(1, "with")]  # one file missing: stays missing
    bare = [sample(2, "bare"), sample(3, "bare")]
    changed = apply_text_source(shipped + bare, "auto")
    assert changed == ["bare"]
    assert shipped[0].text_feats is own and shipped[1].text_feats is None
    for s in bare:
        assert s.text_feats.shape == (1, 384) and s.text_feats.dtype == np.float32
    assert not np.allclose(bare[0].text_feats, bare[1].text_feats)  # two different sentences
    # the other choices are as before
    assert apply_text_source([sample(4, "with", text=own)], "dataset") == []
    s = sample(5, "with", text=own)
    assert apply_text_source([s], "llm") == [] and s.text_feats is None
