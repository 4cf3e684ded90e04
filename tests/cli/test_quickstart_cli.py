"""``egmf quickstart`` as users call it, on the tiny LLM for two steps: every section and both verdict lines."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from egmf.cli.main import app
from egmf.cli.quickstart import QUICKSTART_OVERRIDES


@pytest.mark.slow  # about 40 s on one thread: generation, two tiny-LLM training steps, test predictions, reload
def test_quickstart_smoke_on_the_tiny_llm(tmp_path):
    result = CliRunner().invoke(app, ["quickstart", "--out", str(tmp_path), "--llm", "tiny", "--steps", "2",
                                      "--size", "tiny"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "majority-label baseline on weighted_f1" in out and "mean-score baseline on mae" in out
    assert "mean gate weights [expert]" in out and "a few test predictions" in out
    seed_dir = tmp_path / "runs" / "quickstart_001" / "seed_1111"
    assert (seed_dir / "checkpoints" / "best").is_dir()
    assert "valid at steps 1, 2" in out  # num_evals 3 over 2 steps: one evaluation per step, none twice


def test_quickstart_spreads_its_evaluations_and_keeps_the_speed_switches_on():
    assert QUICKSTART_OVERRIDES["train.num_evals"] > 0 and "train.eval_every" not in QUICKSTART_OVERRIDES
    for key in ("train.length_bucketing", "model.llm.share_prefix"):
        assert QUICKSTART_OVERRIDES.get(key, True) is True, key
