"""The LLM side of EGMF: backends (``load_llm``), LoRA wrapping, prompt templates and decoding.

Importing this package loads no model; ``load_llm(LLMConfig(...))`` does.
"""

from egmf.model.llm.config import LLMConfig, LoraSettings, PromptConfig

__all__ = ["LLMConfig", "LoraSettings", "PromptConfig"]
