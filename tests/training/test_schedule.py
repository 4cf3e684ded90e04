"""When valid is scored: the plan of ``evaluation_steps`` and the trainer following it, never twice at the end."""

from __future__ import annotations

import json

import pytest

from egmf.errors import ConfigError
from egmf.experiments.run import run
from egmf.training.schedule import evaluation_steps

from .conftest import make_config


@pytest.mark.parametrize(
    "total,eval_every,num_evals,expected",
    [
        (100, 33, 0, [33, 66, 100]),  # not 33, 66, 99 and 100 again
        (99, 33, 0, [33, 66, 99]),
        (100, 40, 0, [40, 80, 100]),  # 20 steps after 80 is half an interval: kept
        (100, 0, 3, [34, 67, 100]),
        (100, 0, 1, [100]),
        (10, 0, 4, [3, 5, 8, 10]),
        (3, 0, 5, [1, 2, 3]),  # more evaluations than steps: one per step
        (100, 33, 4, [25, 50, 75, 100]),  # num_evals overrides eval_every
        (50, 0, 0, []),  # once per epoch
        (5, 10, 0, [5]),
    ],
)
def test_evaluation_steps(total, eval_every, num_evals, expected):
    steps = evaluation_steps(total, eval_every, num_evals)
    assert steps == expected
    assert len(steps) == len(set(steps))


def test_evaluation_steps_needs_a_step():
    with pytest.raises(ValueError, match="total_steps"):
        evaluation_steps(0, 10, 0)


@pytest.mark.parametrize("field", ["num_evals", "threads"])
def test_negative_counts_are_refused_by_name(tiny_data, tmp_path, field):
    with pytest.raises(ConfigError, match=f"train.{field}: expected an integer >= 0"):
        make_config(tiny_data, tmp_path, **{field: -1})


def _evaluated_steps(tmp_path) -> list[int]:
    log = (tmp_path / "t" / "seed_1111" / "train_log.jsonl").read_text().splitlines()
    return [json.loads(x)["step"] for x in log if "valid_selection" in x]


@pytest.mark.parametrize(
    "train,expected",
    [
        ({"max_steps": 10, "num_evals": 3}, [4, 7, 10]),
        ({"max_steps": 10, "eval_every": 3}, [3, 6, 10]),
        ({"max_steps": 9, "eval_every": 3}, [3, 6, 9]),
        # Once per epoch (180 samples in batches of 16: 12 steps); the run cut at step 15 is scored at its end.
        ({"max_steps": 15, "epochs": 3}, [12, 15]),
        ({"epochs": 2}, [12, 24]),
    ],
)
def test_the_trainer_scores_valid_on_the_plan_and_once_at_the_end(tiny_data, tmp_path, train, expected):
    result = run(make_config(tiny_data, tmp_path, patience=0, **{"epochs": 5, **train}))
    assert _evaluated_steps(tmp_path) == expected
    assert result.seeds[1111].test  # the best of those evaluations was reloaded and tested


def test_early_stopping_is_not_followed_by_a_second_evaluation_of_the_same_step(tiny_data, tmp_path):
    # lr 0 never improves after the first evaluation: stop after patience 2 more, and score no step twice.
    run(make_config(tiny_data, tmp_path, epochs=10, eval_every=1, patience=2, lr_fusion=1e-12))
    steps = _evaluated_steps(tmp_path)
    assert steps == [1, 2, 3]
