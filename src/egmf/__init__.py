"""EGMF: expert-guided multimodal fusion with LLMs for emotion recognition and sentiment analysis.

The package follows the data flow:
    data -> features -> model (encoders, experts, gating, LLM bridge) -> evaluation -> training
         -> experiments (a run over seeds, ablate, transfer) -> cli
Imports follow that order only (an import-linter contract in pyproject.toml, checked by the tests).
Importing the package is cheap: heavy libraries (torch, transformers) load in the modules that use them.
"""

__version__ = "0.1.0"
