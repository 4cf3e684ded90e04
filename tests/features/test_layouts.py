"""Input layouts of ``egmf extract`` on small folders laid out as each dataset is distributed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from egmf.data.schema import CHERMA_EMOTIONS
from egmf.errors import ConfigError, DataFormatError
from egmf.features.layouts import infer_info, read_layout

MELD_COLS = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
             "Episode", "StartTime", "EndTime"]


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_meld_raw_layout_finds_clips_per_split_and_reports_missing_ones(tmp_path):
    root = tmp_path / "MELD.Raw"
    rows = [(1, "Hi.", "Ross", "joy", "positive", 0, 0, 1, 1, "0", "1"),
            (2, "Bye.", "Rachel", "sadness", "negative", 0, 1, 1, 1, "1", "2")]
    for split, csv, clips in (("train", "train_sent_emo.csv", "train/train_splits"),
                              ("dev", "dev_sent_emo.csv", "dev/dev_splits_complete")):
        (root / split).mkdir(parents=True)
        pd.DataFrame(rows, columns=MELD_COLS).to_csv(root / split / csv, index=False)
        _touch(root / clips / "dia0_utt0.mp4")  # dia0_utt1 is missing in both splits
    items, info = read_layout("meld", root)
    assert info["task"] == "erc" and info["labels"][0] == "neutral"
    by_id = {it.id: it for it in items}
    assert sorted(by_id) == ["train_dia0_utt0", "train_dia0_utt1", "valid_dia0_utt0", "valid_dia0_utt1"]
    t = by_id["train_dia0_utt0"]
    assert (t.split, t.label, t.text, t.speaker, t.dialogue) == ("train", "joy", "Hi.", "Ross", "train_0")
    assert t.video.parent.name == "train_splits" and by_id["valid_dia0_utt0"].video.parent.name == "dev_splits_complete"
    assert "dia0_utt1.mp4 not found in a train_splits folder" == by_id["train_dia0_utt1"].missing


def test_meld_rejects_an_unknown_emotion(tmp_path):
    pd.DataFrame([(1, "Hi.", "Ross", "happy", "positive", 0, 0, 1, 1, "0", "1")], columns=MELD_COLS).to_csv(
        tmp_path / "train_sent_emo.csv", index=False)
    with pytest.raises(DataFormatError, match="train_sent_emo.csv: Emotion: expected one of .*got 'happy'"):
        read_layout("meld", tmp_path)


def test_simsv2_keeps_zero_padded_clip_ids_and_unimodal_labels(tmp_path):
    pd.DataFrame([["vid_a", "0001", "我很开心", 0.8, 0.6, 1.0, 0.2, "train"],
                  ["vid_a", "0002", "还行", -0.2, 0.0, -0.4, 0.0, "test"]],
                 columns=["video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "mode"],
                 ).to_csv(tmp_path / "label.csv", index=False)
    _touch(tmp_path / "Raw" / "vid_a" / "0001.mp4")
    items, info = read_layout("simsv2", tmp_path)
    assert info == {"name": "simsv2", "task": "msa", "lang": "zh", "score_range": [-1.0, 1.0],
                    "metric_family": "sims"}
    a, b = items
    assert (a.id, a.split, a.label, a.text) == ("vid_a$_$0001", "train", 0.8, "我很开心")
    assert a.extra == {"label_T": 0.6, "label_A": 1.0, "label_V": 0.2} and a.missing == ""
    assert b.missing.endswith("0002.mp4 not found")


def test_cherma_resolves_media_and_carves_a_seeded_valid_split(tmp_path):
    recs = [{"audio_file": f"a{i}.wav", "video_file": f"v{i}.mp4", "text": f"句子{i}", "txt_label": "平静",
             "audio_label": "平静", "visual_label": "平静", "video_label": CHERMA_EMOTIONS[i % 7]} for i in range(20)]
    (tmp_path / "train.json").write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "test.json").write_text(json.dumps(recs[:3], ensure_ascii=False), encoding="utf-8")
    for i in range(20):
        _touch(tmp_path / "video" / f"v{i}.mp4")
    items, info = read_layout("cherma", tmp_path)
    assert info["lang"] == "zh" and info["labels"] == list(CHERMA_EMOTIONS)
    splits = [it.split for it in items]
    assert (splits.count("train"), splits.count("valid"), splits.count("test")) == (18, 2, 3)
    assert [it.id for it in items if it.split == "valid"] == [it.id for it in read_layout("cherma", tmp_path)[0]
                                                            if it.split == "valid"]
    assert items[0].video == tmp_path / "video" / "v0.mp4" and items[0].text == "句子0"
    bad = recs[:1] + [{**recs[0], "video_label": "开心"}]
    (tmp_path / "train.json").write_text(json.dumps(bad, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"train.json: \[1\].video_label: expected one of"):
        read_layout("cherma", tmp_path)


def test_custom_without_data_csv_uses_transcripts_and_media_names(tmp_path):
    _touch(tmp_path / "one.wav")
    _touch(tmp_path / "sub" / "two.mp4")
    pd.DataFrame([("one", "hello")], columns=["id", "text"]).to_csv(tmp_path / "transcripts.csv", index=False)
    items, info = read_layout("custom", tmp_path)
    one, two = items
    assert (one.id, one.text, one.audio.name, one.video) == ("one", "hello", "one.wav", None)
    assert (two.id, two.text, two.video.name, two.label) == ("two", None, "two.mp4", None)
    empty = _touch(tmp_path / "empty" / "notes.txt").parent
    with pytest.raises(DataFormatError, match="media: expected audio/video files"):
        read_layout("custom", empty)


def test_infer_info_from_labels():
    from egmf.features.layouts import Item

    def mk(*labels):
        return [Item(id=str(i), split="train", label=v, text="t") for i, v in enumerate(labels)]

    assert infer_info("d", mk("0.5", "-1"), "en")["score_range"] == [-1.0, 1.0]
    assert infer_info("d", mk("2.5", "-3"), "en")["metric_family"] == "mosi"
    assert infer_info("d", mk("joy", "anger", None), "zh")["labels"] == ["anger", "joy"]


def test_unknown_layout_and_missing_folder():
    with pytest.raises(ConfigError, match="layout: unknown 'iemocap'; valid choices: meld, simsv2, cherma, custom"):
        read_layout("iemocap", ".")
    with pytest.raises(DataFormatError, match="input folder: expected an existing folder"):
        read_layout("custom", "/nonexistent/folder")
