"""The held-out draw of whole dialogues: closest to the target among seeded draws, reproducible, never a split
dialogue, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from egmf.data.heldout import draw_dialogues, label_distribution, total_variation
from egmf.errors import ConfigError


def _dialogues(n: int = 200, seed: int = 0) -> dict[str, list[str]]:
    """Dialogues of 2-12 utterances; half lean 'neutral', half 'joy', a few hold 'disgust'."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        p = [0.8, 0.15, 0.05] if i % 2 else [0.2, 0.75, 0.05]
        out[f"d{i}"] = list(rng.choice(["neutral", "joy", "disgust"], size=int(rng.integers(2, 13)), p=p))
    return out


def test_label_distribution_and_total_variation():
    assert label_distribution(["a", "b", "a", "a"]) == {"a": 0.75, "b": 0.25}
    assert total_variation({"a": 0.75, "b": 0.25}, {"a": 0.5, "c": 0.5}) == pytest.approx(0.5)
    assert total_variation({"a": 1.0}, {"a": 1.0}) == 0.0


def test_the_draw_is_whole_dialogues_close_to_the_target_and_reproducible():
    dialogues = _dialogues()
    target = {"neutral": 0.5, "joy": 0.45, "disgust": 0.05}
    drawn = draw_dialogues(dialogues, 20, target, seed=3)
    assert len(drawn.dialogues) == 20 and set(drawn.dialogues) <= set(dialogues)
    labels = [lab for d in drawn.dialogues for lab in dialogues[d]]  # every utterance of each chosen dialogue
    assert drawn.counts == {lab: labels.count(lab) for lab in ("disgust", "joy", "neutral")}
    assert drawn.distance == pytest.approx(total_variation(label_distribution(labels), target))
    assert draw_dialogues(dialogues, 20, target, seed=3) == drawn
    # The best of many draws is at least as close as a single draw of the same seed stream (its first draw).
    single = draw_dialogues(dialogues, 20, target, seed=3, draws=1)
    assert drawn.distance <= single.distance
    assert drawn.distance < 0.03


def test_a_target_label_no_dialogue_has_counts_as_missing():
    drawn = draw_dialogues({"a": ["x"], "b": ["y"]}, 1, {"x": 0.5, "z": 0.5}, draws=50)
    assert drawn.dialogues == ("a",) and drawn.distance == pytest.approx(0.5) and drawn.counts["z"] == 0


@pytest.mark.parametrize("n,draws,message", [(0, 10, "n_dialogues must be in \\[1, 2\\]"),
                                             (3, 10, "n_dialogues must be in \\[1, 2\\]"),
                                             (1, 0, "draws must be >= 1")])
def test_bad_sizes_are_refused(n, draws, message):
    with pytest.raises(ConfigError, match=message):
        draw_dialogues({"a": ["x"], "b": ["y"]}, n, {"x": 1.0}, draws=draws)
