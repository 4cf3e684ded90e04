"""Run a model over a split and score it per dataset: the one evaluation path of train, evaluate and predict.

Under several processes each rank predicts every ``world``-th sample and the predictions are gathered back
into the split's order, so evaluation scales with the processes and the metrics never count a sample twice.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch

from egmf.data.collate import collate
from egmf.data.schema import DatasetInfo, Sample
from egmf.evaluation.metrics import compute_metrics, main_metric
from egmf.model.base import Prediction


@torch.no_grad()
def predict_samples(
    model,
    samples: list[Sample],
    batch_size: int,
    decoding: str = "constrained",
    accelerator=None,
    max_frames: dict[str, int] | None = None,
    progress: bool = False,
) -> list[Prediction]:
    """Predictions for ``samples`` in their order (``model`` is an unwrapped :class:`TaskModel`)."""
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    device = accelerator.device if accelerator else torch.device("cpu")
    mine = list(range(rank, len(samples), world))
    # Batches of similar prompt length: a left-padded batch costs its longest prompt times its rows, so
    # sorting cuts the padding the LLM reads (predictions come back in the input order regardless).
    length = getattr(model, "prompt_length", None)
    if length is not None:
        mine.sort(key=lambda i: length(samples[i]))
    was_training = model.training
    model.eval()
    out: list[tuple[int, Prediction]] = []
    batches = range(0, len(mine), batch_size)
    if progress:
        from egmf.progress import progress as bar

        batches = bar(batches, desc="predict", unit="batch", leave=False)
    for start in batches:
        idx = mine[start : start + batch_size]
        batch = collate([samples[i] for i in idx], max_frames).to(device)
        out.extend(zip(idx, model.predict(batch, decoding=decoding)))
    model.train(was_training)
    if world > 1:
        from accelerate.utils import gather_object

        out = gather_object(out)
    out.sort(key=lambda pair: pair[0])
    return [p for _, p in out]


def score(predictions: list[Prediction], samples: list[Sample], infos: dict[str, DatasetInfo]) -> dict[str, dict]:
    """Metrics per dataset: ``{dataset: {metric: value}}``; unlabelled samples are skipped."""
    preds, truths = defaultdict(list), defaultdict(list)
    for p, s in zip(predictions, samples):
        if p.id != s.id:
            raise RuntimeError(f"prediction order broke: prediction {p.id!r} against sample {s.id!r}")
        if s.label is None:
            continue
        preds[s.dataset].append(p.prediction)
        truths[s.dataset].append(s.label)
    out = {}
    for name in preds:
        info = infos[name]
        if info.task == "msa":
            out[name] = compute_metrics(info, np.asarray(preds[name], float), np.asarray(truths[name], float))
        else:
            out[name] = compute_metrics(info, list(preds[name]), list(truths[name]))
    return out


def selection_score(metrics: dict[str, dict], infos: dict[str, DatasetInfo], override: str = "") -> float:
    """One number to select checkpoints by (higher is better): the mean over datasets of each main metric,
    negated where lower is better (MAE). A NaN metric counts as the worst value."""
    values = []
    for name, m in metrics.items():
        key, mode = main_metric(infos[name], override or None)
        v = float(m[key])
        if math.isnan(v):
            v = -math.inf if mode == "max" else math.inf
        values.append(v if mode == "max" else -v)
    return float(np.mean(values)) if values else -math.inf


def baseline_predictions(train: list[Sample], samples: list[Sample], infos: dict[str, DatasetInfo]) -> list[Prediction]:
    """The trivial baselines a trained model must beat: the train split's majority label (ERC) or mean score (MSA)."""
    per_dataset: dict[str, str | float] = {}
    for name, info in infos.items():
        labels = [s.label for s in train if s.dataset == name and s.label is not None]
        if not labels:
            continue
        if info.task == "erc":
            values, counts = np.unique(np.asarray(labels, dtype=object).astype(str), return_counts=True)
            per_dataset[name] = str(values[int(np.argmax(counts))])
        else:
            per_dataset[name] = float(np.mean(np.asarray(labels, dtype=float)))
    return [
        Prediction(id=s.id, dataset=s.dataset, task=s.task, prediction=per_dataset[s.dataset])
        for s in samples
        if s.dataset in per_dataset
    ]
