"""Write what an evaluation produced: metrics, predictions (JSON lines), and plots, into a folder.

Shared by ``egmf train`` (after the best checkpoint is reloaded), ``egmf evaluate`` and the quickstart.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from egmf.data.schema import MODALITIES, DatasetInfo, Sample
from egmf.evaluation.evaluate import baseline_predictions, predict_samples, score
from egmf.model.base import Prediction

logger = logging.getLogger(__name__)


def evaluate_splits(
    model,
    splits: dict[str, list[Sample]],
    infos: dict[str, DatasetInfo],
    out_dir: Path,
    batch_size: int,
    decoding: str = "constrained",
    accelerator=None,
    plots: bool = True,
    train: list[Sample] | None = None,
) -> dict[str, dict]:
    """Predict and score each split; write ``metrics.json``, ``predictions_<split>.jsonl`` and plots.

    With ``train`` given, the trivial baseline (majority label / mean score of train) is scored too, under
    ``metrics[split]["<dataset>"]["baseline"]``, so every report shows what the model must beat.
    """
    main = accelerator is None or accelerator.is_main_process
    out_dir.mkdir(parents=True, exist_ok=True)
    all_metrics: dict[str, dict] = {}
    for split, samples in splits.items():
        if not samples:
            continue
        preds = predict_samples(model, samples, batch_size, decoding, accelerator, progress=main)
        metrics = score(preds, samples, infos)
        if train:
            base_preds = baseline_predictions(train, samples, infos)
            covered = {p.dataset for p in base_preds}  # a dataset with no train labels has no baseline
            base = score(base_preds, [s for s in samples if s.dataset in covered], infos)
            for name, m in base.items():
                metrics.setdefault(name, {})["baseline"] = m
        all_metrics[split] = metrics
        if main:
            write_predictions(preds, out_dir / f"predictions_{split}.jsonl")
            if plots:
                _plots(preds, samples, infos, metrics, out_dir / "plots", split)
    if main:
        (out_dir / "metrics.json").write_text(json.dumps(_jsonable(all_metrics), indent=2, ensure_ascii=False), "utf-8")
    return all_metrics


def write_predictions(preds: list[Prediction], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for p in preds:
            f.write(json.dumps(_jsonable(p.to_json()), ensure_ascii=False) + "\n")


def read_predictions(path: Path) -> list[Prediction]:
    """The predictions :func:`write_predictions` wrote, one JSON line each."""
    return [Prediction(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _plots(preds, samples, infos, metrics, folder: Path, split: str) -> None:
    """Confusion matrix (ERC), predicted against true scores (MSA), mean gate weights per class."""
    from egmf.evaluation import plots

    folder.mkdir(parents=True, exist_ok=True)
    by_dataset = defaultdict(list)
    for p, s in zip(preds, samples):
        if s.label is not None:
            by_dataset[s.dataset].append((p, s))
    for name, pairs in by_dataset.items():
        info = infos[name]
        try:
            if info.task == "erc":
                cm = np.asarray(metrics[name]["confusion_matrix"])
                plots.plot_confusion_matrix(cm, list(info.labels), folder / f"{split}_{name}_confusion.png")
                groups = [str(s.label) for _, s in pairs]
            else:
                pred = np.array([float(p.prediction) for p, _ in pairs])
                true = np.array([float(s.label) for _, s in pairs])
                plots.plot_scores(pred, true, folder / f"{split}_{name}_scores.png", info.score_range)
                groups = ["negative" if float(s.label) < 0 else "non-negative" for _, s in pairs]
            gates = gate_arrays([p for p, _ in pairs])
            if gates:
                names = {key: gate_names(key, gates) for key in gates}
                plots.plot_gate_weights(gates, names, groups, folder / f"{split}_{name}_gates.png")
        except Exception as e:  # a plot must never cost a user their metrics
            logger.warning("could not plot %s %s: %s", split, name, e)


def gate_arrays(preds: list[Prediction]) -> dict[str, np.ndarray]:
    keys = preds[0].gates.keys() if preds else ()
    return {k: np.asarray([p.gates[k] for p in preds], dtype=float) for k in keys}


def gate_names(key: str, gates: dict) -> list[str]:
    """Names of a gate's columns: experts (in the order their level-1 gates appear) or modalities."""
    if key == "expert":
        return [k.split(".", 1)[1] for k in gates if k.startswith("modality.")]
    return list(MODALITIES)


def mean_gates(preds: list[Prediction]) -> dict[str, dict[str, float]]:
    """Mean gate weight per expert and per modality inside each expert, for printing."""
    gates = gate_arrays(preds)
    return {k: dict(zip(gate_names(k, gates), v.mean(axis=0).round(3).tolist())) for k, v in gates.items()}
