"""``egmf train --config configs/cherma.yaml`` as a user with CHERMA data runs it: the shipped Chinese config on the
embedded Gemma 3 270M, offline (slow: loads the real LLM; its first run also builds the safetensors cache).

Run with ``.venv/bin/python -m pytest tests/cli/test_train_cherma_slow.py -m slow -q``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from egmf.cli.main import app
from egmf.data.schema import CHERMA_EMOTIONS
from egmf.data.synth import write_synthetic

pytestmark = pytest.mark.slow
runner = CliRunner()
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "cherma.yaml"


def test_the_shipped_cherma_config_trains_on_gemma_and_answers_in_chinese_labels(tmp_path):
    data = write_synthetic("cherma", tmp_path / "cherma", size="tiny", seed=5,
                           shapes={"text": (6, 16), "audio": (10, 8), "vision": (5, 6)})
    torch.manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = runner.invoke(app, [
            "train", "--config", str(CONFIG), "--output", str(tmp_path / "runs"),
            "--set", f"data.datasets.0.path={data}",
            # A smoke run's size: the model and every other setting are the shipped config's.
            "--set", "train.max_steps=1", "--set", "train.batch_size=2",
            "--set", "data.limit.valid=2", "--set", "data.limit.test=3", "--set", "eval.plots=false",
        ])
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "cherma"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert saved["model"]["llm"]["backend"] == "gemma3-270m" and saved["model"]["name"] == "egmf"
    lines = (run_dir / "seed_1111" / "predictions_test.jsonl").read_text(encoding="utf-8").splitlines()
    answers = [json.loads(line)["prediction"] for line in lines]
    assert len(answers) == 3 and set(answers) <= set(CHERMA_EMOTIONS), answers  # constrained to the 7 Chinese words
