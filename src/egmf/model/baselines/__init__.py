"""Non-LLM baselines trained by the same trainer on the same batches: ``late_fusion`` and ``mult``.

``register()`` adds them to :data:`egmf.model.registry.MODELS`. Each builder reads ``cfg.baseline`` (a
:class:`BaselineConfig`) from the model config it gets, the default config when it has none, and
``cfg.class_weighting`` (the loss's class weights, as EGMF's). The text-only
LLM and the mean-gate EGMF are EGMF configurations and are registered with the EGMF model.
"""

from __future__ import annotations

from egmf.data.schema import DatasetInfo
from egmf.errors import ConfigError
from egmf.model.baselines.config import BaselineConfig
from egmf.model.baselines.heads import BaselineModel, TaskHeads
from egmf.model.baselines.late_fusion import LateFusionMLP
from egmf.model.baselines.mult import MulT

__all__ = ["LATE_FUSION_TRAIN", "MULT_TRAIN", "BaselineConfig", "BaselineModel", "LateFusionMLP", "MulT",
           "TaskHeads", "build_late_fusion", "build_mult", "register"]


def _baseline_config(cfg) -> BaselineConfig:
    b = getattr(cfg, "baseline", None)
    if b is None:
        return BaselineConfig()
    if not isinstance(b, BaselineConfig):
        raise ConfigError(f"model.baseline: expected a BaselineConfig, got {type(b).__name__}")
    return b


def build_late_fusion(cfg, infos: dict[str, DatasetInfo], feature_dims: dict[str, dict[str, int]]) -> LateFusionMLP:
    return LateFusionMLP(_baseline_config(cfg), infos, feature_dims, getattr(cfg, "class_weighting", "none"))


def build_mult(cfg, infos: dict[str, DatasetInfo], feature_dims: dict[str, dict[str, int]]) -> MulT:
    return MulT(_baseline_config(cfg), infos, feature_dims, getattr(cfg, "class_weighting", "none"))


# The baselines' own optimisation defaults (egmf.model.registry.TrainDefaults; a config's train.* overrides
# each): lr_fusion is their whole network's rate, chosen on MELD valid among 3e-4, 1e-3, 3e-3 by
# benchmarks/baseline_rates.py (results/baseline_rates.md; one seed, about 3 epochs at batch 8): late_fusion
# 1e-3 (valid w-F1 0.515 vs 0.505 / 0.468), mult 3e-4 (0.496 vs 0.483 / 0.470). Fields not given keep EGMF's.
LATE_FUSION_TRAIN = {"lr_fusion": 1e-3}
MULT_TRAIN = {"lr_fusion": 3e-4}


def register() -> None:
    from egmf.model.registry import TrainDefaults, register_model

    register_model("late_fusion", build_late_fusion,
                   "late-fusion MLP: per-modality mean-pool + MLP, concatenated, one head per dataset (no LLM)",
                   train_defaults=TrainDefaults(**LATE_FUSION_TRAIN))
    register_model("mult", build_mult,
                   "MulT-style cross-modal transformer (Tsai et al. 2019) with a classification/regression head "
                   "(no LLM)", train_defaults=TrainDefaults(**MULT_TRAIN))
