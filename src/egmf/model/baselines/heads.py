"""Task heads (one per dataset) and the :class:`~egmf.model.base.TaskModel` glue both baselines share.

A subclass of :class:`BaselineModel` only says how a batch becomes one vector per sample (``encode``);
this module turns that vector into a loss and into predictions. ERC: cross-entropy over the sample's own
dataset's labels. MSA: a linear score (``centre + half_width * raw``, so the initial outputs suit any
range), trained with L1 as MMSA does, or MSE, and clamped into the dataset's range when predicting (as
MMSA evaluates); not a ``tanh`` squash, whose gradient vanishes near the range ends where the extreme labels
sit. A batch may mix datasets; each sample counts once in the mean loss whatever its task.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from egmf.data.collate import Batch
from egmf.data.schema import DatasetInfo, Sample
from egmf.errors import ConfigError, DataFormatError
from egmf.model.base import ModelOutput, Prediction
from egmf.model.baselines.config import BaselineConfig
from egmf.model.baselines.inputs import group_by_dataset, module_key
from egmf.model.class_weights import check_class_weighting, fit_class_weights, sample_weights


class TaskHeads(nn.Module):
    """``Linear(hidden, n_labels)`` for an ERC dataset, ``Linear(hidden, 1)`` + range squash for MSA."""

    def __init__(self, infos: dict[str, DatasetInfo], hidden: int, regression_loss: str = "l1"):
        super().__init__()
        self.infos = dict(infos)
        self.regression_loss = regression_loss
        keys = {module_key(n) for n in infos}
        if len(keys) != len(infos):
            raise ConfigError(f"baseline: dataset names collide once made module keys: {sorted(infos)}")
        self.heads = nn.ModuleDict(
            {module_key(n): nn.Linear(hidden, len(i.labels) if i.task == "erc" else 1) for n, i in infos.items()}
        )
        self._label_index = {n: {w: k for k, w in enumerate(i.labels)} for n, i in infos.items() if i.task == "erc"}

    def init_small(self, std: float = 0.01) -> None:
        """Output weights ~ N(0, std), biases 0: near-uniform logits (and centred scores) at init that still
        depend on the sample, so no class wins every sample before training has said anything."""
        for head in self.heads.values():
            nn.init.normal_(head.weight, std=std)
            nn.init.zeros_(head.bias)

    def outputs(self, h: torch.Tensor, name: str, clamp: bool = False) -> torch.Tensor:
        """ERC: logits ``[n, n_labels]``; MSA: scores ``[n]``, clamped into the dataset's range if ``clamp``."""
        info = self.infos[name]
        raw = self.heads[module_key(name)](h)
        if info.task == "erc":
            return raw
        lo, hi = info.score_range
        score = (lo + hi) / 2 + (hi - lo) / 2 * raw.squeeze(-1)
        return score.clamp(lo, hi) if clamp else score

    def _target(self, s: Sample, name: str) -> float | int | None:
        if s.label is None:
            return None
        info = self.infos[name]
        if info.task == "erc":
            if s.label not in self._label_index[name]:
                raise DataFormatError(f"dataset {name}", f"label of sample {s.id!r}", f"one of {list(info.labels)}",
                                      s.label)
            return self._label_index[name][s.label]
        y = float(s.label)
        if not math.isfinite(y):
            raise DataFormatError(f"dataset {name}", f"label of sample {s.id!r}", "a finite score", s.label)
        return y

    def loss(self, h: torch.Tensor, batch: Batch, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Mean per-sample loss over the labelled samples of ``batch`` (unlabelled ones are skipped); ERC samples
        times their ``weights`` (``[B]``, class weights; none = 1)."""
        total, count = h.new_zeros(()), 0
        for name, rows in group_by_dataset(batch, self.infos).items():
            targets = [(r, self._target(batch.samples[r], name)) for r in rows]
            targets = [(r, t) for r, t in targets if t is not None]
            if not targets:
                continue
            idx = torch.tensor([r for r, _ in targets], device=h.device)
            out = self.outputs(h[idx], name)
            if self.infos[name].task == "erc":
                y = torch.tensor([t for _, t in targets], device=h.device, dtype=torch.long)
                ce = F.cross_entropy(out, y, reduction="none")
                total = total + (ce if weights is None else ce * weights[idx].to(ce.dtype)).sum()
            else:
                y = torch.tensor([t for _, t in targets], device=h.device, dtype=out.dtype)
                fn = F.l1_loss if self.regression_loss == "l1" else F.mse_loss
                total = total + fn(out, y, reduction="sum")
            count += len(targets)
        if count == 0:
            raise DataFormatError("batch", "label", "at least one labelled sample to compute a loss", "none")
        return total / count

    def predict(self, h: torch.Tensor, batch: Batch) -> list[Prediction]:
        preds: list[Prediction | None] = [None] * len(batch)
        for name, rows in group_by_dataset(batch, self.infos).items():
            info = self.infos[name]
            out = self.outputs(h[torch.tensor(rows, device=h.device)], name, clamp=True).float().cpu()
            for j, r in enumerate(rows):
                s = batch.samples[r]
                if info.task == "erc":
                    p = torch.softmax(out[j], -1).tolist()
                    probs = dict(zip(info.labels, p))
                    label = info.labels[int(out[j].argmax())]
                    preds[r] = Prediction(id=s.id, dataset=name, task="erc", prediction=label, probabilities=probs)
                else:
                    v = float(out[j])
                    preds[r] = Prediction(id=s.id, dataset=name, task="msa", prediction=v, score=v)
        return preds  # type: ignore[return-value]


class BaselineModel(nn.Module):
    """A non-LLM model honouring ``TaskModel``; subclasses implement ``encode(batch) -> [B, hidden]``."""

    def __init__(self, cfg: BaselineConfig, infos: dict[str, DatasetInfo], feature_dims: dict[str, dict[str, int]],
                 class_weighting: str = "none"):
        super().__init__()
        missing = sorted(set(infos) - set(feature_dims))
        if missing:
            raise ConfigError(
                f"baseline: no feature dims for dataset(s) {missing}; feature_dims has {sorted(feature_dims)}"
            )
        self.cfg = cfg
        self.heads = TaskHeads(infos, cfg.hidden, cfg.regression_loss)
        self.class_weighting = check_class_weighting(class_weighting)
        # {dataset: {label: weight}} (model.class_weighting), set by fit_class_weights from the train split before
        # training; not in checkpoints: it shapes the training loss only.
        self.class_weights: dict[str, dict[str, float]] = {}

    def fit_class_weights(self, samples: list[Sample]) -> None:
        """Set the ERC loss weights from the label counts of ``samples`` (the train split)."""
        self.class_weights = fit_class_weights(self.heads.infos, samples, self.class_weighting)

    def encode(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, batch: Batch) -> ModelOutput:
        batch = batch.to(self._device())
        weights = sample_weights(self.class_weights, batch.samples, self._device()) if self.class_weights else None
        loss = self.heads.loss(self.encode(batch), batch, weights)
        return ModelOutput(loss=loss, task_loss=loss, gates={})

    @torch.no_grad()
    def predict(self, batch: Batch, decoding: str = "constrained") -> list[Prediction]:
        """Label + probabilities (ERC) or score (MSA) per sample; ``decoding`` has no meaning here."""
        was_training = self.training
        self.eval()  # inference is deterministic whatever mode the caller left the model in
        try:
            batch = batch.to(self._device())
            return self.heads.predict(self.encode(batch), batch)
        finally:
            self.train(was_training)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"fusion": [p for p in self.parameters() if p.requires_grad]}

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                  if k in state and state[k].shape != v.shape]
        if missing or unexpected or shapes:
            raise ConfigError(
                f"{type(self).__name__}: checkpoint does not match this model (was it trained with other datasets "
                f"or settings?); missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatches {shapes[:5]}"
            )
        self.load_state_dict(state, strict=True)


class ResidualMLP(nn.Module):
    """``Linear(d_in, hidden)`` then ``layers`` pre-norm residual blocks ``x + FF(LayerNorm(x))`` and a final
    LayerNorm: the gradient reaches the input through the identity paths at any depth (a plain Linear/ReLU stack
    of five layers passes about 1/30 of what MulT's residual stack does at init), and the output has unit scale."""

    def __init__(self, d_in: int, hidden: int, layers: int, dropout: float, ff_mult: int = 2):
        super().__init__()
        self.inp = nn.Linear(d_in, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, ff_mult * hidden), nn.GELU(), nn.Dropout(dropout),
                          nn.Linear(ff_mult * hidden, hidden), nn.Dropout(dropout))
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        for block in self.blocks:
            x = x + block(x)
        return self.norm(x)
