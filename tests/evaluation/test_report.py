"""What an evaluation writes (egmf.evaluation.report): prediction JSON lines and the names of gate columns."""

from __future__ import annotations

import json

import numpy as np

from egmf.evaluation.report import gate_arrays, gate_names, mean_gates, read_predictions, write_predictions
from egmf.model.base import Prediction

GATES = {"expert": [0.75, 0.25], "modality.local": [0.2, 0.3, 0.5], "modality.global": [0.0, 0.5, 0.5]}


def test_write_predictions_writes_one_json_line_per_prediction_without_empty_fields(tmp_path):
    preds = [
        Prediction("a", "meld", "erc", "joy", probabilities={"joy": np.float32(0.75), "sad": 0.25}, gates=GATES),
        Prediction("b", "sims", "msa", np.float64(-0.4), score=-0.4, generated="-0.4 分"),
    ]
    path = tmp_path / "predictions_test.jsonl"
    write_predictions(preds, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == [
        {"id": "a", "dataset": "meld", "task": "erc", "prediction": "joy", "probabilities": {"joy": 0.75, "sad": 0.25},
         "gates": GATES, "parsed": True},
        {"id": "b", "dataset": "sims", "task": "msa", "prediction": -0.4, "score": -0.4, "gates": {},
         "generated": "-0.4 分", "parsed": True},
    ]
    assert "分" in lines[1]  # written as UTF-8, not escaped
    back = read_predictions(path)
    assert [(p.id, p.prediction, p.score, p.generated, p.gates) for p in back] == [
        ("a", "joy", None, None, GATES), ("b", -0.4, -0.4, "-0.4 分", {})]
    assert back[0].probabilities == {"joy": 0.75, "sad": 0.25}


def test_gate_names_are_the_experts_in_order_or_the_modalities():
    assert gate_names("expert", GATES) == ["local", "global"]
    assert gate_names("modality.local", GATES) == ["text", "audio", "vision"]


def test_gate_arrays_and_mean_gates():
    preds = [Prediction("a", "d", "erc", "x", gates=GATES),
             Prediction("b", "d", "erc", "x", gates={k: [1.0 - v for v in g] for k, g in GATES.items()})]
    arrays = gate_arrays(preds)
    assert arrays["expert"].shape == (2, 2) and arrays["modality.local"].shape == (2, 3) and gate_arrays([]) == {}
    means = mean_gates(preds)
    assert means["modality.local"] == {"text": 0.5, "audio": 0.5, "vision": 0.5}
    assert means["expert"] == {"local": 0.5, "global": 0.5}  # the expert gate names its columns by expert
