"""``run_extraction`` (egmf.features.extract) end to end on generated media: output format, report,
resume, refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from egmf.errors import RunFolderExistsError
from egmf.features.config import ExtractSettings
from egmf.features.extract import STATE, run_extraction
from egmf.features.layouts import read_layout

from .conftest import FAST, _custom_input


@pytest.fixture(scope="module")
def extracted(media_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("extract")
    src = _custom_input(media_dir, tmp)
    items, info = read_layout("custom", src)
    out = tmp / "out"
    report = run_extraction(items, info, out, ExtractSettings(**FAST), progress=False)
    return src, items, info, out, report


def test_output_is_the_custom_format(extracted):
    _, _, _, out, report = extracted
    df = pd.read_csv(out / "data.csv", keep_default_na=False)
    assert list(df.columns) == ["id", "text", "label", "split"]
    assert list(df["id"]) == ["face", "face_mute", "blank", "tone"]
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    assert meta == {"name": "in", "task": "erc", "lang": "en", "labels": ["anger", "joy", "neutral"],
                    "metric_family": "erc"}
    f = out / "features"
    assert np.load(f / "audio" / "face.npy").shape[1] == 25  # egemaps is the main audio set here
    assert np.load(f / "extra" / "mfcc" / "tone.npy").shape[1] == 40
    assert np.load(f / "pooled" / "egemaps" / "tone.npy").shape == (1, 88)
    assert np.load(f / "vision" / "face.npy").shape[1] == 139
    assert np.load(f / "text" / "face.npy").shape[1] == 384
    assert np.load(f / "pooled" / "sentence" / "face.npy").shape == (1, 384)
    assert not (f / "vision" / "blank.npy").exists()  # no face: a mask, not a crash
    assert not (f / "audio" / "face_mute.npy").exists()  # no audio track
    assert not (f / "vision" / "tone.npy").exists()  # audio-only clip
    assert report["dims"] == {"text": 384, "audio": 25, "vision": 139}


def test_report_lists_failures_exclusions_and_settings(extracted):
    _, _, _, out, report = extracted
    assert report == json.loads((out / "extract_report.json").read_text())
    c = report["counts"]
    assert (c["total"], c["ok"], c["failed"], c["rows"], c["excluded"]) == (7, 5, 2, 4, 1)
    assert (c["no_face"], c["no_audio"]) == (1, 1)
    errors = {f["id"]: f["error"] for f in report["failures"]}
    assert errors["corrupt"].startswith("DataFormatError: ") and "corrupt.mp4: media" in errors["corrupt"]
    assert "no media file named ghost.*" in errors["ghost"]
    assert report["excluded"] == [{"id": "silent", "reason": "no text (no transcript, no speech heard)"}]
    assert report["settings"]["audio_features"] == ["egemaps", "mfcc"]
    assert report["versions"]["opensmile"] != "not installed"
    by_id = {r["id"]: r for r in report["items"]}
    assert by_id["face"]["notes"]["face_frames"] == by_id["face"]["notes"]["frames"] == 10


def test_second_run_skips_finished_ids_and_retries_failures(extracted):
    src, items, info, out, _ = extracted
    before = (out / "features" / "audio" / "face.npy").stat().st_mtime_ns
    again = run_extraction(items, info, out, ExtractSettings(**FAST), progress=False)
    assert again["counts"]["skipped"] == 5 and again["counts"]["failed"] == 2 and again["counts"]["ok"] == 0
    assert (out / "features" / "audio" / "face.npy").stat().st_mtime_ns == before
    assert list(pd.read_csv(out / "data.csv")["id"]) == ["face", "face_mute", "blank", "tone"]


def test_existing_features_are_never_overwritten_silently(extracted, tmp_path):
    _, items, info, out, _ = extracted
    with pytest.raises(RunFolderExistsError, match="other settings"):
        run_extraction(items, info, out, ExtractSettings(audio_features=("mfcc",), transcribe="never"),
                       progress=False)
    foreign = tmp_path / "mine"
    (foreign / "features" / "audio").mkdir(parents=True)
    (foreign / "features" / "audio" / "x.npy").write_bytes(b"user data")
    with pytest.raises(RunFolderExistsError, match="not written by egmf extract"):
        run_extraction(items[:1], info, foreign, ExtractSettings(**FAST), progress=False)
    assert (foreign / "features" / "audio" / "x.npy").read_bytes() == b"user data"


def test_a_folder_saved_before_the_sentence_encoder_setting_resumes_or_names_the_change(extracted, tmp_path):
    _, items, info, out, _ = extracted
    state = out / STATE / "settings.json"
    saved = json.loads(state.read_text())
    old = tmp_path / "old"
    (old / STATE).mkdir(parents=True)
    (old / STATE / "settings.json").write_text(json.dumps({k: v for k, v in saved.items()
                                                                      if k != "sentence_encoder"}))
    # English: the old folder meant MiniLM, today's default for English: it resumes.
    again = run_extraction(items[:1], info, old, ExtractSettings(**FAST), progress=False)
    assert again["counts"]["ok"] == 1
    (old / STATE / "settings.json").write_text(json.dumps(
        {**{k: v for k, v in saved.items() if k != "sentence_encoder"}, "lang": "zh", "whisper": "base"}))
    with pytest.raises(RunFolderExistsError, match="sentence_encoder: 'minilm' -> 'multilingual-e5-small'"):
        run_extraction(items[:1], info, old, ExtractSettings(**{**FAST, "lang": "zh"}), progress=False)


def test_output_loads_as_a_custom_dataset(extracted):
    from egmf.data import load_dataset

    _, _, _, out, _ = extracted
    data = load_dataset("custom", out)
    assert data.info.labels == ("anger", "joy", "neutral") and data.info.task == "erc"
    train = {s.id: s for s in data.splits["train"]}
    assert train["face"].vision.shape[1] == 139 and train["face"].audio.shape[1] == 25
    assert train["face_mute"].audio is None and train["face_mute"].vision is not None
    assert data.splits["valid"][0].vision is None  # the clip without a face
    # The extractor's pooled sets reach the model too, keyed "pooled:<set>" beside the frame modalities.
    assert data.feature_dims() == {"text": 384, "audio": 25, "vision": 139,
                                   "pooled:egemaps": 88, "pooled:mfcc": 80, "pooled:sentence": 384}


@pytest.mark.slow
def test_two_worker_processes_give_the_same_arrays(extracted, tmp_path):
    _, items, info, out, _ = extracted
    par = run_extraction(items, info, tmp_path / "par", ExtractSettings(**FAST), workers=2, progress=False)
    assert par["counts"]["ok"] == 5 and par["counts"]["failed"] == 2
    for name in ("audio/face.npy", "vision/face.npy", "text/tone.npy"):
        np.testing.assert_allclose(np.load(tmp_path / "par" / "features" / name),
                                   np.load(out / "features" / name), rtol=1e-5, atol=1e-5)
