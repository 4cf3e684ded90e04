"""``egmf extract`` (egmf.cli.extract) as a user runs it: extracts, reports failures, refuses an unknown layout."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
from typer.testing import CliRunner


def test_cli_extracts_and_reports(media_dir, tmp_path):
    from egmf.cli.main import app

    src = tmp_path / "clips"
    src.mkdir()
    shutil.copy(media_dir / "tone.wav", src / "a.wav")
    shutil.copy(media_dir / "corrupt.mp4", src / "b.mp4")
    pd.DataFrame([("a", "hello", "joy", "train"), ("b", "bye", "anger", "train")],
                 columns=["id", "text", "label", "split"]).to_csv(src / "data.csv", index=False)
    args = ["extract", "--layout", "custom", "--in", str(src), "--out", str(tmp_path / "o"),
            "--audio-features", "mfcc", "--transcribe", "never", "--text-features", "none"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "1 extracted, 0 already done, 1 failed" in res.output and "failed b: DataFormatError" in res.output
    assert np.load(tmp_path / "o" / "features" / "audio" / "a.npy").shape[1] == 40
    bad = CliRunner().invoke(app, args[:2] + ["vox"] + args[3:])
    assert bad.exit_code == 2 and "layout: unknown 'vox'; valid choices: meld, simsv2, cherma, custom" in bad.output
