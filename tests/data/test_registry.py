"""The dataset registry (egmf.data.registry): every built-in name, one entry point, clear refusals."""

from __future__ import annotations

import pytest

from egmf.data import registry
from egmf.data.registry import DATASETS, dataset_names, load_dataset, register_dataset
from egmf.errors import ConfigError, DataFormatError


def test_builtin_names_are_registered_by_the_explicit_call():
    assert dataset_names() == sorted(DATASETS)
    assert {"meld", "cherma", "custom", "mosi", "mosei", "sims", "simsv2"} <= set(dataset_names())


def test_unknown_name_lists_the_valid_ones_and_a_missing_path_is_named(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_dataset("imdb", tmp_path)
    assert str(e.value) == f"unknown dataset 'imdb'; valid choices: {', '.join(dataset_names())}"
    with pytest.raises(DataFormatError, match=r"nowhere: path: expected an existing file or folder"):
        load_dataset("meld", tmp_path / "nowhere")


def test_a_name_registered_twice_with_another_loader_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "DATASETS", dict(DATASETS))  # leave the real registry as it was

    def loader(path, **options):
        return ("loaded", path, options)

    register_dataset("mine", loader, "my data")
    register_dataset("mine", loader, "my data")  # the same loader again: idempotent
    assert registry.DATASETS["mine"].description == "my data"
    with pytest.raises(ValueError, match="dataset 'mine' is already registered"):
        register_dataset("mine", lambda path: None)


def test_load_dataset_passes_options_to_the_registered_loader(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "DATASETS", dict(DATASETS))
    register_dataset("mine", lambda path, **options: ("loaded", path, options))
    assert load_dataset("mine", str(tmp_path), nan="zero") == ("loaded", tmp_path, {"nan": "zero"})
