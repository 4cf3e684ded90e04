"""The EGMF expert fusion: modality encoders -> three experts -> hierarchical gating -> K pseudo tokens.

Public API::

    from egmf.model.fusion import FusionConfig, ExpertFusion

    fusion = ExpertFusion(cfg: FusionConfig, feature_dims: dict[str, dict[str, int]], out_dim: int,
                          target_norm: float | None = None)
    out = fusion(features, masks, sources)   # -> egmf.model.base.FusionOutput
    out = fusion.forward_batch(batch)        # same, from an egmf.data.collate.Batch

``features[m]`` is ``[B, T, D]`` (zero padded in time and feature dim), ``masks[m]`` ``[B, T]`` bool,
``sources`` the dataset name of each sample (it selects the input projection). ``out.tokens`` is
``[B, K, out_dim]``; ``out.gates`` holds ``"expert"`` ``[B, n_active]`` and ``"modality.<expert>"`` ``[B, 3]``.
"""

from egmf.model.fusion.config import EXPERTS, MISSING_MODALITY, FusionConfig
from egmf.model.fusion.encoders import ModalityEncoders, masked_mean
from egmf.model.fusion.fusion import ExpertFusion

__all__ = ["EXPERTS", "MISSING_MODALITY", "ExpertFusion", "FusionConfig", "ModalityEncoders", "masked_mean"]
