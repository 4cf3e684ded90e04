"""Each plot writes a non-empty PNG, without a display and without warnings (Chinese labels included)."""

from __future__ import annotations

import numpy as np
import pytest

from egmf.data.schema import CHERMA_EMOTIONS, CHERMA_GLOSS, MELD_EMOTIONS
from egmf.evaluation.plots import gate_means, normalize_rows, plot_confusion_matrix, plot_gate_weights, plot_scores

pytestmark = pytest.mark.filterwarnings("error")  # a missing CJK glyph or a 0/0 must not warn

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 1000


def test_normalize_rows_keeps_empty_rows_zero():
    # row 0: 3 / 4 and 1 / 4 ; row 1 has no samples -> zeros, not NaN
    assert normalize_rows([[3, 1], [0, 0]]).tolist() == [[0.75, 0.25], [0.0, 0.0]]


@pytest.mark.parametrize("labels, gloss", [(MELD_EMOTIONS, None), (CHERMA_EMOTIONS, None),
                                           (CHERMA_EMOTIONS, dict(zip(CHERMA_EMOTIONS, CHERMA_GLOSS)))])
@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_matrix_png(tmp_path, labels, gloss, normalize):
    cm = np.zeros((7, 7), int)
    cm[0, 0], cm[0, 1], cm[2, 2] = 5, 2, 3  # other rows empty
    path = plot_confusion_matrix(cm, labels, tmp_path / "sub" / "cm.png", normalize=normalize, gloss=gloss)
    assert _is_png(path)


def test_confusion_matrix_shape_mismatch(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(2, 2\) does not match 3 labels"):
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b", "c"], tmp_path / "cm.png")


def test_scores_png(tmp_path):
    rng = np.random.default_rng(0)
    true = rng.uniform(-3, 3, 50)
    path = plot_scores(true + rng.normal(0, 0.5, 50), true, tmp_path / "scores.png", (-3.0, 3.0))
    assert _is_png(path)
    with pytest.raises(ValueError, match="predictions has 2 values but truths has 1"):
        plot_scores([0.1, 0.2], [0.1], tmp_path / "x.png", (-1.0, 1.0))
    with pytest.raises(ValueError, match="low < high"):
        plot_scores([0.1], [0.1], tmp_path / "x.png", (1.0, -1.0))


def test_gate_means_by_group():
    gates = {"expert": np.array([[0.2, 0.8], [0.4, 0.6], [1.0, 0.0]])}
    means = gate_means(gates, ["joy", "joy", "anger"])
    assert list(means["expert"]) == ["joy", "anger"]
    assert means["expert"]["joy"].tolist() == pytest.approx([0.3, 0.7])  # (0.2+0.4)/2, (0.8+0.6)/2
    assert means["expert"]["anger"].tolist() == pytest.approx([1.0, 0.0])
    assert gate_means(gates)["expert"]["all"].tolist() == pytest.approx([1.6 / 3, 1.4 / 3])


def test_gate_weights_png(tmp_path):
    rng = np.random.default_rng(1)
    n = 40
    gates = {f"modality.{e}": rng.dirichlet([1, 1, 1], n) for e in ("local", "semantic", "global")}
    gates["expert"] = rng.dirichlet([1, 1, 1], n)
    names = {"expert": ["local", "semantic", "global"], **{k: ["text", "audio", "vision"] for k in gates if k != "expert"}}
    groups = [CHERMA_EMOTIONS[i % 7] for i in range(n)]
    path = plot_gate_weights(gates, names, groups, tmp_path / "gates.png", group_order=list(CHERMA_EMOTIONS))
    assert _is_png(path)
    assert _is_png(plot_gate_weights({"expert": gates["expert"]}, {}, None, tmp_path / "one.png"))


@pytest.mark.parametrize(
    "gates, names, groups, match",
    [
        ({"expert": np.ones((3, 2))}, {"expert": ["a", "b", "c"]}, None, "2 components but names"),
        ({"expert": np.ones((3, 2))}, {}, ["x", "y"], "3 samples but group_labels has 2"),
        ({"expert": np.ones(3)}, {}, None, r"\[N, n\] array, got shape \(3,\)"),
        ({}, {}, None, "no gates"),
    ],
)
def test_gate_weights_bad_input(tmp_path, gates, names, groups, match):
    with pytest.raises(ValueError, match=match):
        plot_gate_weights(gates, names, groups, tmp_path / "g.png")
