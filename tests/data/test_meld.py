"""MELD loader: generated files in the official layout, every validation error, the DialogueGCN pickle,
and (when ../shared/data/meld exists) the real train/dev CSVs.

Run: .venv/bin/python -m pytest tests/data/test_meld.py -q
"""

from __future__ import annotations

import csv
import logging
import pickle
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from egmf.data.meld import CSV_FILES, DGCN_EMOTIONS, DGCN_OFFSETS, load_meld
from egmf.data.registry import load_dataset
from egmf.data.schema import MELD_EMOTIONS, MELD_SENTIMENTS
from egmf.data.synth import meld as synth_meld
from egmf.errors import ConfigError, DataFormatError

REAL_MELD = (Path(__file__).parents[2] / "../shared/data/meld").resolve()
N_TRAIN = 40  # -> valid 8, test 12


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    return synth_meld.write(tmp_path_factory.mktemp("meld"), n_train=N_TRAIN, seed=3)


@pytest.fixture
def meld_copy(generated, tmp_path) -> Path:
    """A private copy a test may damage."""
    return Path(shutil.copytree(generated, tmp_path / "meld"))


def csv_rows(file: Path) -> list[dict[str, str]]:
    with file.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_rows(file: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> None:
    columns = columns or list(rows[0])
    with file.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


# ---- round trip -------------------------------------------------------------------------------------
def test_round_trip_sizes_labels_and_features(generated):
    data = load_meld(generated)
    assert data.info.name == "meld" and data.info.task == "erc" and data.info.lang == "en"
    assert data.info.labels == MELD_EMOTIONS and data.info.metric_family == "erc"
    assert {s: len(v) for s, v in data.splits.items()} == {"train": 40, "valid": 8, "test": 12}
    for split, name in CSV_FILES.items():
        rows = csv_rows(generated / name)
        assert Counter(s.label for s in data.splits[split]) == Counter(r["Emotion"] for r in rows)
        assert [s.extra_labels["sentiment"] for s in data.splits[split]] == [r["Sentiment"] for r in rows]
        assert [s.id for s in data.splits[split]] == [
            f"{split}/dia{r['Dialogue_ID']}_utt{r['Utterance_ID']}" for r in rows
        ]
        assert [s.speaker for s in data.splits[split]] == [r["Speaker"] for r in rows]
    assert data.feature_dims() == {"text": 48, "audio": 32, "vision": 24}
    s = data.splits["test"][0]
    assert s.audio.dtype == np.float32 and s.audio.ndim == 2
    ref = np.load(generated / "features" / "test" / "audio" / f"{s.id.split('/')[1]}.npy")
    np.testing.assert_array_equal(s.audio, ref)


def test_context_is_earlier_turns_of_the_same_dialogue_oldest_first(generated):
    data = load_meld(generated, features=None)
    rows = csv_rows(generated / CSV_FILES["train"])
    for i, (row, sample) in enumerate(zip(rows, data.splits["train"])):
        want = [(r["Speaker"], r["Utterance"]) for r in rows[:i]
                if r["Dialogue_ID"] == row["Dialogue_ID"] and int(r["Utterance_ID"]) < int(row["Utterance_ID"])]
        assert sample.context == want
        assert sample.audio is None and sample.text_feats is None
    first_turns = [s for s in data.splits["train"] if s.id.endswith("_utt0")]
    assert first_turns and all(s.context == [] for s in first_turns)
    assert max(len(s.context) for s in data.splits["train"]) >= 2


def test_sentiment_as_label_puts_emotion_in_extra_labels(generated):
    data = load_meld(generated, label="sentiment", features=None)
    assert data.info.labels == MELD_SENTIMENTS
    rows = csv_rows(generated / CSV_FILES["valid"])
    assert [s.label for s in data.splits["valid"]] == [r["Sentiment"] for r in rows]
    assert [s.extra_labels["emotion"] for s in data.splits["valid"]] == [r["Emotion"] for r in rows]


def test_registry_loads_meld_by_name(generated):
    data = load_dataset("meld", generated)
    assert len(data.splits["train"]) == N_TRAIN


def test_test_csv_may_be_missing_only_when_asked(meld_copy):
    (meld_copy / "test_sent_emo.csv").unlink()
    with pytest.raises(DataFormatError) as e:
        load_meld(meld_copy)
    assert "test_sent_emo.csv" in str(e.value) and "splits=('train', 'valid')" in str(e.value)
    data = load_meld(meld_copy, splits=("train", "valid"))
    assert sorted(data.splits) == ["train", "valid"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"label": "arousal"}, "label: expected one of emotion, sentiment"),
        ({"nan": "drop"}, "nan: expected one of error, zero"),
        ({"splits": ("train", "dev")}, "splits: expected a subset of train, valid, test"),
        ({"bogus": 1}, "unknown loader options ['bogus']"),
        ({"features": "f", "dialoguegcn": "g.pkl"}, "pass either features=DIR or dialoguegcn=FILE, not both"),
    ],
)
def test_bad_options_raise_config_error(generated, options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_meld(generated, **options)


# ---- CSV validation ---------------------------------------------------------------------------------
def _drop_column(rows):
    return [{k: v for k, v in r.items() if k != "Emotion"} for r in rows]


def _set(field, value, index=1):
    def edit(rows):
        rows[index][field] = value
        return rows
    return edit


def _duplicate(rows):
    rows[1]["Dialogue_ID"], rows[1]["Utterance_ID"] = rows[0]["Dialogue_ID"], rows[0]["Utterance_ID"]
    return rows


CSV_CASES = [
    # (edit, field named in the message, expectation named in the message)
    (_drop_column, "Emotion", "columns ['Sr No.', 'Utterance'"),
    (_set("Emotion", "happiness"), "row 3.Emotion", "one of neutral, joy, sadness"),
    (_set("Sentiment", "mixed"), "row 3.Sentiment", "one of neutral, positive, negative"),
    (_set("Utterance", "   "), "row 3.Utterance", "a non-empty string"),
    (_set("Speaker", ""), "row 3.Speaker", "a non-empty string"),
    (_set("Dialogue_ID", "x1"), "row 3.Dialogue_ID", "a whole number"),
    (_duplicate, "row 3.Utterance_ID", "a unique (Dialogue_ID, Utterance_ID)"),
]


@pytest.mark.parametrize("edit, field, expected", CSV_CASES)
def test_csv_errors_name_file_field_and_expectation(meld_copy, edit, field, expected):
    file = meld_copy / CSV_FILES["valid"]
    rows = edit(csv_rows(file))
    write_rows(file, rows)
    with pytest.raises(DataFormatError) as e:
        load_meld(meld_copy)
    assert e.value.file == str(file)
    assert e.value.field == field
    assert expected in str(e.value)


def test_non_utf8_csv_is_refused(meld_copy):
    file = meld_copy / CSV_FILES["train"]
    data = file.read_bytes().replace(b"It was", "It\u2019s".encode("cp1252") + b" was", 1)
    file.write_bytes(data)
    with pytest.raises(DataFormatError) as e:
        load_meld(meld_copy)
    assert e.value.file == str(file) and e.value.field == "encoding"
    assert "UTF-8" in str(e.value) and "0x92" in str(e.value)


def test_bom_is_accepted(meld_copy):
    file = meld_copy / CSV_FILES["valid"]
    file.write_bytes(b"\xef\xbb\xbf" + file.read_bytes())
    assert len(load_meld(meld_copy).splits["valid"]) == 8


def test_nothing_is_half_loaded_when_a_late_file_is_bad(meld_copy):
    """The test CSV is bad: the call raises, and returns no partial data for train or valid."""
    file = meld_copy / CSV_FILES["test"]
    rows = csv_rows(file)
    rows[-1]["Emotion"] = "bored"
    write_rows(file, rows)
    with pytest.raises(DataFormatError, match="bored"):
        load_meld(meld_copy)


# ---- features ---------------------------------------------------------------------------------------
def test_missing_feature_file_sets_that_modality_none_and_is_logged(meld_copy, caplog):
    (meld_copy / "features" / "valid" / "vision" / "dia1_utt0.npy").unlink()
    with caplog.at_level(logging.WARNING):
        data = load_meld(meld_copy)
    s = next(x for x in data.splits["valid"] if x.id == "valid/dia1_utt0")
    assert s.vision is None and s.audio is not None and s.text_feats is not None
    assert sum(x.vision is None for x in data.splits["valid"]) == 1
    assert "1 of 8 feature files missing" in caplog.text


def test_modality_subset_and_explicit_folder(meld_copy, tmp_path):
    feats = Path(shutil.move(meld_copy / "features", tmp_path / "elsewhere"))
    for split in ("train", "valid", "test"):
        shutil.rmtree(feats / split / "text")
    data = load_meld(meld_copy, features=feats)
    assert data.feature_dims() == {"text": 0, "audio": 32, "vision": 24}
    assert load_meld(meld_copy).feature_dims() == {"text": 0, "audio": 0, "vision": 0}  # nothing to auto-find


def test_dims_that_disagree_across_splits(meld_copy):
    for f in (meld_copy / "features" / "test" / "audio").glob("*.npy"):
        np.save(f, np.zeros((3, 5), np.float32))
    with pytest.raises(DataFormatError) as e:
        load_meld(meld_copy)
    assert e.value.field == "audio feature dim"
    assert "the same feature dim in every split" in str(e.value) and "'test': 5" in str(e.value)


def test_dims_that_disagree_inside_a_split(meld_copy):
    bad = meld_copy / "features" / "train" / "audio" / "dia1_utt1.npy"
    np.save(bad, np.zeros((3, 7), np.float32))
    with pytest.raises(DataFormatError) as e:
        load_meld(meld_copy)
    assert e.value.file == str(bad) and "expected 32" in str(e.value)


def _first_feature(folder: Path) -> Path:
    return folder / "features" / "train" / "text" / "dia0_utt0.npy"


def test_truncated_npy(meld_copy):
    f = _first_feature(meld_copy)
    f.write_bytes(f.read_bytes()[:-40])
    with pytest.raises(DataFormatError) as e:
        load_meld(meld_copy)
    assert e.value.file == str(f) and e.value.field == "npy" and "a complete .npy array file" in str(e.value)


def test_object_array_npy_is_refused(meld_copy):
    f = _first_feature(meld_copy)
    np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError, match="a complete .npy array file"):
        load_meld(meld_copy)


def test_nan_is_an_error_or_zero_and_inf_is_cleaned(meld_copy):
    f = _first_feature(meld_copy)
    arr = np.load(f)
    arr[0, 0], arr[0, 1], arr[1, 2] = np.nan, -np.inf, np.inf
    np.save(f, arr)
    with pytest.raises(DataFormatError) as e:
        load_meld(meld_copy)
    assert e.value.file == str(f) and "1 NaN" in str(e.value) and "nan='zero'" in str(e.value)
    s = load_meld(meld_copy, nan="zero").splits["train"][0]
    assert s.text_feats[0, 0] == 0 and s.text_feats[0, 1] == 0 and s.text_feats[1, 2] == 0
    assert np.isfinite(s.text_feats).all()
    np.testing.assert_array_equal(s.text_feats[2:], arr[2:])


def test_one_dimensional_array_is_one_frame(meld_copy):
    f = _first_feature(meld_copy)
    np.save(f, np.arange(48, dtype=np.float64))
    s = load_meld(meld_copy).splits["train"][0]
    assert s.text_feats.shape == (1, 48) and s.text_feats.dtype == np.float32


# ---- DialogueGCN / MMGCN pickle ---------------------------------------------------------------------
def _dgcn_pickle(folder: Path, out: Path, skip: tuple[str, int, int] | None = None, mislabel: bool = False) -> Path:
    """A 10-item MMGCN-style pickle built from the CSVs: one vector per utterance, label = its emotion."""
    ids, spk, labels, text, audio, visual, sent, sentiment = {}, {}, {}, {}, {}, {}, {}, {}
    train_vid, test_vid = [], []
    for split, name in CSV_FILES.items():
        by_dia: dict[int, list[dict]] = {}
        for r in csv_rows(folder / name):
            if skip and (split, int(r["Dialogue_ID"]), int(r["Utterance_ID"])) == skip:
                continue
            by_dia.setdefault(int(r["Dialogue_ID"]), []).append(r)
        for d, rows in by_dia.items():
            key = d + DGCN_OFFSETS[split]
            (test_vid if split == "test" else train_vid).append(key)
            ids[key] = [int(r["Utterance_ID"]) for r in rows]
            spk[key] = [[1.0, 0.0] for _ in rows]
            labels[key] = [DGCN_EMOTIONS.index(r["Emotion"]) for r in rows]
            text[key] = [np.full(6, key + u, np.float64) for u in ids[key]]
            audio[key] = np.stack([np.full(4, -u, np.float32) for u in ids[key]])
            visual[key] = [np.ones(3) * u for u in ids[key]]
            sent[key] = [r["Utterance"] for r in rows]
            sentiment[key] = [MELD_SENTIMENTS.index(r["Sentiment"]) for r in rows]
    if mislabel:
        k = train_vid[0]
        labels[k][0] = (labels[k][0] + 1) % 7
    with out.open("wb") as f:
        pickle.dump((ids, spk, labels, text, audio, visual, sent, train_vid, test_vid, sentiment), f, protocol=2)
    return out


def test_dialoguegcn_pickle_gives_one_frame_per_utterance(generated, tmp_path):
    pkl = _dgcn_pickle(generated, tmp_path / "MELD_features_raw1.pkl", skip=("valid", 1, 0))
    data = load_meld(generated, dialoguegcn=pkl)
    assert data.feature_dims() == {"text": 6, "audio": 4, "vision": 3}
    s = next(x for x in data.splits["test"] if x.id == "test/dia1_utt2")
    np.testing.assert_array_equal(s.text_feats, np.full((1, 6), 1 + 1153 + 2, np.float32))
    np.testing.assert_array_equal(s.audio, np.full((1, 4), -2, np.float32))
    missing = next(x for x in data.splits["valid"] if x.id == "valid/dia1_utt0")
    assert missing.text_feats is None and missing.audio is None and missing.vision is None


def test_dialoguegcn_label_mismatch_means_misaligned(generated, tmp_path):
    pkl = _dgcn_pickle(generated, tmp_path / "bad.pkl", mislabel=True)
    with pytest.raises(DataFormatError) as e:
        load_meld(generated, dialoguegcn=pkl)
    assert e.value.file == str(pkl) and e.value.field.startswith("videoLabels[0][0]")
    assert "the CSV emotion" in str(e.value)


def test_dialoguegcn_pickle_with_code_is_refused(generated, tmp_path):
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps((Counter(), 1)))
    with pytest.raises(DataFormatError, match="numpy arrays and builtin containers only"):
        load_meld(generated, dialoguegcn=bad)


def test_dialoguegcn_wrong_shape(generated, tmp_path):
    bad = tmp_path / "short.pkl"
    bad.write_bytes(pickle.dumps(([], [], [])))
    with pytest.raises(DataFormatError) as e:
        load_meld(generated, dialoguegcn=bad)
    assert e.value.field == "top level" and "9 or 10 items" in str(e.value)


# ---- real data --------------------------------------------------------------------------------------
@pytest.mark.skipif(not REAL_MELD.is_dir(), reason="../shared/data/meld is not on this machine")
def test_real_meld_train_and_dev():
    data = load_meld(REAL_MELD, splits=("train", "valid"))
    assert len(data.splits["train"]) == 9989 and len(data.splits["valid"]) == 1109
    dialogues = {s: {x.id.split("_utt")[0] for x in v} for s, v in data.splits.items()}
    assert len(dialogues["train"]) == 1038 and len(dialogues["valid"]) == 114
    assert set(x.label for x in data.splits["train"]) == set(MELD_EMOTIONS)
    assert set(x.label for x in data.splits["valid"]) == set(MELD_EMOTIONS)
    first = data.splits["train"][0]
    assert first.id == "train/dia0_utt0" and first.speaker == "Chandler" and first.context == []


@pytest.mark.skipif(not REAL_MELD.is_dir(), reason="../shared/data/meld is not on this machine")
def test_real_meld_without_test_csv_needs_explicit_splits():
    if (REAL_MELD / "test_sent_emo.csv").exists():
        pytest.skip("this copy has the test CSV")
    with pytest.raises(DataFormatError, match="test_sent_emo.csv"):
        load_meld(REAL_MELD)
