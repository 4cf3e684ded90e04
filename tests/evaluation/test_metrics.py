"""Metrics against hand-computed golden values and an independent re-implementation of MMSA's formulas.

Run: .venv/bin/python -m pytest tests/evaluation -q
Every expected number below is derived by hand in the comments next to it.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from egmf.data.schema import DatasetInfo, Sample
from egmf.errors import ConfigError
from egmf.evaluation.metrics import (
    MOSI_KEYS,
    SIMS_KEYS,
    MetricWarning,
    compute_metrics,
    erc_metrics,
    is_improvement,
    main_metric,
    mosi_metrics,
    pearson,
    sims_bins,
    sims_metrics,
)

# Any warning (RuntimeWarning from a division, sklearn's UndefinedMetricWarning) fails a test here,
# except where a test expects one with pytest.warns.
pytestmark = pytest.mark.filterwarnings("error")

MOSI = DatasetInfo("mosei", "msa", "en", score_range=(-3.0, 3.0), metric_family="mosi")
SIMS = DatasetInfo("simsv2", "msa", "zh", score_range=(-1.0, 1.0), metric_family="sims")
MELD = DatasetInfo("meld", "erc", "en", labels=("neutral", "joy", "anger"), metric_family="erc")


# ------------------------------------------------------------------------------------------------ MOSI
def test_mosi_golden():
    pred = [2.6, -0.4, 0.0, 1.5, -2.5, 0.3]
    true = [3.0, 0.0, -1.0, 2.0, -2.6, -0.2]
    m = mosi_metrics(pred, true)
    assert list(m) == list(MOSI_KEYS)
    # has0: t>=0 = T T F T F F ; p>=0 = T F T T F T  -> agree at 0, 3, 4 -> 3/6
    assert m["acc2_has0"] == pytest.approx(0.5)
    # class True (support 3): TP 2 (0,3), FP 2 (2,5), FN 1 (1) -> F1 = 4/7
    # class False (support 3): TP 1 (4), FP 1 (1), FN 2 (2,5) -> F1 = 2/5 ; weighted = (4/7 + 2/5)/2 = 17/35
    assert m["f1_has0"] == pytest.approx(17 / 35)
    # non0 drops sample 1 (truth exactly 0). t>0 = T F T F F ; p>0 = T F(0.0 is not > 0) T F T -> 4/5
    assert m["acc2_non0"] == pytest.approx(0.8)
    # True (support 2): TP 2, FP 1, FN 0 -> 4/5 ; False (support 3): TP 2, FP 0, FN 1 -> 4/5 -> 0.8
    assert m["f1_non0"] == pytest.approx(0.8)
    # Acc-7: round(p) = 3 -0 0 2(1.5 half-even) -2(-2.5 half-even) 0 ; round(t) = 3 0 -1 2 -3 -0 -> 4/6
    assert m["acc7"] == pytest.approx(2 / 3)
    # Acc-5: clip [-2,2]: p 2 -0.4 0 1.5 -2 0.3 -> 2 -0 0 2 -2 0 ; t 2 0 -1 2 -2 -0.2 -> 2 0 -1 2 -2 -0 -> 5/6
    assert m["acc5"] == pytest.approx(5 / 6)
    # Acc-3: clip [-1,1]: p -> 1 -0 0 1 -1 0 ; t -> 1 0 -1 1 -1 -0 -> 5/6
    assert m["acc3"] == pytest.approx(5 / 6)
    # MAE: 0.4 + 0.4 + 1.0 + 0.5 + 0.1 + 0.5 = 2.9 over 6
    assert m["mae"] == pytest.approx(2.9 / 6)
    # Corr: mean p = 1.5/6 = 0.25, mean t = 1.2/6 = 0.2
    # dp = 2.35 -0.65 -0.25 1.25 -2.75 0.05 ; dt = 2.8 -0.2 -1.2 1.8 -2.8 -0.4
    # sum dp*dt = 6.58 + 0.13 + 0.3 + 2.25 + 7.7 - 0.02 = 16.94 ; sum dp^2 = 15.135 ; sum dt^2 = 20.56
    assert m["corr"] == pytest.approx(16.94 / math.sqrt(15.135 * 20.56))


@pytest.mark.parametrize(
    "pred, true, acc7",
    [
        (2.5, 2.0, 1.0),  # round half to even: 2.5 -> 2
        (2.5, 3.0, 0.0),  # ... so not 3 (round half up would say 3)
        (-0.5, 0.0, 1.0),  # -0.5 -> -0.0, which equals 0
        (0.5, 0.0, 1.0),  # 0.5 -> 0
        (1.5, 2.0, 1.0),  # 1.5 -> 2
        (-2.5, -2.0, 1.0),  # -2.5 -> -2
        (-1.5, -2.0, 1.0),  # -1.5 -> -2
        (3.7, 3.0, 1.0),  # clipped to 3 first
        (-9.0, -3.0, 1.0),  # clipped to -3 first
        (0.49, 1.0, 0.0),  # 0.49 -> 0
    ],
)
def test_acc7_bankers_rounding(pred, true, acc7):
    with warnings.catch_warnings():  # a lone truth of 0 leaves Non0 empty, which warns; not under test here
        warnings.simplefilter("ignore", MetricWarning)
        assert mosi_metrics([pred], [true])["acc7"] == acc7


@pytest.mark.parametrize(
    "pred, true, has0, non0",
    [
        (0.0, 0.0, 1.0, math.nan),  # truth 0: positive for has0, dropped for non0 (all dropped -> NaN)
        (0.0, 1.0, 1.0, 0.0),  # prediction 0: positive for has0 (>= 0), negative for non0 (> 0)
        (0.0, -1.0, 0.0, 1.0),
        (-0.1, 0.0, 0.0, math.nan),
    ],
)
def test_zero_in_has0_and_non0(pred, true, has0, non0):
    if true == 0.0:
        with pytest.warns(MetricWarning, match="exactly 0"):
            m = mosi_metrics([pred], [true])
    else:
        m = mosi_metrics([pred], [true])
    assert m["acc2_has0"] == has0
    if math.isnan(non0):
        assert math.isnan(m["acc2_non0"]) and math.isnan(m["f1_non0"])
    else:
        assert m["acc2_non0"] == non0


def test_all_zero_truth_non0_is_nan_with_one_warning():
    with pytest.warns(MetricWarning) as record:
        m = mosi_metrics([0.3, -0.2, 0.0], [0.0, 0.0, 0.0])
    assert len(record) == 1
    assert math.isnan(m["acc2_non0"]) and math.isnan(m["f1_non0"])
    assert m["acc2_has0"] == pytest.approx(2 / 3)  # p>=0 = T F T vs all T
    assert math.isnan(m["corr"])  # constant truth


# ------------------------------------------------------------------------------------------------ SIMS
@pytest.mark.parametrize(
    "value, b2, b3, b5",
    [
        (-1.0, 0, 0, 0),
        (-0.7, 0, 0, 0),  # [-1, -0.7] closed on the right
        (-0.69, 0, 0, 1),
        (-0.1, 0, 0, 1),  # Acc-3 [-1,-0.1] ; Acc-5 (-0.7,-0.1]
        (-0.09, 0, 1, 2),
        (0.0, 0, 1, 2),  # zero is negative for Acc-2
        (0.01, 1, 1, 2),
        (0.1, 1, 1, 2),  # (-0.1, 0.1]
        (0.11, 1, 2, 3),
        (0.7, 1, 2, 3),  # (0.1, 0.7]
        (0.71, 1, 2, 4),
        (1.0, 1, 2, 4),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sims_bin_edges(value, b2, b3, b5, dtype):
    v = np.array([value], dtype=dtype)
    assert (int(sims_bins(v, 2)[0]), int(sims_bins(v, 3)[0]), int(sims_bins(v, 5)[0])) == (b2, b3, b5)


def test_sims_golden():
    pred = [-0.7, -0.1, 0.0, 0.1, 0.7, 1.5]  # 1.5 is clipped to 1.0
    true = [-0.75, -0.05, 0.05, 0.15, 0.65, 0.9]
    m = sims_metrics(pred, true)
    assert list(m) == list(SIMS_KEYS)
    # bins2: p 0 0 0 1 1 1 ; t 0 0 1 1 1 1 -> 5/6
    assert m["acc2"] == pytest.approx(5 / 6)
    # bins3: p 0 0 1 1 2 2 ; t 0 1 1 2 2 2 -> 4/6
    assert m["acc3"] == pytest.approx(4 / 6)
    # bins5: p 0 1 2 2 3 4 ; t 0 2 2 3 3 4 -> 4/6
    assert m["acc5"] == pytest.approx(4 / 6)
    # F1 on bins2: class 0 (support 2) TP 2 FP 1 FN 0 -> 4/5 ; class 1 (support 4) TP 3 FP 0 FN 1 -> 6/7
    # weighted = (2 * 4/5 + 4 * 6/7) / 6 = 35.2 / 42
    assert m["f1"] == pytest.approx(35.2 / 42)
    # MAE on clipped values: 0.05 * 5 + |1.0 - 0.9| = 0.35 over 6 (unclipped would be 0.85 / 6)
    assert m["mae"] == pytest.approx(0.35 / 6)


def test_sims_corr_on_clipped_values():
    # clipped p = -1 0 1, t = -1 1 0: dp = -1 0 1, dt = -1 1 0 -> cov 1, var 2 and 2 -> r = 0.5
    # (unclipped p = -5 0 1 would give 5 / sqrt(22 * 2) = 0.754)
    assert sims_metrics([-5.0, 0.0, 1.0], [-1.0, 1.0, 0.0])["corr"] == pytest.approx(0.5)


def test_sims_float32_edges_compare_in_float32_as_mmsa():
    # float32(0.1) = 0.10000000149; MMSA compares float32 tensors with float32 edges, so it stays in
    # (-0.1, 0.1] next to 0.05. In float64 it would move to (0.1, 1] and Acc-3 would read 0.
    m = sims_metrics(np.float32([0.1]), np.float32([0.05]))
    assert m["acc3"] == 1.0 and m["acc5"] == 1.0


# ------------------------------------------------------------------------------------------------- Corr
@pytest.mark.parametrize(
    "x, y, r",
    [
        ([1, 2, 3], [1, 3, 2], 0.5),  # dx -1 0 1, dy -1 1 0: cov 1 / sqrt(2 * 2)
        ([1, 2, 3, 4], [2, 1, 4, 3], 0.6),  # cov 3 / sqrt(5 * 5)
        ([0, 1, 2], [2, 0, -2], -1.0),
        ([1, 1, 1], [1, 2, 3], math.nan),  # constant prediction
        ([1, 2, 3], [4, 4, 4], math.nan),  # constant truth
        ([1.0], [2.0], math.nan),  # one sample
    ],
)
def test_pearson(x, y, r):
    got = pearson(np.array(x, float), np.array(y, float))
    assert math.isnan(got) if math.isnan(r) else got == pytest.approx(r)


# -------------------------------------------------------------------------------------- edge-case table
@pytest.mark.parametrize("fn", [mosi_metrics, sims_metrics])
@pytest.mark.parametrize(
    "pred, true, match",
    [
        ([], [], "empty"),
        ([0.1, 0.2, 0.3], [0.1, 0.2], "predictions has 3 values but truths has 2"),
        ([0.1], [0.1, 0.2], "predictions has 1 values but truths has 2"),
        ([math.nan, 0.2], [0.1, 0.2], "predictions: 1 of 2 values are NaN or infinite"),
        ([0.1, 0.2], [0.1, math.inf], "truths: 1 of 2 values are NaN or infinite"),
        ([[0.1, 0.2]], [0.1], r"1-D array of scores, got shape \(1, 2\)"),
        (["a", "b"], [0.1, 0.2], "numeric scores"),
    ],
)
def test_msa_bad_input(fn, pred, true, match):
    with pytest.raises(ValueError, match=match):
        fn(pred, true)


@pytest.mark.parametrize("fn", [mosi_metrics, sims_metrics])
@pytest.mark.parametrize(
    "pred, true, expect",
    [
        # constant predictions: corr NaN (no warning), the rest defined
        ([0.5, 0.5, 0.5, 0.5], [0.2, -0.4, 0.6, 0.8], {"corr": math.nan, "mae": (0.3 + 0.9 + 0.1 + 0.3) / 4}),
        # one class everywhere, all right: Acc-2 and F1 are 1
        ([0.3, 0.6], [0.2, 0.8], {"f1": 1.0, "acc2": 1.0}),
        # one class in truth, the other predicted: Acc-2 and F1 are 0 (no UndefinedMetricWarning)
        ([-0.3, -0.6], [0.2, 0.8], {"f1": 0.0, "acc2": 0.0}),
    ],
)
def test_msa_edge_values(fn, pred, true, expect):
    m = fn(pred, true)
    for key, value in expect.items():
        keys = [key] if key in m else [k for k in m if k.startswith(key)]  # mosi: acc2_has0/non0, f1_*
        for k in keys:
            assert math.isnan(m[k]) if math.isnan(value) else m[k] == pytest.approx(value), k


def test_column_vector_accepted():
    a = np.array([[0.5], [-0.5]])
    assert mosi_metrics(a, a)["acc2_has0"] == 1.0


# -------------------------------------------------------------------------------------------------- ERC
def test_erc_golden():
    labels = ["neutral", "joy", "anger", "fear"]
    true = ["neutral", "neutral", "neutral", "joy", "joy", "anger"]
    pred = ["neutral", "joy", "neutral", "joy", "anger", "anger"]
    m = erc_metrics(pred, true, labels)
    assert m["accuracy"] == pytest.approx(4 / 6)  # right at 0, 2, 3, 5
    # neutral TP 2 FP 0 FN 1 -> 4/5 ; joy TP 1 FP 1 FN 1 -> 1/2 ; anger TP 1 FP 1 FN 0 -> 2/3 ; fear absent -> 0
    assert m["f1_per_class"] == pytest.approx({"neutral": 0.8, "joy": 0.5, "anger": 2 / 3, "fear": 0.0})
    # weighted by support 3, 2, 1, 0: (3 * 4/5 + 2 * 1/2 + 1 * 2/3) / 6 = 61/90
    assert m["weighted_f1"] == pytest.approx(61 / 90)
    # macro over the labels seen (fear never occurs): (4/5 + 1/2 + 2/3) / 3 = 59/90
    assert m["macro_f1"] == pytest.approx(59 / 90)
    assert m["confusion_matrix"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert m["support"] == {"neutral": 3, "joy": 2, "anger": 1, "fear": 0}


def test_erc_single_class_and_chinese_labels():
    m = erc_metrics(["高兴", "高兴"], ["高兴", "高兴"], ["愤怒", "高兴"])
    assert (m["accuracy"], m["weighted_f1"], m["macro_f1"]) == (1.0, 1.0, 1.0)
    assert m["confusion_matrix"] == [[0, 0], [0, 2]]


@pytest.mark.parametrize(
    "pred, true, labels, match",
    [
        (["joy", "sad"], ["joy", "joy"], ["joy", "anger"], r"predictions: labels \['sad'\] are not in the label set"),
        (["joy"], ["happy"], ["joy", "anger"], r"truths: labels \['happy'\] are not in the label set"),
        (["joy"], ["joy", "joy"], ["joy"], "predictions has 1 values but truths has 2"),
        ([], [], ["joy"], "empty"),
        (["joy"], ["joy"], [], "at least one label"),
        (["joy"], ["joy"], ["joy", "joy"], "duplicates"),
    ],
)
def test_erc_bad_input(pred, true, labels, match):
    with pytest.raises(ValueError, match=match):
        erc_metrics(pred, true, labels)


# ---------------------------------------------------------------------------------- dispatch, selection
def test_compute_metrics_dispatch_and_objects():
    from egmf.model.base import Prediction

    preds = [Prediction(id=str(i), dataset="meld", task="erc", prediction=p) for i, p in enumerate(["joy", "anger"])]
    truths = [Sample(id=str(i), text="", label=t, dataset="meld", task="erc", lang="en") for i, t in enumerate(["joy", "joy"])]
    m = compute_metrics(MELD, preds, truths)
    assert m["accuracy"] == 0.5 and m["confusion_matrix"] == [[0, 0, 0], [0, 1, 1], [0, 0, 0]]
    assert set(compute_metrics(MOSI, [0.5], [1.0])) == set(MOSI_KEYS)
    assert set(compute_metrics(SIMS, [0.5], [1.0])) == set(SIMS_KEYS)
    bad = DatasetInfo("x", "msa", "en", score_range=(-1.0, 1.0), metric_family="mosii")
    with pytest.raises(ConfigError, match=r"mosii.*valid choices: \['erc', 'mosi', 'sims'\]"):
        compute_metrics(bad, [0.1], [0.1])


def test_main_metric():
    assert main_metric(MELD) == ("weighted_f1", "max")
    assert main_metric(MOSI) == ("mae", "min")
    assert main_metric(SIMS) == ("mae", "min")
    assert main_metric(MOSI, "acc2_non0") == ("acc2_non0", "max")
    assert main_metric("sims", "mae") == ("mae", "min")
    with pytest.raises(ConfigError, match="valid choices: .*'acc2_has0'"):
        main_metric(MOSI, "weighted_f1")


@pytest.mark.parametrize(
    "value, best, mode, expected",
    [
        (0.5, None, "max", True),
        (0.6, 0.5, "max", True),
        (0.5, 0.5, "max", False),  # a tie keeps the earlier checkpoint
        (0.4, 0.5, "min", True),
        (0.6, 0.5, "min", False),
        (math.nan, 0.5, "max", False),
        (math.nan, None, "min", False),
        (0.1, math.nan, "min", True),
    ],
)
def test_is_improvement(value, best, mode, expected):
    assert is_improvement(value, best, mode) is expected


# ------------------------------------------------------------- cross-check: MMSA's formulas, re-written
def _mmsa_mosei(test_preds, test_truth):
    """MMSA __eval_mosei_regression, transcribed (without its 4-decimal rounding)."""

    def multiclass_acc(y_pred, y_true):
        return np.sum(np.round(y_pred) == np.round(y_true)) / float(len(y_true))

    res = {}
    for name, b in (("acc7", 3.0), ("acc5", 2.0), ("acc3", 1.0)):
        res[name] = multiclass_acc(np.clip(test_preds, -b, b), np.clip(test_truth, -b, b))
    res["mae"] = np.mean(np.absolute(test_preds - test_truth))
    res["corr"] = np.corrcoef(test_preds, test_truth)[0][1]
    non_zeros = np.array([i for i, e in enumerate(test_truth) if e != 0])
    nzt, nzp = test_truth[non_zeros] > 0, test_preds[non_zeros] > 0
    res["acc2_non0"] = accuracy_score(nzp, nzt)
    res["f1_non0"] = f1_score(nzt, nzp, average="weighted")
    res["acc2_has0"] = accuracy_score(test_preds >= 0, test_truth >= 0)
    res["f1_has0"] = f1_score(test_truth >= 0, test_preds >= 0, average="weighted")
    return res


def _mmsa_sims(test_preds, test_truth):
    """MMSA __eval_sims_regression, transcribed."""
    test_preds = np.clip(test_preds, a_min=-1.0, a_max=1.0)
    test_truth = np.clip(test_truth, a_min=-1.0, a_max=1.0)
    res = {}
    binned = {}
    for n, ms in ((2, [-1.01, 0.0, 1.01]), (3, [-1.01, -0.1, 0.1, 1.01]), (5, [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01])):
        p, t = test_preds.copy(), test_truth.copy()
        for i in range(n):
            p[np.logical_and(test_preds > ms[i], test_preds <= ms[i + 1])] = i
        for i in range(n):
            t[np.logical_and(test_truth > ms[i], test_truth <= ms[i + 1])] = i
        binned[n] = (p, t)
        res[f"acc{n}"] = np.sum(np.round(p) == np.round(t)) / float(len(t))
    res["f1"] = f1_score(binned[2][1], binned[2][0], average="weighted")
    res["mae"] = np.mean(np.absolute(test_preds - test_truth))
    res["corr"] = np.corrcoef(test_preds, test_truth)[0][1]
    return res


@pytest.mark.parametrize("seed", range(6))
def test_cross_check_against_mmsa(seed):
    rng = np.random.default_rng(seed)
    n = 200
    # MOSI-like: truths on MMSA's grid (multiples of 1/3 and 1/2, many exact zeros and halves), float32
    # like MMSA's tensors; predictions continuous, with some snapped onto halves to exercise rounding.
    truth = np.float32(np.where(rng.random(n) < 0.5, rng.integers(-9, 10, n) / 3, rng.integers(-6, 7, n) / 2))
    pred = rng.normal(0, 1.6, n)
    snap = rng.random(n) < 0.3
    pred[snap] = rng.integers(-8, 9, snap.sum()) / 2
    pred = np.float32(pred)
    ours, ref = mosi_metrics(pred, truth), _mmsa_mosei(pred, truth)
    for k in MOSI_KEYS:
        assert ours[k] == pytest.approx(float(ref[k]), rel=1e-5, abs=1e-6), k
    # SIMS-like: truths on a 0.1 grid in float32 (hits every bin edge), predictions beyond the range too.
    truth = np.float32(rng.integers(-10, 11, n) / 10)
    pred = rng.uniform(-1.3, 1.3, n)
    pred[snap] = rng.choice([-0.7, -0.1, 0.0, 0.1, 0.7], snap.sum())
    pred = np.float32(pred)
    ours, ref = sims_metrics(pred, truth), _mmsa_sims(pred, truth)
    for k in SIMS_KEYS:
        assert ours[k] == pytest.approx(float(ref[k]), rel=1e-5, abs=1e-6), k
