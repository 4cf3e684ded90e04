"""Tiny generated datasets and a fast model (the late-fusion baseline) to exercise the one trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from egmf.config import config_from_dict
from egmf.data.synth import write_synthetic


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic("meld", root / "meld", size=120, seed=3)
    write_synthetic(
        "mmsa", root / "mosei", size=60, seed=4, flavour="mosei",
        dims={"text": 32, "audio": 12, "vision": 10}, seq_lens={"text": 12, "audio": 20, "vision": 16},
    )
    return root


def run_config_dict(data: Path, out: Path, **train) -> dict:
    """A config over MELD + MOSEI generated data with the fast late-fusion model."""
    return {
        "name": "t",
        "output_dir": str(out),
        "data": {"datasets": [{"name": "meld", "path": str(data / "meld")}, {"name": "mosei", "path": str(data / "mosei")}]},
        "model": {"name": "late_fusion", "baseline": {"hidden": 16, "dropout": 0.0, "layers": 1}},
        "train": {
            "epochs": 2, "batch_size": 16, "lr_fusion": 5e-3, "mixed_precision": "no", "save_every": 2, "log_every": 1,
            **train,
        },
        "eval": {"batch_size": 32, "plots": False},
    }


def make_config(data: Path, out: Path, **train):
    return config_from_dict(run_config_dict(data, out, **train))


def write_config(path: Path, data: Path, out: Path, **train) -> Path:
    path.write_text(yaml.safe_dump(run_config_dict(data, out, **train)), encoding="utf-8")
    return path
