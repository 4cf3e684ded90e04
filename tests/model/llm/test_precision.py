"""'auto' precision: one hardware test (``native_bf16``) decides the LLM's autocast and the trainer's mixed
precision; ``EGMF_NATIVE_BF16`` overrides it; EGMF resolves 'auto' once, when it is built."""

from __future__ import annotations

import pytest
import torch

from egmf.data.collate import collate
from egmf.errors import ConfigError
from egmf.model.egmf import EGMF
from egmf.model.llm.config import LLMConfig
from egmf.model.llm.precision import NATIVE_BF16_ENV, native_bf16, resolve_autocast, resolve_frozen_dtype
from egmf.training.trainer import resolve_precision


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("flags\t\t: fpu sse2 avx2 avx512f", False),  # avx512 without its bf16 extension: emulated
        ("flags\t\t: fpu sse2 avx512f avx512_bf16", True),
        ("flags\t\t: fpu sse2 amx_bf16 amx_tile", True),
    ],
)
def test_cpu_flags_decide_native_bf16(tmp_path, monkeypatch, flags, expected):
    monkeypatch.delenv(NATIVE_BF16_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\n{flags}\n")
    assert native_bf16(info) is expected


def test_unreadable_cpuinfo_means_no_native_bf16(tmp_path, monkeypatch):
    monkeypatch.delenv(NATIVE_BF16_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert native_bf16(tmp_path / "absent") is False


@pytest.mark.parametrize(("env", "expected"), [("0", False), ("1", True)])
def test_the_environment_overrides_the_hardware(monkeypatch, env, expected):
    monkeypatch.setenv(NATIVE_BF16_ENV, env)
    assert native_bf16() is expected
    assert resolve_autocast(LLMConfig(autocast="auto")) == ("bf16" if expected else "none")
    assert resolve_precision("auto") == ("bf16" if expected else "no")


def test_a_bad_override_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "yes")
    with pytest.raises(ConfigError, match=f"{NATIVE_BF16_ENV}: expected 0 or 1, got 'yes'"):
        native_bf16()


@pytest.mark.parametrize("setting", ["none", "bf16"])
def test_an_explicit_autocast_ignores_the_hardware(monkeypatch, setting):
    for env in ("0", "1"):
        monkeypatch.setenv(NATIVE_BF16_ENV, env)
        assert resolve_autocast(LLMConfig(autocast=setting)) == setting


def test_auto_is_the_default_and_frozen_weights_follow_the_resolved_autocast(monkeypatch):
    assert LLMConfig().autocast == "auto"
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    assert resolve_frozen_dtype(LLMConfig()) is torch.bfloat16
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    assert resolve_frozen_dtype(LLMConfig()) is None


@pytest.mark.parametrize(("env", "autocast", "frozen"), [("0", "none", torch.float32), ("1", "bf16", torch.bfloat16)])
def test_egmf_resolves_auto_once_when_built(monkeypatch, infos, dims, tiny_config, make_sample, env, autocast, frozen):
    monkeypatch.setenv(NATIVE_BF16_ENV, env)
    model = EGMF(tiny_config(llm={"autocast": "auto"}), infos, dims).eval()
    assert model.autocast == autocast
    base = next(m for n, m in model.llm.named_modules() if n.endswith("mlp.down_proj"))
    assert base.weight.dtype == frozen
    # Flipping the environment after the build changes nothing: weights and forwards stay consistent.
    monkeypatch.setenv(NATIVE_BF16_ENV, "1" if env == "0" else "0")
    preds = model.predict(collate([make_sample(0)]))
    assert len(preds) == 1 and preds[0].prediction is not None
