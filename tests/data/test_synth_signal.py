"""The generated MELD, CHERMA and custom data carry a learnable but imperfect signal in every modality,
and fusing modalities beats any single one; plus the shared helpers in ``egmf.data.synth.common``.

Each check trains a linear probe (scikit-learn) on the generated train split and scores the generated
test split against the majority-class (or mean-score) baseline.

Run: .venv/bin/python -m pytest tests/data/test_synth_signal.py -q
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
from egmf.data.schema import CHERMA_EMOTIONS, MELD_EMOTIONS, MODALITIES
from egmf.data.synth import common as C
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


# ---- the writers are deterministic and sized as documented -----------------------------------------
@pytest.mark.parametrize("fmt, main_file", [("meld", "train_sent_emo.csv"), ("cherma", "train.json"), ("custom", "data.csv")])
def test_same_seed_same_files(tmp_path, fmt, main_file):
    a = write_synthetic(fmt, tmp_path / "a", 10, seed=4)
    b = write_synthetic(fmt, tmp_path / "b", 10, seed=4)
    c = write_synthetic(fmt, tmp_path / "c", 10, seed=5)
    assert (a / main_file).read_bytes() == (b / main_file).read_bytes() != (c / main_file).read_bytes()
    npys = sorted(p.relative_to(a) for p in a.rglob("*.npy"))
    assert npys and npys == sorted(p.relative_to(b) for p in b.rglob("*.npy"))
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in npys[:20])


@pytest.mark.parametrize("n_train, expected", [(4, (4, 8, 8)), (24, (24, 8, 8)), (100, (100, 20, 30)), (1001, (1001, 200, 300))])
def test_split_sizes(n_train, expected):
    assert tuple(C.split_sizes(n_train).values()) == expected


def test_meld_writer_dialogues_and_dims(tmp_path):
    data = load_meld(write_synthetic("meld", tmp_path / "m", 30, seed=1, dims={"audio": 300}))
    assert data.feature_dims() == {"text": 48, "audio": 300, "vision": 24}
    dialogues = Counter(s.id.split("_utt")[0] for s in data.splits["train"])
    assert len(dialogues) >= 4 and max(dialogues.values()) >= 3
    speakers = {s.id.split("_utt")[0]: set() for s in data.splits["train"]}
    for s in data.splits["train"]:
        speakers[s.id.split("_utt")[0]].add(s.speaker)
    assert max(len(v) for v in speakers.values()) >= 2


def test_csv_only_options(tmp_path):
    meld = load_meld(write_synthetic("meld", tmp_path / "m", 10, seed=1, features=False))
    assert meld.feature_dims() == {"text": 0, "audio": 0, "vision": 0}
    custom = load_custom(write_synthetic("custom", tmp_path / "c", 10, seed=1, features=False, yaml_file=False))
    assert custom.feature_dims() == {"text": 0, "audio": 0, "vision": 0} and custom.info.name == "custom"


# ---- shared helpers ---------------------------------------------------------------------------------
def test_directions_are_fixed_orthonormal_and_differ_by_salt():
    d = C.directions(7, 32, salt=1)
    np.testing.assert_allclose(d @ d.T, np.eye(7), atol=1e-10)
    np.testing.assert_array_equal(d, C.directions(7, 32, salt=1))
    assert np.abs(d - C.directions(7, 32, salt=2)).max() > 0.1
    few = C.directions(7, 3)  # fewer dims than classes: unit vectors, not orthogonal
    np.testing.assert_allclose(np.linalg.norm(few, axis=1), 1.0)


def test_class_features_shapes_and_signal():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 200)
    arrays = C.class_features(rng, y, 3, [5] * 600, dim=8, strength=3.0, salt=9)
    assert all(a.shape == (5, 8) and a.dtype == np.float32 for a in arrays)
    means = np.stack([a.mean(0) for a in arrays])
    dirs = C.directions(3, 8, 9)
    proj = means @ dirs.T  # each class's mean projection on its own direction is about ``strength``
    for k in range(3):
        assert abs(proj[y == k, k].mean() - 3.0) < 0.3
        assert abs(proj[y != k, k].mean()) < 0.3
    with pytest.raises(ValueError, match="class_idx"):
        C.class_features(rng, np.array([3]), 3, [2], 4)
    with pytest.raises(ValueError, match="T_lengths"):
        C.class_features(rng, np.array([0, 1]), 3, [2], 4)


def test_score_features_follow_the_score():
    rng = np.random.default_rng(0)
    scores = np.linspace(-1, 1, 400)
    arrays = C.score_features(rng, scores, -1, 1, C.draw_lengths(rng, 400, 2, 6), dim=6, strength=2.0, salt=3)
    proj = np.stack([a.mean(0) for a in arrays]) @ C.directions(2, 6, 3)[0]
    assert np.corrcoef(proj, scores)[0, 1] > 0.7


def test_draw_classes_covers_every_class_and_is_skewed():
    y = C.draw_classes(np.random.default_rng(0), 7000, 7, skew=0.5)
    counts = np.bincount(y, minlength=7)
    assert counts.min() > 0 and counts[0] == counts.max() and counts[0] > 2 * counts[6]
    assert set(C.draw_classes(np.random.default_rng(1), 7, 7)) == set(range(7))


@pytest.mark.parametrize("lang, labels", [("en", MELD_EMOTIONS), ("zh", CHERMA_EMOTIONS)])
def test_cue_text_carries_the_label_with_the_given_probability(lang, labels):
    rng = np.random.default_rng(0)
    table = C.CUES_ZH if lang == "zh" else C.CUES_EN

    def names(text: str, label: str) -> bool:
        return any(w in text for w in table[C.canonical(label)])

    truthful = [names(C.cue_text(rng, labels[1], lang, 1.0, labels=labels), labels[1]) for _ in range(50)]
    assert all(truthful)
    lying = [names(C.cue_text(rng, labels[1], lang, 0.0, labels=labels), labels[1]) for _ in range(50)]
    assert not any(lying)
    mixed = np.mean([names(C.cue_text(rng, labels[1], lang, 0.7, labels=labels), labels[1]) for _ in range(400)])
    assert 0.6 < mixed < 0.8


def test_cue_text_for_scores_and_custom_labels():
    rng = np.random.default_rng(0)
    pos = [C.cue_text(rng, 2.5, "en", 1.0) for _ in range(20)]
    neg = [C.cue_text(rng, -2.5, "en", 1.0) for _ in range(20)]
    assert all(any(w in t for w in C.CUES_EN["positive"]) for t in pos)
    assert all(any(w in t for w in C.CUES_EN["negative"]) for t in neg)
    assert all("extremely" in t for t in pos)
    assert any(w in C.cue_text(rng, 0.0, "zh", 1.0, score_range=(-1, 1)) for w in C.CUES_ZH["neutral"])
    assert "bored" in C.cue_text(rng, "bored", "en", 1.0, labels=["bored", "keen"])
    with pytest.raises(ValueError, match="strength"):
        C.cue_text(rng, "joy", "en", 1.5)


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
