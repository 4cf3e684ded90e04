"""``train.threads``: every core this process may use by default, shared among the processes of one machine."""

from __future__ import annotations

import os

import pytest
import torch

from egmf.experiments.run import run
from egmf.training.trainer import resolve_threads

from .conftest import make_config


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)


@pytest.mark.parametrize(
    "setting,env,expected",
    [
        (0, {}, 4),  # the cores of this process's affinity
        (0, {"LOCAL_WORLD_SIZE": "2"}, 2),  # two processes on this machine share them
        (0, {"LOCAL_WORLD_SIZE": "8"}, 1),
        (0, {"OMP_NUM_THREADS": "3"}, 3),  # an explicit environment is respected
        (0, {"OMP_NUM_THREADS": "3", "LOCAL_WORLD_SIZE": "2"}, 3),
        (0, {"OMP_NUM_THREADS": ""}, 4),
        (6, {"OMP_NUM_THREADS": "3"}, 6),  # the config's explicit count wins
    ],
)
def test_resolve_threads(four_cores, monkeypatch, setting, env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert resolve_threads(setting) == expected


def test_the_trainer_applies_the_count_and_prints_it(tiny_data, tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        run(make_config(tiny_data, tmp_path, epochs=1, threads=2))
        assert torch.get_num_threads() == 2
        assert "2 thread(s)" in capsys.readouterr().out
    finally:
        torch.set_num_threads(before)
