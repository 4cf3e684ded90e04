"""``write_synthetic`` (egmf.data.synth) over every writer: the generated MELD, CHERMA and custom data carry a
learnable but imperfect signal in every modality, and fusing modalities beats any single one; the writers
are deterministic and refuse what they do not know.

Each signal check trains a linear probe (scikit-learn) on the generated train split and scores the generated
test split against the majority-class (or mean-score) baseline.

Run: .venv/bin/python -m pytest tests/data/synth -q
(``EGMF_SIGNAL_SEED=k`` reruns the probes on data generated with seed k; the defaults hold for seeds 0-5.)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge

from egmf.data.cherma import load_cherma
from egmf.data.custom import load_custom
from egmf.data.meld import load_meld
from egmf.data.schema import MODALITIES
from egmf.data.synth import write_synthetic


N_TRAIN = 150  # test split: 45
SEED = int(__import__("os").environ.get("EGMF_SIGNAL_SEED", "0"))

FORMATS = {
    "meld": (lambda out: load_meld(write_synthetic("meld", out, N_TRAIN, seed=SEED))),
    "cherma": (lambda out: load_cherma(write_synthetic("cherma", out, N_TRAIN, seed=SEED))),
    "custom_erc_zh": (lambda out: load_custom(write_synthetic("custom", out, N_TRAIN, seed=SEED, task="erc", lang="zh"))),
    "custom_msa_en": (lambda out: load_custom(write_synthetic("custom", out, N_TRAIN, seed=SEED, task="msa", lang="en"))),
}


@pytest.fixture(scope="module", params=list(FORMATS))
def dataset(request, tmp_path_factory):
    return FORMATS[request.param](tmp_path_factory.mktemp(request.param))


def pooled(samples, modality: str) -> np.ndarray:
    return np.stack([s.features(modality).mean(axis=0) for s in samples])


def text_vectorizer(lang: str) -> TfidfVectorizer:
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 2)) if lang == "zh" else TfidfVectorizer()


def test_every_modality_beats_the_baseline_and_fusion_beats_each(dataset):
    train, test = dataset.splits["train"], dataset.splits["test"]
    y_train = [s.label for s in train]
    y_test = np.asarray([s.label for s in test])
    assert len(test) == 45
    singles = {}
    if dataset.info.task == "erc":
        majority = float(np.mean(y_test == Counter(y_train).most_common(1)[0][0]))
        for m in MODALITIES:
            singles[m] = LogisticRegression(max_iter=2000).fit(pooled(train, m), y_train).score(pooled(test, m), y_test)
        vec = text_vectorizer(dataset.info.lang)
        raw_text = LogisticRegression(max_iter=2000).fit(vec.fit_transform([s.text for s in train]), y_train)
        singles["raw text"] = raw_text.score(vec.transform([s.text for s in test]), y_test)
        fused_x = [np.hstack([pooled(part, m) for m in MODALITIES]) for part in (train, test)]
        fused = LogisticRegression(max_iter=2000).fit(fused_x[0], y_train).score(fused_x[1], y_test)
        for name, acc in singles.items():
            assert acc >= majority + 0.1, (name, acc, majority)
            assert acc < 0.9, f"{name} alone is near perfect ({acc}); the signal must need fusion"
        assert fused > max(singles[m] for m in MODALITIES), (fused, singles)
    else:
        baseline = float(np.abs(y_test - np.mean(y_train)).mean())
        for m in MODALITIES:
            pred = Ridge().fit(pooled(train, m), y_train).predict(pooled(test, m))
            singles[m] = float(np.abs(pred - y_test).mean())
            assert singles[m] < 0.9 * baseline, (m, singles[m], baseline)
            assert np.corrcoef(pred, y_test)[0, 1] > 0.3


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_msa_text_carries_the_polarity(tmp_path, lang):
    """A cue word gives only the polarity, so this probe needs more rows (CSV only, which is fast)."""
    data = load_custom(write_synthetic("custom", tmp_path / "t", 600, seed=SEED, task="msa", lang=lang, features=False))
    train, test = data.splits["train"], data.splits["test"]
    y_train, y_test = np.asarray([s.label for s in train]), np.asarray([s.label for s in test])
    vec = text_vectorizer(lang)
    x_train, x_test = vec.fit_transform([s.text for s in train]), vec.transform([s.text for s in test])
    acc2 = LogisticRegression(max_iter=2000).fit(x_train, y_train > 0).score(x_test, y_test > 0)
    majority = max(np.mean(y_test > 0), np.mean(y_test <= 0))
    assert majority + 0.1 < acc2 < 0.95, (acc2, majority)
    assert np.corrcoef(Ridge().fit(x_train, y_train).predict(x_test), y_test)[0, 1] > 0.25


def test_every_label_appears_in_train(dataset):
    if dataset.info.task == "erc":
        assert set(s.label for s in dataset.splits["train"]) == set(dataset.info.labels)


@pytest.mark.parametrize("fmt, main_file", [("meld", "train_sent_emo.csv"), ("cherma", "train.json"), ("custom", "data.csv")])
def test_same_seed_same_files(tmp_path, fmt, main_file):
    a = write_synthetic(fmt, tmp_path / "a", 10, seed=4)
    b = write_synthetic(fmt, tmp_path / "b", 10, seed=4)
    c = write_synthetic(fmt, tmp_path / "c", 10, seed=5)
    assert (a / main_file).read_bytes() == (b / main_file).read_bytes() != (c / main_file).read_bytes()
    npys = sorted(p.relative_to(a) for p in a.rglob("*.npy"))
    assert npys and npys == sorted(p.relative_to(b) for p in b.rglob("*.npy"))
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in npys[:20])


def test_csv_only_options(tmp_path):
    meld = load_meld(write_synthetic("meld", tmp_path / "m", 10, seed=1, features=False))
    assert meld.feature_dims() == {"text": 0, "audio": 0, "vision": 0}
    custom = load_custom(write_synthetic("custom", tmp_path / "c", 10, seed=1, features=False, yaml_file=False))
    assert custom.feature_dims() == {"text": 0, "audio": 0, "vision": 0} and custom.info.name == "custom"


def test_write_synthetic_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="valid choices: mmsa, meld, cherma, custom"):
        write_synthetic("iemocap", tmp_path, 10)


def test_writers_reject_unknown_modalities(tmp_path):
    with pytest.raises(ValueError, match="unknown modalities"):
        write_synthetic("meld", tmp_path / "m", 10, dims={"depth": 3})
    with pytest.raises(ValueError, match="unknown modalities"):
        write_synthetic("cherma", tmp_path / "c", 10, shapes={"depth": (1, 2)})
    with pytest.raises(ValueError, match="unknown modalities"):
        write_synthetic("custom", tmp_path / "u", 10, dims={"depth": 3})


def test_paths_are_returned(tmp_path):
    out = write_synthetic("custom", tmp_path / "x", 10, seed=0)
    assert isinstance(out, Path) and (out / "dataset.yaml").is_file()
