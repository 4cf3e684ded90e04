"""Run configs (egmf.config): every shipped YAML loads, overrides apply, and a bad key or value names the
valid choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from egmf.config import RunConfig, config_from_dict, load_config, save_config
from egmf.errors import ConfigError
from egmf.typed_config import read_yaml, to_dict


ROOT = Path(__file__).parents[1] / "configs"
# Run configs everywhere under configs/ except configs/accelerate/ (launcher configs for `accelerate launch`).
CONFIGS = sorted(p for p in ROOT.rglob("*.yaml") if "accelerate" not in p.relative_to(ROOT).parts)
ACCELERATE = sorted((ROOT / "accelerate").glob("*.yaml"))
BASE = ["data.datasets=[{name: meld, path: somewhere}]"]


def test_configs_folder_is_found():
    assert {p.stem for p in CONFIGS} >= {"meld", "cherma", "mosei", "simsv2", "mosi", "sims"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_round_trips(path, tmp_path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig) and cfg.data.datasets
    save_config(cfg, tmp_path / "saved.yaml")
    again = load_config(tmp_path / "saved.yaml")
    assert to_dict(again) == to_dict(cfg)


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.stem)
def test_shipped_accelerate_configs_parse(path):
    data = read_yaml(path)
    assert data["distributed_type"] == "DEEPSPEED" and data["deepspeed_config"]["zero_stage"] == 2


def test_overrides_reach_nested_fields_and_list_items():
    cfg = load_config(
        ROOT / "meld.yaml",
        ["train.epochs=7", "model.fusion.num_pseudo_tokens=16", "model.fusion.use_local=false",
         "data.datasets.0.path=/elsewhere", "model.lora.target_modules=[q_proj, k_proj]"],
    )
    assert cfg.train.epochs == 7
    assert cfg.model.fusion.num_pseudo_tokens == 16 and cfg.model.fusion.use_local is False
    assert cfg.data.datasets[0].path == "/elsewhere"
    assert tuple(cfg.model.lora.target_modules) == ("q_proj", "k_proj")


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochz=3", "train.epochz: unknown key; valid keys: batch_size"),
        ("train.mixed_precision=fp8", "train.mixed_precision: invalid value 'fp8'; valid choices: auto, no, bf16, fp16"),
        ("train.epochs=three", "train.epochs: expected an integer, got 'three'"),
        ("train.epochs=0", "train.epochs: expected an integer >= 1, got 0"),
        ("train.warmup_ratio=1.5", "train.warmup_ratio: expected a value in [0, 1)"),
        ("eval.decoding=beam", "eval.decoding: invalid value 'beam'; valid choices: constrained, free"),
        ("model.text_source=bert", "valid choices: auto, dataset, llm, sentence, none"),
        ("data.datasets=[{name: imdb, path: x}]", "unknown dataset 'imdb'; valid choices: cherma, custom, meld"),
        ("data.max_frames={smell: 3}", "data.max_frames: unknown modality 'smell'"),
        ("data.datasets=[]", "data.datasets: expected at least one dataset entry"),
        ("train.epochs", "expected key=value"),
    ],
)
def test_bad_keys_and_values_are_refused_with_the_choices(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, BASE + [override])
    assert message in str(err.value)


def test_error_names_the_config_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  datasets: [{name: meld, path: x}]\ntrain:\n  lr_lora: -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml: train.lr_lora: expected a positive learning rate"):
        load_config(path)


def test_model_decoding_is_gone_and_an_old_saved_config_still_loads(caplog):
    """model.decoding was never read (eval.decoding decides): a new config refuses it, an old checkpoint's
    config.yaml that holds it loads with a note."""
    from egmf.config import config_from_dict

    with pytest.raises(ConfigError, match="model.decoding: unknown key; valid keys:"):
        load_config(None, BASE + ["model.decoding=free"])
    old = to_dict(load_config(None, BASE + ["eval.decoding=free"]))
    old["model"]["decoding"] = "constrained"
    with caplog.at_level("INFO", logger="egmf.config"):
        cfg = config_from_dict(old)
    assert cfg.eval.decoding == "free" and "decoding" not in to_dict(cfg)["model"]
    assert "ignoring model.decoding from an older version" in caplog.text
    assert old["model"]["decoding"] == "constrained"  # the caller's dict is left as it was
    with pytest.raises(ConfigError, match="model.bogus: unknown key"):
        config_from_dict({**old, "model": {**old["model"], "bogus": 1}})


def test_a_saved_config_without_the_fusion_head_weight_means_the_head_was_off():
    """The head became the default after configs were saved without the field: a run folder or checkpoint that
    lacks it was trained without the head, while a new config without it gets today's default."""
    from egmf.config import config_from_dict, saved_config_from_dict

    old = to_dict(load_config(None, BASE))
    del old["model"]["fusion_head_weight"]
    assert saved_config_from_dict(old).model.fusion_head_weight == 0.0
    assert "fusion_head_weight" not in old["model"]  # the caller's dict is left as it was
    assert config_from_dict(old).model.fusion_head_weight == 0.5
    kept = {**old, "model": {**old["model"], "fusion_head_weight": 0.25}}
    assert saved_config_from_dict(kept).model.fusion_head_weight == 0.25


@pytest.mark.parametrize("model", ["egmf", "late_fusion", "mult"])
def test_unset_rates_take_the_model_defaults_and_set_ones_stay(model):
    from egmf.model.registry import train_defaults

    cfg = load_config(None, BASE + [f"model.name={model}"])
    defaults = train_defaults(model)
    assert (cfg.train.lr_lora, cfg.train.lr_fusion, cfg.train.weight_decay, cfg.train.warmup_ratio) == (
        defaults.lr_lora, defaults.lr_fusion, defaults.weight_decay, defaults.warmup_ratio)
    cfg = load_config(None, BASE + [f"model.name={model}", "train.lr_fusion=0.123", "train.weight_decay=0"])
    assert cfg.train.lr_fusion == 0.123 and cfg.train.weight_decay == 0.0
    assert cfg.train.warmup_ratio == defaults.warmup_ratio
    # The saved config holds the resolved values: reloading it under another model keeps them.
    again = config_from_dict(to_dict(cfg))
    assert again.train == cfg.train


def test_an_unknown_model_is_refused_when_the_config_loads():
    with pytest.raises(ConfigError, match="model.name: unknown model 'bert'; valid choices: egmf"):
        load_config(None, BASE + ["model.name=bert"])
