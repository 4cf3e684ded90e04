"""The pickle-free format: exact round trips for every dataset format, atomic writes, clear errors.

Run: .venv/bin/python -m pytest tests/data/test_safe_format.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from egmf.data import safe_format
from egmf.data.registry import load_dataset
from egmf.data.schema import MELD_EMOTIONS, MODALITIES, BenchmarkData, DatasetInfo, Sample
from egmf.data.synth import write_synthetic
from egmf.errors import DataFormatError, RunFolderExistsError

SMALL_MMSA = {"dims": {"text": 8, "audio": 5, "vision": 6}, "seq_lens": {"text": 12, "audio": 20, "vision": 16}}
# (registry name, synth format, writer options): every format the generator writes.
FORMATS = {
    "mosi-aligned": ("mosi", "mmsa", {"flavour": "mosi", "variant": "aligned", **SMALL_MMSA}),
    "mosei-unaligned": ("mosei", "mmsa", {"flavour": "mosei", **SMALL_MMSA}),
    "sims": ("sims", "mmsa", {"flavour": "sims", **SMALL_MMSA}),
    "simsv2": ("simsv2", "mmsa", {"flavour": "simsv2", **SMALL_MMSA}),
    "meld": ("meld", "meld", {"dims": {"text": 8, "audio": 6, "vision": 4}}),
    "meld-text-only": ("meld", "meld", {"features": False}),
    "cherma": ("cherma", "cherma", {"shapes": {"text": (5, 8), "audio": (4, 6), "vision": (3, 4)}}),
    "custom-erc": ("custom", "custom", {"dims": {"text": 8, "audio": 6, "vision": 4}}),
    "custom-msa-zh": ("custom", "custom", {"task": "msa", "lang": "zh", "features": False}),
}


def assert_same(a: BenchmarkData, b: BenchmarkData) -> None:
    """Equal info and samples; arrays bit-identical with the same dtype and shape; None stays None."""
    assert a.info == b.info
    assert list(a.splits) == list(b.splits)
    for split in a.splits:
        assert len(a.splits[split]) == len(b.splits[split])
        for x, y in zip(a.splits[split], b.splits[split]):
            for f in ("id", "text", "label", "dataset", "task", "lang", "speaker", "context", "extra_labels"):
                assert getattr(x, f) == getattr(y, f), (split, x.id, f)
                assert type(getattr(x, f)) is type(getattr(y, f)), (split, x.id, f)
            for m in MODALITIES:
                p, q = x.features(m), y.features(m)
                assert (p is None) == (q is None), (split, x.id, m)
                if p is not None:
                    assert p.dtype == q.dtype and p.shape == q.shape
                    assert p.tobytes() == q.tobytes()


@pytest.mark.parametrize("case", list(FORMATS))
def test_round_trip_every_format(tmp_path, case):
    name, fmt, options = FORMATS[case]
    src = write_synthetic(fmt, tmp_path / "src", size=12, seed=4, **options)
    original = load_dataset(name, src)
    out = safe_format.write(original, tmp_path / "safe", loader=name)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [safe_format.MANIFEST] + [f"{s}.safetensors" for s in original.splits]
    )
    assert not list(out.glob("*.pkl"))  # no pickle anywhere
    back = load_dataset(name, out)  # the registry recognises the folder
    assert back.source == str(out)
    assert_same(original, back)


def hand_made() -> BenchmarkData:
    """Everything the schema allows: mixed dims and dtypes, empty and missing arrays, context, None labels."""
    info = DatasetInfo("meld", "erc", "en", labels=MELD_EMOTIONS, metric_family="erc")
    rng = np.random.default_rng(0)

    def s(i, **kw):
        return Sample(id=f"dia0_utt{i}", text=f"utterance {i} — ünïcödé 你好", label="joy", dataset="meld", task="erc",
                      lang="en", **kw)

    train = [
        s(0, speaker="Ross", audio=rng.standard_normal((3, 4)).astype(np.float32)),
        s(1, speaker=None, context=[("Ross", "hi"), ("Rachel", "hey")], audio=rng.standard_normal((2, 6)).astype(np.float32),
          vision=rng.standard_normal((5, 2))),  # float64
        s(2, audio=np.zeros((0, 4), np.float32), text_feats=np.full((1, 3), np.nan, np.float32),
          extra_labels={"sentiment": "positive", "score": 0.1 + 0.2}),
        s(3, vision=np.array([[-np.inf, np.inf]], np.float64)),
    ]
    train[3].label = None
    return BenchmarkData(info=info, splits={"train": train, "test": [], "unlabelled": [s(9)]}, source="hand")


def test_round_trip_edge_cases(tmp_path):
    data = hand_made()
    back = safe_format.read(safe_format.write(data, tmp_path / "out"), expected_name="meld")
    assert_same(data, back)
    assert back.splits["train"][1].vision.dtype == np.float64
    assert back.splits["train"][2].audio.shape == (0, 4)
    assert back.splits["train"][2].extra_labels["score"] == 0.1 + 0.2  # floats exact through JSON
    assert back.splits["train"][1].context == [("Ross", "hi"), ("Rachel", "hey")]


def test_manifest_is_readable_json(tmp_path):
    out = safe_format.write(hand_made(), tmp_path / "out")
    manifest = json.loads((out / safe_format.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["format"] == safe_format.FORMAT and manifest["version"] == safe_format.VERSION
    assert manifest["info"]["labels"] == list(MELD_EMOTIONS)
    assert manifest["converted_from"] == "hand" and manifest["loader"] == "meld"
    train = manifest["splits"]["train"]
    assert train["n"] == 4 and train["samples"][1]["speaker"] is None
    # audio holds two groups: dim 4 (samples 0 and 2) and dim 6 (sample 1)
    assert [(g["dim"], g["frames"]) for g in train["modalities"]["audio"]] == [(4, 3), (6, 2)]
    tensors = safetensors.numpy.load_file(str(out / "train.safetensors"))
    np.testing.assert_array_equal(tensors["audio/lengths"], [3, 2, 0, -1])
    np.testing.assert_array_equal(tensors["audio/group"], [0, 1, 0, -1])


# ---- refusing to overwrite, atomic writes ----------------------------------------------------------
def test_refuses_to_overwrite(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    (tmp_path / "file").write_text("x")
    for target in ("full", "file"):
        with pytest.raises(RunFolderExistsError, match="refusing to overwrite"):
            safe_format.write(hand_made(), tmp_path / target)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert safe_format.is_safe_dataset(safe_format.write(hand_made(), tmp_path / "empty"))


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    real = safetensors.numpy.save_file

    def fail_second(tensors, file, metadata=None):
        calls.append(file)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(tensors, file, metadata=metadata)

    monkeypatch.setattr(safetensors.numpy, "save_file", fail_second)
    with pytest.raises(KeyboardInterrupt):
        safe_format.write(hand_made(), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # neither the output nor the temporary folder


# ---- reading damaged folders -----------------------------------------------------------------------
@pytest.fixture
def written(tmp_path) -> Path:
    return safe_format.write(hand_made(), tmp_path / "out")


def test_truncated_split_file(written):
    f = written / "train.safetensors"
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(DataFormatError, match=r"train\.safetensors: sha256: expected .*the file is corrupt"):
        safe_format.read(written)
    with pytest.raises(DataFormatError, match=r"train\.safetensors: safetensors: expected a complete, readable"):
        safe_format.read(written, verify=False)


def test_flipped_byte_is_caught_by_checksum(written):
    f = written / "train.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF  # inside the last float: the header still parses
    f.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="sha256"):
        safe_format.read(written)


def test_missing_split_file(written):
    (written / "test.safetensors").unlink()
    with pytest.raises(DataFormatError, match=r"test\.safetensors: path: expected the split file the manifest lists"):
        safe_format.read(written)


def _edit_manifest(folder: Path, edit) -> None:
    file = folder / safe_format.MANIFEST
    manifest = json.loads(file.read_text(encoding="utf-8"))
    edit(manifest)
    file.write_text(json.dumps(manifest), encoding="utf-8")


@pytest.mark.parametrize(
    "edit,pattern",
    [
        (lambda m: m.update(version=99), r"version: expected 1"),
        (lambda m: m.update(format="other"), r"format: expected 'egmf-safe-dataset'"),
        (lambda m: m["splits"]["train"].update(n=5), r"splits\.train\.samples: expected 5 records, got 4"),
        (lambda m: m["splits"]["train"]["samples"][0].pop("label"), r"samples\[0\]: expected a sample record"),
        (lambda m: m["splits"]["train"]["modalities"]["audio"][0].update(dim=7), r"audio/f4/4: expected float32 \[frames, 7\]"),
        (lambda m: m["info"].update(task="msa"), r"info: expected name, task"),
    ],
)
def test_inconsistent_manifest(written, edit, pattern):
    _edit_manifest(written, edit)
    with pytest.raises(DataFormatError, match=pattern):
        safe_format.read(written)


def test_lengths_that_disagree_with_the_data(written):
    f = written / "train.safetensors"
    tensors = safetensors.numpy.load_file(str(f))
    tensors["audio/lengths"] = np.array([2, 2, 0, -1])  # group 0 now claims 2 frames, holds 3
    safetensors.numpy.save_file(tensors, str(f))
    with pytest.raises(DataFormatError, match=r"audio/f4/4: expected 2 frames \(the sum of its samples' lengths\), got 3"):
        safe_format.read(written, verify=False)


def test_truncated_manifest(written):
    file = written / safe_format.MANIFEST
    file.write_text(file.read_text(encoding="utf-8")[:100], encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"egmf_dataset\.json: json: expected a complete, valid JSON manifest"):
        safe_format.read(written)


def test_wrong_dataset_name(written):
    with pytest.raises(DataFormatError, match=r"expected a converted 'mosei' dataset, got 'meld' \(use --dataset meld\)"):
        load_dataset("mosei", written)


def test_is_safe_dataset(written, tmp_path):
    assert safe_format.is_safe_dataset(written)
    assert not safe_format.is_safe_dataset(tmp_path)
    assert not safe_format.is_safe_dataset(written / safe_format.MANIFEST)


def test_non_2d_array_is_refused(tmp_path):
    data = hand_made()
    data.splits["train"][0].audio = np.zeros(4, np.float32)
    with pytest.raises(DataFormatError, match=r"train\[0\] \(dia0_utt0\): audio: expected a \[T, d\] numpy array"):
        safe_format.write(data, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
