"""``inspect_dataset`` numbers on small datasets whose every value is known, and the rendered tables.

Run: .venv/bin/python -m pytest tests/data/test_inspect.py -q
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from rich.console import Console

from egmf.data import safe_format
from egmf.data.inspect import LOADED, RAW, inspect_dataset, render, score_histogram
from egmf.data.safe_pickle import safe_load
from egmf.data.schema import MELD_EMOTIONS, BenchmarkData, DatasetInfo, Sample

MELD = DatasetInfo("meld", "erc", "en", labels=MELD_EMOTIONS, metric_family="erc")
MOSI = DatasetInfo("mosi", "msa", "en", score_range=(-3.0, 3.0), metric_family="mosi")
SIMS = DatasetInfo("sims", "msa", "zh", score_range=(-1.0, 1.0), metric_family="sims")


def sample(i, label, info, text=None, audio=None, vision=None, **kw) -> Sample:
    def arr(shape):
        return None if shape is None else np.ones(shape, np.float32)

    return Sample(id=f"s{i}", text=f"text {i}", label=label, dataset=info.name, task=info.task, lang=info.lang,
                  text_feats=arr(text), audio=arr(audio), vision=arr(vision), **kw)


@pytest.fixture
def erc_folder(tmp_path):
    train = [
        sample(0, "joy", MELD, text=(2, 5), audio=(3, 4), extra_labels={"sentiment": "positive"}),
        sample(1, "joy", MELD, text=(4, 5), audio=(5, 4), vision=(1, 2), extra_labels={"sentiment": "positive"}),
        sample(2, "anger", MELD, text=(6, 5), vision=(3, 2), extra_labels={"sentiment": "negative"}),
        sample(3, None, MELD, text=(2, 5), audio=(1, 4)),
    ]
    train[0].audio[0, 0] = np.nan
    train[0].audio[2, 3] = -np.inf
    train[2].vision[1, 1] = np.inf
    test = [sample(9, "fear", MELD, text=(3, 5))]
    data = BenchmarkData(MELD, {"train": train, "test": test})
    return safe_format.write(data, tmp_path / "erc")


def test_erc_report_numbers(erc_folder):
    report = inspect_dataset("meld", erc_folder)
    assert (report["dataset"], report["format"], report["task"], report["lang"]) == ("meld", "egmf-safe", "erc", "en")
    assert report["nonfinite_counted_in"] == LOADED  # a converted folder: only the loaded arrays exist
    train = report["splits"]["train"]
    assert train["n"] == 4
    assert train["modalities"]["text"] == {
        "dim": 5, "present": 4, "missing": 0, "empty": 0, "frames": {"min": 2, "mean": 3.5, "max": 6}}
    assert train["modalities"]["audio"] == {
        "dim": 4, "present": 3, "missing": 1, "empty": 0, "frames": {"min": 1, "mean": 3.0, "max": 5}}
    assert train["modalities"]["vision"] == {
        "dim": 2, "present": 2, "missing": 2, "empty": 0, "frames": {"min": 1, "mean": 2.0, "max": 3}}
    assert train["labels"] == {
        "unlabelled": 1, "kind": "counts",
        "counts": {"neutral": 0, "joy": 2, "sadness": 0, "anger": 1, "surprise": 0, "fear": 0, "disgust": 0}}
    assert list(train["labels"]["counts"]) == list(MELD_EMOTIONS)  # the dataset's own label order
    assert train["extra_labels"]["sentiment"] == {
        "unlabelled": 1, "kind": "counts", "counts": {"positive": 2, "negative": 1}}
    assert train["nonfinite"] == {
        "text": {"nan": 0, "neg_inf": 0, "pos_inf": 0},
        "audio": {"nan": 1, "neg_inf": 1, "pos_inf": 0},
        "vision": {"nan": 0, "neg_inf": 0, "pos_inf": 1},
    }
    test = report["splits"]["test"]
    assert test["modalities"]["audio"] == {"dim": 0, "present": 0, "missing": 1, "empty": 0, "frames": None}
    assert test["labels"]["counts"]["fear"] == 1


def test_msa_report_numbers(tmp_path):
    scores = [-3.0, -2.4, 0.0, 0.5, 2.6, 3.0]
    data = BenchmarkData(MOSI, {"train": [sample(i, y, MOSI, audio=(2, 3)) for i, y in enumerate(scores)]})
    report = inspect_dataset("mosi", safe_format.write(data, tmp_path / "msa"))
    labels = report["splits"]["train"]["labels"]
    assert labels["kind"] == "scores" and labels["n"] == 6 and labels["unlabelled"] == 0
    assert labels["mean"] == pytest.approx(0.7 / 6)
    assert labels["std"] == pytest.approx(np.std(scores))
    assert (labels["min"], labels["max"]) == (-3.0, 3.0)
    # Acc-7 classes: round(clip(y, -3, 3)); 0.5 rounds to 0 (numpy rounds half to even, as MMSA does)
    assert labels["histogram"] == {"-3": 1, "-2": 1, "-1": 0, "0": 2, "+1": 0, "+2": 0, "+3": 2}


def test_sims_bins_are_right_closed():
    values = [-1.0, -0.7, -0.69, -0.1, 0.0, 0.1, 0.11, 0.7, 0.71, 1.0]
    assert score_histogram(np.array(values), SIMS) == {
        "[-1,-0.7]": 2, "(-0.7,-0.1]": 2, "(-0.1,0.1]": 2, "(0.1,0.7]": 2, "(0.7,1]": 2}


def test_other_score_ranges_get_five_equal_bins():
    info = DatasetInfo("custom", "msa", "en", score_range=(0.0, 10.0), metric_family="mosi_like")
    assert list(score_histogram(np.array([0.0, 1.9, 2.0, 9.9, 10.0]), info).values()) == [2, 1, 0, 0, 2]


def test_mmsa_counts_raw_non_finite_then_converted_copy_is_clean(make_mmsa, tmp_path):
    path = make_mmsa("mosei", n_train=20, neg_inf_rate=0.01)
    raw = safe_load(path)
    report = inspect_dataset("mosei", path)
    assert report["format"] == "native" and report["nonfinite_counted_in"] == RAW
    for split in ("train", "valid", "test"):
        n_inf = int(np.isneginf(raw[split]["audio"]).sum())
        assert n_inf > 0 and report["splits"][split]["nonfinite"]["audio"] == {"nan": 0, "neg_inf": n_inf, "pos_inf": 0}
    hist = report["splits"]["train"]["labels"]["histogram"]
    assert sum(hist.values()) == 20 and len(hist) == 7
    lens = raw["train"]["audio_lengths"]
    assert report["splits"]["train"]["modalities"]["audio"]["frames"] == {
        "min": min(lens), "mean": pytest.approx(np.mean(lens)), "max": max(lens)}

    from egmf.data.registry import load_dataset

    safe = safe_format.write(load_dataset("mosei", path), tmp_path / "safe")
    converted = inspect_dataset("mosei", safe)
    assert converted["nonfinite_counted_in"] == LOADED
    assert converted["splits"]["train"]["nonfinite"]["audio"] == {"nan": 0, "neg_inf": 0, "pos_inf": 0}


def test_loader_options_pass_through(make_mmsa):
    path = make_mmsa("mosi")
    raw = safe_load(path)
    raw["test"]["text"][0, 0, 0] = np.nan
    path.write_bytes(pickle.dumps(raw, protocol=4))
    report = inspect_dataset("mosi", path, nan="zero")
    assert report["splits"]["test"]["nonfinite"]["text"]["nan"] == 1


def test_render(erc_folder):
    tables = render(inspect_dataset("meld", erc_folder))
    titles = [str(t.title) for t in tables]
    assert titles[1:] == ["frames per sample (min / mean / max)", "labels", "secondary label sentiment",
                          f"NaN / -inf / +inf, counted in the {LOADED}"]
    assert all(t.row_count == 2 for t in tables if str(t.title).startswith(("meld", "frames", "NaN")))
    console = Console(record=True, width=200)
    for t in tables:
        console.print(t)
    text = console.export_text()
    assert "2 / 3.5 / 6" in text and "1 / 3.0 / 5" in text  # train frames: text, audio
    assert "1 / 1 / 0" in text and "0 / 0 / 1" in text  # train non-finite: audio, vision
    assert "unlabelled: train 1, test 0" in text


# ---- NaN: inspect counts it, loading refuses it --------------------------------------------------
@pytest.fixture
def meld_with_nan(tmp_path):
    """Generated native MELD whose first train audio file holds 2 NaN and 1 -inf, one valid vision file 1 NaN."""
    from egmf.data.synth import meld as synth_meld

    root = synth_meld.write(tmp_path / "meld", n_train=6, seed=1)
    audio = sorted((root / "features" / "train" / "audio").glob("*.npy"))[0]
    a = np.load(audio)
    a[0, 0], a[1, 1], a[0, 2] = np.nan, np.nan, -np.inf
    np.save(audio, a)
    vision = sorted((root / "features" / "valid" / "vision").glob("*.npy"))[0]
    v = np.load(vision)
    v[0, 0] = np.nan
    np.save(vision, v)
    return root, audio


def test_inspect_counts_nan_per_split_and_modality_in_a_native_folder(meld_with_nan):
    root, _ = meld_with_nan
    report = inspect_dataset("meld", root)
    assert report["nonfinite_counted_in"] == RAW  # loaded as read: nothing cleaned away before counting
    counts = {split: r["nonfinite"] for split, r in report["splits"].items()}
    zero = {"nan": 0, "neg_inf": 0, "pos_inf": 0}
    assert counts["train"] == {"text": zero, "audio": {"nan": 2, "neg_inf": 1, "pos_inf": 0}, "vision": zero}
    assert counts["valid"] == {"text": zero, "audio": zero, "vision": {"nan": 1, "neg_inf": 0, "pos_inf": 0}}
    assert counts["test"] == {"text": zero, "audio": zero, "vision": zero}
    # an explicit nan option still passes through: zeroed, so the loaded arrays hold none
    assert inspect_dataset("meld", root, nan="zero")["splits"]["train"]["nonfinite"]["audio"]["nan"] == 0


def test_loading_the_same_folder_still_refuses_nan(meld_with_nan):
    from egmf.data.registry import load_dataset
    from egmf.errors import DataFormatError

    root, audio = meld_with_nan
    with pytest.raises(DataFormatError) as e:
        load_dataset("meld", root)
    assert e.value.file == str(audio) and "2 NaN" in str(e.value) and "nan='zero'" in str(e.value)


def test_inspect_counts_nan_in_an_mmsa_pickle_without_options(make_mmsa):
    path = make_mmsa("mosi")
    raw = safe_load(path)
    raw["train"]["vision"][1, 0, :3] = np.nan
    path.write_bytes(pickle.dumps(raw, protocol=4))
    report = inspect_dataset("mosi", path)  # refused with a DataFormatError before
    assert report["nonfinite_counted_in"] == RAW
    assert report["splits"]["train"]["nonfinite"]["vision"] == {"nan": 3, "neg_inf": 0, "pos_inf": 0}
    assert report["splits"]["valid"]["nonfinite"]["vision"]["nan"] == 0
