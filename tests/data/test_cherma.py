"""CHERMA loader: generated json + npy files in the release layout, the seeded stratified valid split,
and every validation error.

Run: .venv/bin/python -m pytest tests/data/test_cherma.py -q
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from egmf.data.cherma import load_cherma, record_id, stratified_valid
from egmf.data.registry import load_dataset
from egmf.data.schema import CHERMA_EMOTIONS
from egmf.data.synth import cherma as synth_cherma
from egmf.errors import ConfigError, DataFormatError

N_TRAIN = 60  # train.json holds 60 + 12 records, test.json 18


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    return synth_cherma.write(tmp_path_factory.mktemp("cherma"), n_train=N_TRAIN, seed=5)


@pytest.fixture
def copy(generated, tmp_path) -> Path:
    return Path(shutil.copytree(generated, tmp_path / "cherma"))


def records(folder: Path, split: str) -> list[dict]:
    return json.loads((folder / f"{split}.json").read_text(encoding="utf-8"))


def save(folder: Path, split: str, recs) -> Path:
    file = folder / f"{split}.json"
    file.write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    return file


def test_layout_matches_the_release(generated):
    rec = records(generated, "train")[0]
    assert set(rec) == {"audio_file", "video_file", "text", "txt_label", "audio_label", "visual_label", "video_label"}
    rid = record_id(rec["audio_file"])
    assert (generated / "text" / "train" / f"{rid}.npy").is_file()
    assert (generated / "audio" / "train" / f"{rid}.npy").is_file()
    assert (generated / "visual" / "train" / f"{rid}.mp4.npy").is_file()
    arr = np.load(generated / "visual" / "train" / f"{rid}.mp4.npy")
    assert arr.dtype == np.float32 and arr.shape == synth_cherma.DEFAULT_SHAPES["vision"]


def test_round_trip_labels_extra_labels_and_features(generated):
    data = load_cherma(generated)
    assert data.info.name == "cherma" and data.info.lang == "zh" and data.info.labels == CHERMA_EMOTIONS
    assert data.info.metric_family == "erc"
    train_recs, test_recs = records(generated, "train"), records(generated, "test")
    assert len(data.splits["train"]) + len(data.splits["valid"]) == len(train_recs) == 72
    assert len(data.splits["test"]) == len(test_recs) == 18
    carved = data.splits["train"] + data.splits["valid"]
    assert Counter(s.label for s in carved) == Counter(r["video_label"] for r in train_recs)
    by_id = {record_id(r["audio_file"]): r for r in train_recs}
    for s in carved:
        r = by_id[s.id]
        assert s.text == r["text"] and s.label == r["video_label"]
        assert s.extra_labels == {"T": r["txt_label"], "A": r["audio_label"], "V": r["visual_label"]}
    assert data.feature_dims() == {"text": 32, "audio": 32, "vision": 24}
    s = data.splits["test"][3]
    np.testing.assert_array_equal(s.audio, np.load(generated / "audio" / "test" / f"{s.id}.npy"))
    assert s.text_feats.shape == (12, 32) and s.vision.shape == (6, 24)


def test_registry_loads_cherma_by_name(generated):
    assert len(load_dataset("cherma", generated).splits["test"]) == 18


@pytest.mark.parametrize("audio_file, expected", [("0001_02.wav", "0001_02"), ("a/b/x.WAV", "x"), ("y.flac", "y")])
def test_record_id(audio_file, expected):
    assert record_id(audio_file) == expected


def test_valid_split_is_seeded_and_stratified(generated):
    a = load_cherma(generated, seed=1)
    b = load_cherma(generated, seed=1)
    c = load_cherma(generated, seed=2)
    ids = lambda d: [s.id for s in d.splits["valid"]]  # noqa: E731
    assert ids(a) == ids(b) and ids(a) != ids(c)
    assert not set(ids(a)) & {s.id for s in a.splits["train"]}
    full = Counter(s.label for s in a.splits["train"] + a.splits["valid"])
    valid = Counter(s.label for s in a.splits["valid"])
    for label, n in full.items():  # round(0.1 * n) of each label, at least one when it has two
        assert valid[label] == max(round(0.1 * n), 1 if n >= 2 else 0)
    bigger = load_cherma(generated, valid_fraction=0.3, seed=1)
    assert len(bigger.splits["valid"]) > len(a.splits["valid"])


def test_stratified_valid_exact_counts():
    labels = ["a"] * 20 + ["b"] * 10 + ["c"] * 1
    idx = stratified_valid(labels, 0.2, seed=0)
    assert Counter(labels[i] for i in idx) == {"a": 4, "b": 2}
    assert list(idx) == sorted(idx)


def test_text_field_option_and_no_transcripts(copy):
    recs = records(copy, "train")
    for r in recs:
        r["sentence"] = r.pop("text")
    save(copy, "train", recs)
    with pytest.raises(DataFormatError) as e:
        load_cherma(copy)
    assert e.value.field == "[0].text" and "text_field=NAME" in str(e.value)
    test_recs = records(copy, "test")
    for r in test_recs:
        r["sentence"] = r.pop("text")
    save(copy, "test", test_recs)
    data = load_cherma(copy, text_field="sentence")
    assert data.splits["test"][0].text == test_recs[0]["sentence"]
    bare = load_cherma(copy, text_field=None)
    assert all(s.text == "" for s in bare.splits["test"]) and bare.splits["test"][0].audio is not None


def _set(key, value, index=2):
    def edit(recs):
        recs[index][key] = value
        return recs
    return edit


def _drop(key, index=2):
    def edit(recs):
        del recs[index][key]
        return recs
    return edit


def _dup(recs):
    recs[2]["audio_file"] = recs[0]["audio_file"]
    return recs


RECORD_CASES = [
    # (edit, field, expectation)
    (_drop("video_label"), "[2].video_label", "fields ['audio_file', 'video_file'"),
    (_drop("audio_file"), "[2].audio_file", "fields ['audio_file'"),
    (_set("video_label", "开心"), "[2].video_label", "one of 愤怒, 厌恶, 恐惧, 高兴, 平静, 悲伤, 惊奇"),
    (_set("txt_label", "anger"), "[2].txt_label", "one of 愤怒"),
    (_set("visual_label", 3), "[2].visual_label", "one of 愤怒"),
    (_set("text", "  "), "[2].text", "a non-empty string"),
    (_set("audio_file", ""), "[2].audio_file", "a non-empty string"),
    (_dup, "[2].audio_file", "a unique file name per record"),
    (lambda recs: {"records": recs}, "top level", "a list of records"),
    (lambda recs: [], "top level", "at least one record"),
    (lambda recs: recs[:2] + ["x"], "[2]", "a record (json object)"),
]


@pytest.mark.parametrize("edit, field, expected", RECORD_CASES)
def test_record_errors_name_file_field_and_expectation(copy, edit, field, expected):
    file = save(copy, "test", edit(records(copy, "test")))
    with pytest.raises(DataFormatError) as e:
        load_cherma(copy)
    assert e.value.file == str(file) and e.value.field == field
    assert expected in str(e.value)


def test_truncated_json(copy):
    file = copy / "train.json"
    file.write_bytes(file.read_bytes()[:-30])
    with pytest.raises(DataFormatError) as e:
        load_cherma(copy)
    assert e.value.file == str(file) and e.value.field == "json" and "a complete JSON document" in str(e.value)


def test_non_utf8_json(copy):
    file = copy / "test.json"
    file.write_bytes(file.read_text(encoding="utf-8").encode("gb18030"))
    with pytest.raises(DataFormatError) as e:
        load_cherma(copy)
    assert e.value.file == str(file) and e.value.field == "encoding"


def test_missing_json_file(copy):
    (copy / "test.json").unlink()
    with pytest.raises(DataFormatError, match="test.json: path: expected an existing file"):
        load_cherma(copy)


def test_feature_dims_disagree_across_splits(copy):
    for f in (copy / "visual" / "test").glob("*.mp4.npy"):
        np.save(f, np.zeros((6, 10), np.float32))
    with pytest.raises(DataFormatError) as e:
        load_cherma(copy)
    assert e.value.file == str(copy / "visual") and e.value.field == "vision feature dim"
    assert "the same feature dim in every split" in str(e.value)


def test_missing_feature_file_and_missing_modality_folder(copy):
    (copy / "audio" / "test" / "test_00004.npy").unlink()
    shutil.rmtree(copy / "text")
    data = load_cherma(copy)
    s = next(x for x in data.splits["test"] if x.id == "test_00004")
    assert s.audio is None and s.vision is not None
    assert all(x.text_feats is None for x in data.splits["train"])
    assert data.feature_dims()["text"] == 0


def test_nan_and_inf_in_features(copy):
    f = copy / "audio" / "train" / "train_00000.npy"
    arr = np.load(f)
    arr[1, 1], arr[2, 2] = -np.inf, np.nan
    np.save(f, arr)
    with pytest.raises(DataFormatError) as e:
        load_cherma(copy)
    assert e.value.file == str(f) and "1 NaN" in str(e.value)
    s = next(x for x in load_cherma(copy, nan="zero").splits["train"] + load_cherma(copy, nan="zero").splits["valid"]
             if x.id == "train_00000")
    assert s.audio[1, 1] == 0 and s.audio[2, 2] == 0 and np.isfinite(s.audio).all()


def test_truncated_feature_file(copy):
    f = copy / "visual" / "test" / "test_00001.mp4.npy"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DataFormatError) as e:
        load_cherma(copy)
    assert e.value.file == str(f) and e.value.field == "npy"


@pytest.mark.parametrize(
    "options, message",
    [({"valid_fraction": 0}, "valid_fraction"), ({"valid_fraction": 1.5}, "valid_fraction"),
     ({"nan": "skip"}, "nan: expected one of error, zero"), ({"folds": 5}, "unknown loader options")],
)
def test_bad_options(generated, options, message):
    with pytest.raises(ConfigError, match=message):
        load_cherma(generated, **options)


def test_synth_shapes_option(tmp_path):
    out = synth_cherma.write(tmp_path / "c", n_train=8, seed=0, shapes={"text": (81, 16)})
    data = load_cherma(out)
    assert data.splits["test"][0].text_feats.shape == (81, 16)
    assert data.splits["test"][0].audio.shape == synth_cherma.DEFAULT_SHAPES["audio"]
