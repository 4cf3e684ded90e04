"""Training logs through Accelerate's trackers: train_log.jsonl keeps its keys, TensorBoard its folder."""

from __future__ import annotations

import json

from accelerate import Accelerator

from egmf.training.tracking import start_trackers, stop_trackers


def test_the_json_log_keeps_its_flat_keys_and_tensorboard_gets_every_series(tmp_path):
    accelerator = Accelerator(cpu=True)
    start_trackers(accelerator, tmp_path)
    accelerator.log({"train/epoch": 0, "train/loss": 1.5, "train/lr_lora": 2e-4}, step=1)
    accelerator.log({"valid/selection": 0.25, "valid/improved": True}, step=2)
    stop_trackers(accelerator)
    lines = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert lines == [{"step": 1, "epoch": 0, "loss": 1.5}, {"step": 2, "valid_selection": 0.25, "improved": True}]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert accelerator.trackers == []

    # A resumed seed appends to the same log; a second seed on the same accelerator logs into its own folder.
    start_trackers(accelerator, tmp_path)
    accelerator.log({"train/loss": 1.0}, step=3)
    start_trackers(accelerator, tmp_path / "seed_2")
    accelerator.log({"train/loss": 0.5}, step=1)
    stop_trackers(accelerator)
    assert len((tmp_path / "train_log.jsonl").read_text().splitlines()) == 3
    assert json.loads((tmp_path / "seed_2" / "train_log.jsonl").read_text()) == {"step": 1, "loss": 0.5}
