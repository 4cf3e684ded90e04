"""Seed aggregation (population std, as MMSA), the results CSV layout, and the console table."""

from __future__ import annotations

import csv
import math

import pandas as pd
import pytest

from egmf.evaluation.aggregate import (
    aggregate_seeds,
    flatten_metrics,
    format_cell,
    format_table,
    is_percent,
    results_table,
    to_markdown,
    write_results_csv,
)

pytestmark = pytest.mark.filterwarnings("error")


def test_aggregate_population_std():
    res = aggregate_seeds([{"acc": 0.8, "mae": 0.5}, {"acc": 0.6, "mae": 0.5}, {"acc": 0.7, "mae": 0.5}])
    assert list(res) == ["acc", "mae"]
    assert res["acc"]["mean"] == pytest.approx(0.7)
    # deviations 0.1, -0.1, 0 -> population variance 0.02 / 3 (the sample std would be 0.1)
    assert res["acc"]["std"] == pytest.approx(math.sqrt(0.02 / 3))
    assert res["mae"] == pytest.approx({"mean": 0.5, "std": 0.0})


def test_aggregate_skips_non_numeric_and_keeps_nan():
    r = {"acc": 0.5, "corr": math.nan, "f1_per_class": {"joy": 0.1}, "confusion_matrix": [[1]], "ok": True, "name": "x"}
    res = aggregate_seeds([r, {**r, "acc": 0.7}])
    assert set(res) == {"acc", "corr"}
    assert res["acc"]["mean"] == pytest.approx(0.6) and res["acc"]["std"] == pytest.approx(0.1)
    assert math.isnan(res["corr"]["mean"]) and math.isnan(res["corr"]["std"])


@pytest.mark.parametrize(
    "results, match",
    [
        ([], "no results"),
        ([{"acc": 0.5, "mae": 1.0}, {"acc": 0.5}], r"result 1 .*missing \['mae'\], extra \[\]"),
        ([{"acc": 0.5}, {"acc": 0.5, "f1": 0.2}], r"missing \[\], extra \['f1'\]"),
    ],
)
def test_aggregate_bad_input(results, match):
    with pytest.raises(ValueError, match=match):
        aggregate_seeds(results)


ERC_1 = {
    "accuracy": 0.5,
    "weighted_f1": 0.4,
    "macro_f1": 0.3,
    "f1_per_class": {"高兴": 0.6, "愤怒": 0.2},
    "confusion_matrix": [[1, 0], [1, 0]],
    "support": {"高兴": 1, "愤怒": 1},
}
ERC_2 = {**ERC_1, "accuracy": 0.7, "weighted_f1": 0.6, "f1_per_class": {"高兴": 0.8, "愤怒": 0.4}}


def test_flatten_metrics():
    assert flatten_metrics(ERC_1) == {
        "accuracy": 0.5,
        "weighted_f1": 0.4,
        "macro_f1": 0.3,
        "f1_per_class.高兴": 0.6,
        "f1_per_class.愤怒": 0.2,
    }


def test_results_table_rows_and_columns():
    df = results_table({1111: ERC_1, 1112: ERC_2})
    assert list(df.columns) == ["seed", "accuracy", "weighted_f1", "macro_f1", "f1_per_class.高兴", "f1_per_class.愤怒"]
    assert list(df["seed"]) == ["1111", "1112", "mean", "std"]
    assert df["accuracy"].tolist() == pytest.approx([0.5, 0.7, 0.6, 0.1])  # std: deviations +-0.1
    assert df["macro_f1"].tolist() == pytest.approx([0.3, 0.3, 0.3, 0.0])
    assert len(results_table({1: ERC_1}, summary=False)) == 1


def test_write_results_csv_layout(tmp_path):
    path = write_results_csv(tmp_path / "runs" / "results.csv", {1111: ERC_1, 1112: ERC_2}, model="egmf")
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["model", "seed", "accuracy", "weighted_f1", "macro_f1", "f1_per_class.高兴", "f1_per_class.愤怒"]
    assert [r[:2] for r in rows[1:]] == [["egmf", "1111"], ["egmf", "1112"], ["egmf", "mean"], ["egmf", "std"]]
    assert float(rows[1][2]) == 0.5 and float(rows[2][2]) == 0.7  # fractions, full precision
    assert float(rows[3][3]) == pytest.approx(0.5) and float(rows[4][3]) == pytest.approx(0.1)
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.csv"]  # no temporary file left


def cells(table: str) -> list[list[str]]:
    """A markdown table's rows as stripped cells (the alignment row included), whatever the padding."""
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()]


def test_format_cell_percent_raw_mean_std_and_absent():
    assert format_cell(0.8376, percent=True) == "83.76"
    assert format_cell(0.531, percent=False) == "0.5310"
    assert format_cell({"mean": 0.82, "std": 0.02}, percent=True) == "82.00 ± 2.00"
    assert format_cell({"mean": 0.82, "std": 0.02}, percent=False, std=False) == "0.8200"  # one seed: the mean
    assert format_cell({"mean": math.nan, "std": math.nan}, percent=False) == "nan ± nan"
    assert format_cell(None, percent=True) == "-" and format_cell("x", percent=True) == "-"
    assert [is_percent(k) for k in ("accuracy", "mae", "corr", "loss")] == [True, False, False, False]


def test_to_markdown_aligns_names_left_and_numbers_right_and_keeps_cells_as_given():
    df = pd.DataFrame({"model": ["a", "bb"], "steps": ["15.0", "2"], "F1": ["0.5000", "-"]})
    table = cells(to_markdown(df, labels=1))
    assert table[0] == ["model", "steps", "F1"]
    assert table[1][0].startswith(":-") and all(c.endswith("-:") for c in table[1][1:])
    assert table[2:] == [["a", "15.0", "0.5000"], ["bb", "2", "-"]]  # "15.0" is not re-parsed into "15"


def test_format_table_single_run_mosi():
    m = {"acc2_has0": 0.8376, "acc2_non0": 0.8515, "f1_has0": 0.8382, "f1_non0": 0.849, "acc7": 0.5387,
         "acc5": 0.55, "acc3": 0.6, "mae": 0.531, "corr": 0.765}
    table = cells(format_table(m, "mosi"))
    assert table[0] == ["Acc-2 has0", "Acc-2 non0", "F1 has0", "F1 non0", "Acc-7", "Acc-5", "Acc-3", "MAE", "Corr"]
    assert all(c.endswith("-:") for c in table[1]) and len(table[1]) == 9
    assert table[2] == ["83.76", "85.15", "83.82", "84.90", "53.87", "55.00", "60.00", "0.5310", "0.7650"]


def test_format_table_aggregated_and_named_rows():
    agg = aggregate_seeds([{"acc2": 0.80, "f1": 0.81, "acc3": 0.6, "acc5": 0.5, "mae": 0.3, "corr": math.nan},
                           {"acc2": 0.84, "f1": 0.83, "acc3": 0.6, "acc5": 0.5, "mae": 0.2, "corr": math.nan}])
    row = cells(format_table(agg, "sims"))[2]
    # acc2 mean 0.82 std 0.02 ; mae mean 0.25 std 0.05 ; corr NaN
    assert row == ["82.00 ± 2.00", "82.00 ± 1.00", "60.00 ± 0.00", "50.00 ± 0.00", "0.2500 ± 0.0500", "nan ± nan"]
    table = cells(format_table({"EGMF": {"accuracy": 0.5, "weighted_f1": 0.45, "macro_f1": 0.3},
                                "majority": {"accuracy": 0.48, "weighted_f1": 0.313}}, "erc"))
    assert table[0] == ["run", "Acc", "w-F1", "macro-F1"]
    assert table[1][0].startswith(":-") and all(c.endswith("-:") for c in table[1][1:])
    assert table[2:] == [["EGMF", "50.00", "45.00", "30.00"], ["majority", "48.00", "31.30", "-"]]


def test_format_table_unknown_family():
    with pytest.raises(ValueError, match=r"unknown family 'mosei'; valid choices: \['erc', 'mosi', 'sims'\]"):
        format_table({"mae": 0.5}, "mosei")
