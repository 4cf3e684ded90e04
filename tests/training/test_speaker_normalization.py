"""Speaker-level normalisation (``data.speaker_normalization``): each speaker's acoustic inputs standardised by that
speaker's own statistics, per split.

Run: .venv/bin/python -m pytest tests/training/test_speaker_normalization.py -q
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from egmf.config import config_from_dict
from egmf.data.schema import Sample
from egmf.errors import ConfigError
from egmf.training.data import SPEAKER_MIN_SAMPLES, load_training_data, normalize_per_speaker

from .conftest import run_config_dict


def voice(rng, speaker, n, offset, scale, dataset="a", frames=6) -> list[Sample]:
    """``n`` samples of one speaker whose audio frames and eGeMAPS vectors sit at ``offset`` with spread ``scale``."""
    return [
        Sample(f"{speaker}-{i}", "words", "joy", dataset, "erc", "en", speaker=speaker,
               audio=(offset + scale * rng.standard_normal((frames, 3))).astype(np.float32),
               text_feats=rng.standard_normal((1, 4)).astype(np.float32),
               pooled={"egemaps": (offset + scale * rng.standard_normal((1, 2))).astype(np.float32),
                       "sentence": rng.standard_normal((1, 4)).astype(np.float32)})
        for i in range(n)
    ]


def stacked(samples, key):
    return np.concatenate([s.features(key) for s in samples]).astype(np.float64)


def test_each_speakers_audio_and_acoustic_sets_get_mean_0_std_1_and_the_words_stay_as_they_are():
    rng = np.random.default_rng(0)
    low, high = voice(rng, "ann", 12, 0.0, 1.0), voice(rng, "bob", 15, 500.0, 40.0)
    text_before = [s.text_feats.copy() for s in low + high]
    sentence_before = [s.pooled["sentence"].copy() for s in low + high]
    assert normalize_per_speaker(low + high) == {"a": 2}
    for group in (low, high):
        for key in ("audio", "pooled:egemaps"):
            x = stacked(group, key)
            np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
            np.testing.assert_allclose(x.std(0), 1.0, atol=1e-5)
            assert group[0].features(key).dtype == np.float32
    for s, t, p in zip(low + high, text_before, sentence_before):
        np.testing.assert_array_equal(s.text_feats, t)
        np.testing.assert_array_equal(s.pooled["sentence"], p)


def test_a_louder_recording_of_the_same_speaker_gives_the_same_inputs():
    # The point of it: a speaker's gain and offset (voice, microphone) no longer reach the model.
    rng = np.random.default_rng(1)
    quiet = voice(rng, "ann", 12, 2.0, 1.0)
    loud = [dataclasses.replace(s, audio=s.audio * 1000.0 + 7.0,
                                pooled={k: v * 1000.0 + 7.0 for k, v in s.pooled.items()}) for s in quiet]
    normalize_per_speaker(quiet)
    normalize_per_speaker(loud)
    for a, b in zip(quiet, loud):
        np.testing.assert_allclose(a.audio, b.audio, atol=1e-4)
        np.testing.assert_allclose(a.pooled["egemaps"], b.pooled["egemaps"], atol=1e-4)


def test_rare_and_unknown_speakers_are_normalised_as_one_group_per_dataset():
    rng = np.random.default_rng(2)
    rare = voice(rng, "cat", SPEAKER_MIN_SAMPLES - 1, 10.0, 2.0) + voice(rng, "dan", 3, -10.0, 2.0)
    nobody = [dataclasses.replace(s, speaker=None) for s in voice(rng, "x", 4, 0.0, 1.0)]
    regular = voice(rng, "eve", SPEAKER_MIN_SAMPLES, 100.0, 5.0)
    other = voice(rng, "cat", SPEAKER_MIN_SAMPLES, 50.0, 5.0, dataset="b")  # same name, another dataset
    assert normalize_per_speaker(rare + nobody + regular + other) == {"a": 2, "b": 1}
    together = stacked(rare + nobody, "audio")
    np.testing.assert_allclose(together.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(together.std(0), 1.0, atol=1e-5)
    assert abs(stacked(rare[:SPEAKER_MIN_SAMPLES - 1], "audio").mean()) > 0.5  # cat is not centred on its own
    for group in (regular, other):
        np.testing.assert_allclose(stacked(group, "audio").mean(0), 0.0, atol=1e-5)


def test_a_constant_dimension_is_centred_not_blown_up():
    samples = voice(np.random.default_rng(3), "ann", 12, 0.0, 1.0)
    for s in samples:
        s.audio[:, 1] = 2767.0
    normalize_per_speaker(samples)
    assert np.abs(stacked(samples, "audio")[:, 1]).max() < 1e-3


def test_training_data_are_normalised_per_split_only_when_asked(tiny_data, tmp_path):
    plain = config_from_dict(run_config_dict(tiny_data, tmp_path))
    on = dataclasses.replace(plain.data, speaker_normalization=True)
    before = load_training_data(plain.data, "dataset")
    after = load_training_data(on, "dataset")
    for split in ("train", "test"):
        raw = [s for s in before.split(split) if s.dataset == "mosei"]
        new = [s for s in after.split(split) if s.dataset == "mosei"]
        assert [s.id for s in raw] == [s.id for s in new]
        assert not np.allclose(stacked(raw, "audio").mean(0), 0.0, atol=1e-3)
        # The generated MOSEI samples carry no speaker: each split is one group, centred on its own frames.
        np.testing.assert_allclose(stacked(new, "audio").mean(0), 0.0, atol=1e-4)
        np.testing.assert_allclose(stacked(new, "audio").std(0), 1.0, atol=1e-3)
        np.testing.assert_array_equal(stacked(raw, "text"), stacked(new, "text"))


def test_predicting_one_clip_with_a_speaker_normalised_model_is_refused(tiny_data, tmp_path):
    from egmf.cli.media import sample_from_files

    cfg = config_from_dict(run_config_dict(tiny_data, tmp_path))
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, speaker_normalization=True))
    with pytest.raises(ConfigError, match="speaker_normalization.*one clip has none"):
        sample_from_files(cfg, {}, {}, audio=tmp_path / "clip.wav")
