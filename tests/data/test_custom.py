"""Custom-format loader: data.csv + features/ + dataset.yaml, inference without the yaml, options over the
yaml, dialogue context, and every validation error.

Run: .venv/bin/python -m pytest tests/data/test_custom.py -q
"""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from egmf.data.custom import load_custom
from egmf.data.registry import load_dataset
from egmf.data.schema import CHERMA_EMOTIONS, MELD_EMOTIONS
from egmf.data.synth import custom as synth_custom
from egmf.errors import ConfigError, DataFormatError

N_TRAIN = 30  # -> valid 8, test 9


def write_csv(folder: Path, rows: list[dict], columns=("id", "text", "label", "split", "speaker", "dialogue")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "data.csv"
    with file.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return file


def read_rows(folder: Path) -> list[dict]:
    with (folder / "data.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def erc_en(tmp_path_factory) -> Path:
    return synth_custom.write(tmp_path_factory.mktemp("erc_en"), N_TRAIN, seed=1, task="erc", lang="en")


@pytest.fixture
def copy(erc_en, tmp_path) -> Path:
    return Path(shutil.copytree(erc_en, tmp_path / "custom"))


# ---- round trips of every generated flavour ---------------------------------------------------------
@pytest.mark.parametrize(
    "task, lang, yaml_file, info",
    [
        ("erc", "en", True, dict(name="custom_synth", labels=MELD_EMOTIONS, metric_family="erc")),
        ("erc", "zh", True, dict(name="custom_synth", labels=CHERMA_EMOTIONS, metric_family="erc")),
        ("msa", "en", True, dict(name="custom_synth", score_range=(-3.0, 3.0), metric_family="mosi")),
        ("msa", "zh", True, dict(name="custom_synth", score_range=(-1.0, 1.0), metric_family="sims")),
        ("erc", "zh", False, dict(name="custom", metric_family="erc")),
        ("msa", "zh", False, dict(name="custom", score_range=(-3.0, 3.0), metric_family="mosi")),
    ],
)
def test_round_trip(tmp_path, task, lang, yaml_file, info):
    out = synth_custom.write(tmp_path / "d", N_TRAIN, seed=2, task=task, lang=lang, yaml_file=yaml_file)
    data = load_custom(out)
    assert data.info.task == task and data.info.lang == lang
    for key, value in info.items():
        assert getattr(data.info, key) == value
    rows = read_rows(out)
    assert {s: len(v) for s, v in data.splits.items()} == {"train": 30, "valid": 8, "test": 9}
    got = [s.label for split in ("train", "valid", "test") for s in data.splits[split]]
    want = [r["label"] if task == "erc" else float(r["label"]) for r in rows]
    assert got == want
    if task == "msa":
        lo, hi = data.info.score_range
        assert all(lo <= v <= hi for v in got) and all(isinstance(v, float) for v in got)
    assert data.feature_dims() == {"text": 48, "audio": 32, "vision": 24}
    assert all(s.dataset == data.info.name for s in data.splits["train"])


def test_inferred_labels_sorted_by_frequency(copy):
    (copy / "dataset.yaml").unlink()
    data = load_custom(copy)
    counts = Counter(r["label"] for r in read_rows(copy))
    assert data.info.name == "custom" and data.info.lang == "en"
    assert [counts[w] for w in data.info.labels] == sorted(counts.values(), reverse=True)
    assert set(data.info.labels) == set(counts)


def test_options_override_the_yaml(copy):
    data = load_custom(copy, name="renamed", lang="zh", labels=list(reversed(MELD_EMOTIONS)))
    assert data.info.name == "renamed" and data.info.lang == "zh"
    assert data.info.labels == tuple(reversed(MELD_EMOTIONS))
    assert data.splits["test"][0].dataset == "renamed"


def test_registry_and_csv_path(copy):
    assert len(load_dataset("custom", copy).splits["train"]) == N_TRAIN
    assert len(load_custom(copy / "data.csv").splits["valid"]) == 8


def test_context_from_dialogue_rows_in_order(tmp_path):
    rows = [
        dict(id="a", text="hi", label="joy", split="train", speaker="A", dialogue="d1"),
        dict(id="b", text="hello", label="neutral", split="train", speaker="B", dialogue="d1"),
        dict(id="c", text="other talk", label="joy", split="train", speaker="A", dialogue="d2"),
        dict(id="d", text="bye", label="neutral", split="train", speaker="A", dialogue="d1"),
        dict(id="e", text="test row", label="joy", split="test", speaker="", dialogue="d1"),
    ]
    write_csv(tmp_path, rows)
    data = load_custom(tmp_path)
    ctx = {s.id: s.context for v in data.splits.values() for s in v}
    assert ctx == {"a": [], "b": [("A", "hi")], "c": [], "d": [("A", "hi"), ("B", "hello")], "e": []}
    assert data.splits["test"][0].speaker is None
    assert data.splits["valid"] == []


def test_minimal_csv_without_optional_columns(tmp_path):
    rows = [dict(id=str(i), text=f"t{i}", label=str(i % 3 - 1), split="train" if i < 4 else "dev") for i in range(6)]
    write_csv(tmp_path, rows, columns=("id", "text", "label", "split"))
    data = load_custom(tmp_path, score_range=(-1, 1))
    assert data.info.task == "msa" and data.info.metric_family == "sims" and data.info.score_range == (-1.0, 1.0)
    assert [s.label for s in data.splits["valid"]] == [0.0, 1.0]
    assert all(s.context == [] and s.speaker is None for s in data.splits["train"])
    assert data.feature_dims() == {"text": 0, "audio": 0, "vision": 0}


def test_features_one_frame_vector_and_missing_file(copy):
    np.save(copy / "features" / "audio" / "train_00000.npy", np.ones(32, np.float64))
    (copy / "features" / "vision" / "test_00002.npy").unlink()
    data = load_custom(copy)
    s0 = data.splits["train"][0]
    assert s0.audio.shape == (1, 32) and s0.audio.dtype == np.float32
    s = next(x for x in data.splits["test"] if x.id == "test_00002")
    assert s.vision is None and s.audio is not None


# ---- validation -------------------------------------------------------------------------------------
def _set(key, value, index=3):
    def edit(rows):
        rows[index][key] = value
        return rows
    return edit


CSV_CASES = [
    # (edit, columns, field, expectation)
    (None, ("id", "text", "split"), "label", "columns ['id', 'text', 'label', 'split']"),
    (_set("label", "ecstatic"), None, "row 5.label", "one of neutral, joy"),
    (_set("text", " "), None, "row 5.text", "a non-empty string"),
    (_set("split", "holdout"), None, "row 5.split", "one of train, valid, dev"),
    (_set("id", "train_00000"), None, "row 5.id", "a unique id per row"),
    (_set("id", "../x"), None, "row 5.id", "an id usable as a file name"),
    (lambda rows: [dict(r, split="test") for r in rows], None, "split", "at least one row in the train split"),
]


@pytest.mark.parametrize("edit, columns, field, expected", CSV_CASES)
def test_csv_errors(copy, edit, columns, field, expected):
    rows = read_rows(copy)
    file = write_csv(copy, edit(rows) if edit else rows, columns or ("id", "text", "label", "split", "speaker", "dialogue"))
    with pytest.raises(DataFormatError) as e:
        load_custom(copy)
    assert e.value.file == str(file) and e.value.field == field
    assert expected in str(e.value)


@pytest.mark.parametrize(
    "label, expected",
    [("3.5", "a score in [-3.0, 3.0]"), ("-7", "a score in [-3.0, 3.0]"), ("positive", "a number (task msa)")],
)
def test_msa_label_errors(tmp_path, label, expected):
    out = synth_custom.write(tmp_path / "m", 10, seed=0, task="msa", lang="en")
    rows = read_rows(out)
    rows[2]["label"] = label
    file = write_csv(out, rows)
    with pytest.raises(DataFormatError) as e:
        load_custom(out)
    assert e.value.file == str(file) and e.value.field == "row 4.label" and expected in str(e.value)


def test_non_utf8_csv(copy):
    file = copy / "data.csv"
    file.write_bytes(file.read_bytes() + "x9,caf\xe9 time,joy,train,,\n".encode("latin-1"))
    with pytest.raises(DataFormatError) as e:
        load_custom(copy)
    assert e.value.file == str(file) and e.value.field == "encoding" and "0xe9" in str(e.value)


def test_row_with_missing_cells(copy):
    file = copy / "data.csv"
    file.write_text(file.read_text(encoding="utf-8") + "short,row\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="cells"):
        load_custom(copy)


YAML_CASES = [
    ({"task": "regression"}, "task", "one of erc, msa"),
    ({"lang": "fr"}, "lang", "one of en, zh"),
    ({"labels": ["joy", "joy"]}, "labels", "distinct, non-empty label words"),
    ({"metric_family": "mosi"}, "metric_family", "one of erc for task erc"),
    ({"epochs": 3}, "epochs", "one of the keys name, task"),
    ({"name": "my data"}, "name", "letters, digits"),
    ({"labels": ["neutral", "joy"]}, None, "one of neutral, joy"),  # a data label outside the list
]


@pytest.mark.parametrize("change, field, expected", YAML_CASES)
def test_yaml_errors_name_the_yaml(copy, change, field, expected):
    file = copy / "dataset.yaml"
    spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    spec.update(change)
    file.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DataFormatError) as e:
        load_custom(copy)
    if field is None:  # the error names the first row (line = index + 2) whose label is outside the list
        first = next(i for i, r in enumerate(read_rows(copy)) if r["label"] not in change["labels"])
        field = f"row {first + 2}.label"
    where = copy / ("data.csv" if field.startswith("row") else "dataset.yaml")
    assert e.value.file == str(where) and e.value.field == field and expected in str(e.value)


def test_msa_yaml_bad_range(tmp_path):
    out = synth_custom.write(tmp_path / "m", 10, seed=0, task="msa", lang="zh")
    (out / "dataset.yaml").write_text("task: msa\nscore_range: [1, -1]\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as e:
        load_custom(out)
    assert e.value.field == "score_range" and "low < high" in str(e.value)


def test_broken_yaml(copy):
    (copy / "dataset.yaml").write_text("task: [erc\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as e:
        load_custom(copy)
    assert e.value.field == "yaml" and "a valid YAML document" in str(e.value)


@pytest.mark.parametrize(
    "options, message",
    [({"task": "ner"}, "task: expected one of erc, msa"), ({"metric_family": "sims"}, "metric_family"),
     ({"columns": 3}, "unknown loader options"), ({"nan": "drop"}, "nan: expected one of error, zero, keep")],
)
def test_bad_options_are_config_errors(copy, options, message):
    with pytest.raises(ConfigError, match=message):
        load_custom(copy, **options)


def test_feature_dims_disagree_across_splits(copy):
    for f in (copy / "features" / "text").glob("test_*.npy"):
        np.save(f, np.zeros((2, 7), np.float32))
    with pytest.raises(DataFormatError) as e:
        load_custom(copy)
    assert e.value.file == str(copy / "features" / "text") and e.value.field == "text feature dim"
    assert "the same feature dim in every split" in str(e.value)


def test_nan_inf_and_corrupt_features(copy):
    f = copy / "features" / "vision" / "valid_00001.npy"
    arr = np.load(f)
    arr[0, 0], arr[0, 1] = np.nan, -np.inf
    np.save(f, arr)
    with pytest.raises(DataFormatError, match="1 NaN"):
        load_custom(copy)
    s = next(x for x in load_custom(copy, nan="zero").splits["valid"] if x.id == "valid_00001")
    assert s.vision[0, 0] == 0 and s.vision[0, 1] == 0
    f.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataFormatError) as e:
        load_custom(copy, nan="zero")
    assert e.value.file == str(f) and e.value.field == "npy"


def test_missing_data_csv(tmp_path):
    with pytest.raises(DataFormatError) as e:
        load_custom(tmp_path)
    assert e.value.field == "path" and "data.csv" in e.value.file
