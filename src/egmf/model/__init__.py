"""The EGMF model: modality encoders, experts, hierarchical gating, projector, the LLM bridge."""
