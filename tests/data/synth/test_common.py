"""The helpers every synthetic writer shares (egmf.data.synth.common): split sizes, directions, class and
score features, label draws, cue texts."""

from __future__ import annotations

import numpy as np
import pytest

from egmf.data.schema import CHERMA_EMOTIONS, MELD_EMOTIONS
from egmf.data.synth import common as C


@pytest.mark.parametrize("n_train, expected", [(4, (4, 8, 8)), (24, (24, 8, 8)), (100, (100, 20, 30)), (1001, (1001, 200, 300))])
def test_split_sizes(n_train, expected):
    assert tuple(C.split_sizes(n_train).values()) == expected


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
