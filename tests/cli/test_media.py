"""From raw clips to a prediction (egmf.cli.media): extract -> train one step (tiny LLM) -> ``egmf predict
--video/--audio``."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from egmf.cli.main import app
from egmf.features.config import ExtractSettings
from egmf.features.extract import run_extraction
from egmf.features.layouts import read_layout

from .conftest import FAST, _custom_input

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(media_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict_media")
    items, info = read_layout("custom", _custom_input(media_dir, tmp))
    data = tmp / "features"
    run_extraction(items, info, data, ExtractSettings(**FAST), progress=False)
    config = tmp / "run.yaml"
    config.write_text(yaml.safe_dump({
        "name": "media",
        "output_dir": str(tmp / "runs"),
        "data": {"datasets": [{"name": "custom", "path": str(data)}]},
        "model": {"name": "egmf", "llm": {"backend": "tiny"}, "fusion": {"d_model": 16, "n_heads": 2, "num_pseudo_tokens": 2}},
        "train": {"epochs": 1, "max_steps": 1, "batch_size": 2, "mixed_precision": "no"},
        "eval": {"plots": False},
    }))
    result = runner.invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 0, result.output
    return tmp / "runs" / "media" / "seed_1111" / "checkpoints" / "best"


@pytest.mark.parametrize("args", [["--video", "face.mp4"], ["--audio", "tone.wav", "--text", "just a tone"],
                                  ["--video", "blank.mp4", "--text", "nobody in view"]])
def test_predict_from_a_clip_gives_a_label_probabilities_and_gates(checkpoint, media_dir, args):
    args = [str(media_dir / a) if a.endswith((".mp4", ".wav")) else a for a in args]
    result = runner.invoke(app, ["predict", "--checkpoint", str(checkpoint), *args])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[-1])
    assert row["prediction"] in {"joy", "neutral", "anger"} and row["prediction"] in row["probabilities"]
    assert set(row["gates"]) >= {"expert"}


def test_predict_from_a_corrupt_or_missing_clip_is_a_clean_error(checkpoint, media_dir, tmp_path):
    missing = runner.invoke(app, ["predict", "--checkpoint", str(checkpoint), "--audio", str(tmp_path / "nope.wav")])
    assert missing.exit_code == 2 and "nope.wav: media file: expected an existing video or audio file" in missing.output
    corrupt = runner.invoke(app, ["predict", "--checkpoint", str(checkpoint), "--video", str(media_dir / "corrupt.mp4")])
    assert corrupt.exit_code == 2 and "corrupt.mp4" in corrupt.output
