"""The datasets of a run config become one pool of samples per split, with the text features the model wants."""

from __future__ import annotations

import numpy as np
import pytest

from egmf.data.schema import Sample
from egmf.errors import ConfigError
from egmf.training.data import apply_text_source, load_training_data

from .conftest import make_config


def _sample(i: int) -> Sample:
    return Sample(id=f"s{i}", text=f"what a great day number {i}", label="joy", dataset="d", task="erc", lang="en",
                  text_feats=np.ones((3, 5), np.float32))


@pytest.mark.parametrize("source, shape", [("dataset", (3, 5)), ("none", None), ("llm", None), ("sentence", (1, 384))])
def test_apply_text_source(source, shape):
    samples = [_sample(0), _sample(1)]
    apply_text_source(samples, source)
    for s in samples:
        assert (None if s.text_feats is None else s.text_feats.shape) == shape
    if source == "sentence":
        assert not np.allclose(samples[0].text_feats, samples[1].text_feats)


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"en": "minilm", "zh": "multilingual-e5-small"}),
    ("multilingual-e5-small", {"en": "multilingual-e5-small", "zh": "multilingual-e5-small"}),
    ("minilm", {"en": "minilm", "zh": "minilm"}),
])
def test_sentence_vectors_come_from_the_encoder_of_each_samples_language(monkeypatch, choice, expected):
    import egmf.features.text as text

    calls = []

    def fake(texts, batch_size=64, encoder="minilm"):
        calls.append((encoder, list(texts)))
        return np.full((len(texts), 384), float(text.ENCODERS.index(encoder) + 1), np.float32)

    monkeypatch.setattr(text, "sentence_embeddings", fake)
    en = Sample(id="e", text="a great day", label="joy", dataset="meld", task="erc", lang="en")
    zh = Sample(id="z", text="今天真好", label="高兴", dataset="cherma", task="erc", lang="zh")
    assert apply_text_source([en, zh], "auto", choice) == ["meld", "cherma"]  # neither ships text features
    used = {s.lang: text.ENCODERS[int(s.text_feats[0, 0]) - 1] for s in (en, zh)}
    assert used == expected and all(s.text_feats.shape == (1, 384) for s in (en, zh))
    assert sorted(t for _, texts in calls for t in texts) == sorted(["a great day", "今天真好"])  # each text once


def test_two_datasets_pool_per_split_and_keep_their_dims(tiny_data, tmp_path):
    cfg = make_config(tiny_data, tmp_path)
    data = load_training_data(cfg.data)
    assert set(data.infos) == {"meld", "mosei"}
    assert {s.dataset for s in data.split("train")} == {"meld", "mosei"}
    assert data.feature_dims["mosei"] == {"text": 32, "audio": 12, "vision": 10}
    none = load_training_data(cfg.data, text_source="none")
    assert all(d["text"] == 0 for d in none.feature_dims.values())
    assert all(s.text_feats is None for s in none.split("test"))


def test_limits_and_truncation_apply(tiny_data, tmp_path):
    from egmf.config import DataConfig

    cfg = make_config(tiny_data, tmp_path)
    limited = DataConfig(cfg.data.datasets, max_frames={"audio": 5}, limit={"valid": 3})
    data = load_training_data(limited)
    assert len([s for s in data.split("valid") if s.dataset == "meld"]) == 3
    assert max(s.audio.shape[0] for s in data.split("train") if s.audio is not None) <= 5


def test_a_dataset_named_twice_is_refused(tiny_data, tmp_path):
    from egmf.config import DataConfig

    cfg = make_config(tiny_data, tmp_path)
    twice = DataConfig([cfg.data.datasets[0], cfg.data.datasets[0]])
    with pytest.raises(ConfigError, match="appears twice"):
        load_training_data(twice)


def test_training_refuses_nan_with_the_loaders_error_and_refuses_nan_keep(tmp_path):
    """egmf data inspect counts NaN (nan=keep); loading for training keeps refusing it, with the file named."""
    from egmf.config import DataConfig, DatasetEntry
    from egmf.data.synth import meld as synth_meld
    from egmf.errors import DataFormatError

    root = synth_meld.write(tmp_path / "meld", n_train=6, seed=1)
    audio = sorted((root / "features" / "train" / "audio").glob("*.npy"))[0]
    a = np.load(audio)
    a[0, 0] = np.nan
    np.save(audio, a)
    with pytest.raises(DataFormatError) as e:
        load_training_data(DataConfig([DatasetEntry("meld", str(root))]))
    assert e.value.file == str(audio) and "1 NaN" in str(e.value) and "nan='zero'" in str(e.value)
    with pytest.raises(ConfigError, match=r"data.datasets \(meld\).options: nan=keep .* valid choices here: error, zero"):
        load_training_data(DataConfig([DatasetEntry("meld", str(root), {"nan": "keep"})]))
    zeroed = load_training_data(DataConfig([DatasetEntry("meld", str(root), {"nan": "zero"})]))
    assert all(np.isfinite(s.audio).all() for s in zeroed.split("train") if s.audio is not None)


def test_splits_not_asked_for_come_back_empty_and_unencoded(tiny_data, tmp_path, monkeypatch):
    import egmf.features.text as text

    encoded = []

    def fake(texts, batch_size=64, encoder="minilm"):
        encoded.extend(texts)
        return np.zeros((len(texts), 384), np.float32)

    monkeypatch.setattr(text, "sentence_embeddings", fake)
    cfg = make_config(tiny_data, tmp_path)
    whole = load_training_data(cfg.data)
    data = load_training_data(cfg.data, text_source="sentence", splits=("test",))
    assert data.split("train") == [] and data.split("valid") == []
    assert [s.id for s in data.split("test")] == [s.id for s in whole.split("test")]
    assert sorted(encoded) == sorted(s.text for s in whole.split("test"))
    assert data.feature_dims["mosei"]["text"] == 384
    with pytest.raises(ConfigError, match="splits: invalid value 'dev'; valid choices: train, valid, test"):
        load_training_data(cfg.data, splits=("dev",))
    with pytest.raises(ConfigError, match="splits: invalid value 'none'"):
        load_training_data(cfg.data, splits=())
