"""Checkpoints: atomic saves (a kill mid-save keeps or restores the previous one), clear errors for a folder that
is not a checkpoint, and the resumable state: what ``accelerator.save_state`` puts in it and that ``load_state``
gives it back.

A resume is exact only if every process's random number generators continue where they stopped: on a GPU
that includes the CUDA generators (dropout runs there). A CPU machine cannot draw on CUDA, so the CUDA
backend Accelerate saves and restores is replaced by a recording stand-in; where a GPU is present the real
one is checked too.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from accelerate.utils import RNG_STATE_NAME

from egmf.atomic import recover_folder
from egmf.data.schema import DatasetInfo
from egmf.errors import DataFormatError
from egmf.training import checkpoint as ckpt

INFOS = {"d": DatasetInfo("d", "msa", "en", score_range=(-1.0, 1.0), metric_family="sims")}


def _prepared(accelerator: Accelerator):
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = accelerator.prepare(torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5))
    model(torch.ones(3, 4, device=accelerator.device)).sum().backward()
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler


def _save(path, accelerator, model, step=7):
    weights = {k: v.detach().clone() for k, v in accelerator.unwrap_model(model).state_dict().items()}
    return ckpt.save_resumable(path, accelerator, {"step": step, "epoch": 1}, weights=weights, config={"name": "x"},
                               infos=INFOS, feature_dims={"d": {"audio": 2}}, extra_meta={"step": step})


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_load_state_continues_every_generator_where_the_save_left_it(tmp_path):
    accelerator = Accelerator(cpu=True)
    model, optimizer, scheduler = _prepared(accelerator)
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    _save(tmp_path / "last", accelerator, model)
    uninterrupted = _draws()
    lr = scheduler.get_last_lr()

    # A new process would start from the seed; scramble everything a resume must put back.
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    scheduler.step()
    optimizer.param_groups[0]["lr"] = 123.0
    assert ckpt.is_resumable(tmp_path / "last")
    state = ckpt.load_resumable(tmp_path / "last", accelerator)

    assert state == {"step": 7, "epoch": 1}
    assert _draws() == uninterrupted, "python, numpy and torch draws continue as without the interruption"
    assert scheduler.get_last_lr() == lr and optimizer.param_groups[0]["lr"] == lr[0]


def test_the_saved_state_holds_optimizer_scheduler_and_this_process_rng_but_no_model(tmp_path):
    accelerator = Accelerator(cpu=True)
    model, _, _ = _prepared(accelerator)
    last = _save(tmp_path / "last", accelerator, model)
    saved = last / ckpt.ACCELERATE_STATE
    files = sorted(p.name for p in saved.iterdir())
    assert files == ["optimizer.bin", "random_states_0.pkl", "scheduler.bin"], files
    assert not list(saved.glob("model*")), "the model (a frozen LLM, in EGMF) is never copied into the state"
    rng = torch.load(saved / f"{RNG_STATE_NAME}_0.pkl", weights_only=False)
    assert torch.equal(rng["torch_manual_seed"], torch.get_rng_state())
    assert {"random_state", "numpy_random_seed", "step"} <= set(rng)
    for name in (ckpt.WEIGHTS, ckpt.META, ckpt.CONFIG, ckpt.STATE):
        assert (last / name).is_file(), name
    assert [p.name for p in tmp_path.iterdir()] == ["last"], "published atomically: no temporary folder left"


class _FakeCuda:
    """Stands in for ``torch.cuda`` where Accelerate saves and restores the device generators."""

    def __init__(self, n_devices: int = 2):
        self.states = [torch.randint(0, 255, (16,), dtype=torch.uint8) for _ in range(n_devices)]
        self.restored = None

    def get_rng_state_all(self):
        return [s.clone() for s in self.states]

    def set_rng_state_all(self, states):
        self.restored = [s.clone() for s in states]


def test_a_gpu_resume_gets_back_the_cuda_generators_of_every_device(tmp_path, monkeypatch):
    accelerator = Accelerator(cpu=True)
    model, _, _ = _prepared(accelerator)
    cuda = _FakeCuda()
    monkeypatch.setattr("accelerate.checkpointing.get_torch_accelerator_backend", lambda *a, **k: ("cuda", cuda))
    _save(tmp_path / "last", accelerator, model)
    rng = torch.load(tmp_path / "last" / ckpt.ACCELERATE_STATE / f"{RNG_STATE_NAME}_0.pkl", weights_only=False)
    assert [s.tolist() for s in rng["torch_cuda_manual_seed"]] == [s.tolist() for s in cuda.states]

    ckpt.load_resumable(tmp_path / "last", accelerator)
    assert cuda.restored is not None, "load_state restored the CUDA generators"
    assert [s.tolist() for s in cuda.restored] == [s.tolist() for s in cuda.states]


def test_each_process_saves_and_loads_its_own_rng_file(tmp_path, monkeypatch):
    # Under N processes every rank writes random_states_<rank>.pkl into the one shared folder (the two-process
    # run in test_resume_and_processes checks both files on disk); here rank 1 of a run is imitated.
    accelerator = Accelerator(cpu=True)
    model, _, _ = _prepared(accelerator)
    monkeypatch.setattr(accelerator.state, "process_index", 1)
    torch.manual_seed(11)
    _save(tmp_path / "last", accelerator, model)
    after_save = torch.rand(2)
    assert (tmp_path / "last" / ckpt.ACCELERATE_STATE / f"{RNG_STATE_NAME}_1.pkl").is_file()
    torch.manual_seed(0)
    ckpt.load_resumable(tmp_path / "last", accelerator)
    assert torch.equal(torch.rand(2), after_save)


def test_a_resume_with_more_processes_than_saved_says_the_rng_restarts(tmp_path, monkeypatch, caplog):
    accelerator = Accelerator(cpu=True)
    model, _, _ = _prepared(accelerator)
    _save(tmp_path / "last", accelerator, model)
    monkeypatch.setattr(accelerator.state, "process_index", 3)
    with caplog.at_level("WARNING"):
        ckpt.load_resumable(tmp_path / "last", accelerator)
    assert "no RNG state for process 3" in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_real_cuda_generators_are_saved_and_restored(tmp_path):
    accelerator = Accelerator()
    model, _, _ = _prepared(accelerator)
    torch.cuda.manual_seed_all(3)
    _save(tmp_path / "last", accelerator, model)
    uninterrupted = torch.rand(4, device="cuda").tolist()
    torch.cuda.manual_seed_all(77)
    ckpt.load_resumable(tmp_path / "last", accelerator)
    assert torch.rand(4, device="cuda").tolist() == uninterrupted


def test_an_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    infos = INFOS
    target = tmp_path / "best"
    ckpt.save_checkpoint(target, {"w": torch.ones(3)}, {"name": "x"}, infos, {"d": {"audio": 2}})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(ckpt, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(target, {"w": torch.zeros(3)}, {"name": "x"}, infos, {"d": {"audio": 2}})
    assert torch.equal(ckpt.load_weights(target)["w"], torch.ones(3))
    assert sorted(os.listdir(tmp_path)) == ["best"], "no temporary folder is left behind"
    meta, loaded, dims = ckpt.read_meta(target)
    assert loaded == infos and dims == {"d": {"audio": 2}}


def _kill_between_the_renames(monkeypatch):
    """Make the next save die after moving the previous checkpoint aside, before renaming the new one in."""
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the renames")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def test_a_save_killed_between_its_renames_is_recovered(tmp_path, monkeypatch):
    infos = INFOS
    target = tmp_path / "last"
    ckpt.save_checkpoint(target, {"w": torch.ones(3)}, {"name": "x"}, infos, {"d": {"audio": 2}})
    with monkeypatch.context() as m:
        _kill_between_the_renames(m)
        with pytest.raises(KeyboardInterrupt):
            ckpt.save_checkpoint(target, {"w": torch.zeros(3)}, {"name": "x"}, infos, {"d": {"audio": 2}})
    assert not target.exists() and [p.name for p in tmp_path.iterdir()][0].startswith(".last.old-")

    assert "restored" in recover_folder(target)
    assert torch.equal(ckpt.load_weights(target)["w"], torch.ones(3)), "the previous, complete checkpoint is back"
    assert sorted(os.listdir(tmp_path)) == ["last"]
    assert recover_folder(target) is None, "nothing to do the second time"
    assert recover_folder(tmp_path / "missing" / "last") is None


def test_a_folder_that_is_not_a_checkpoint_is_named_in_the_error(tmp_path):
    with pytest.raises(DataFormatError, match=rf"{tmp_path}: checkpoint: expected a folder holding trainable.safetensors"):
        ckpt.read_meta(tmp_path)
    (tmp_path / ckpt.META).write_text("{}")
    (tmp_path / ckpt.WEIGHTS).write_bytes(b"\x00\x01truncated")
    with pytest.raises(DataFormatError, match="trainable.safetensors: safetensors: expected a complete safetensors file"):
        ckpt.load_weights(tmp_path)


@pytest.mark.parametrize("saved, expected", [({}, "minilm"), ({"sentence_encoder": "auto"}, "auto")])
def test_a_checkpoint_saved_before_sentence_encoder_keeps_minilm(tmp_path, saved, expected):
    """Models saved before ``model.sentence_encoder`` read MiniLM vectors in every language: keep feeding them so."""
    from egmf.config import config_from_dict
    from egmf.model.registry import build_model
    from egmf.typed_config import to_dict

    model_cfg = {"name": "late_fusion", "baseline": {"hidden": 8, "layers": 1}, **saved}
    cfg = to_dict(config_from_dict({"data": {"datasets": [{"name": "custom", "path": "x"}]}, "model": model_cfg}))
    if not saved:
        del cfg["model"]["sentence_encoder"]
    dims = {"d": {"text": 0, "audio": 2, "vision": 0}}
    net = build_model(config_from_dict(cfg).model, INFOS, dims)
    ckpt.save_checkpoint(tmp_path / "best", net.trainable_state_dict(), cfg, INFOS, dims)
    _, loaded, _ = ckpt.load_model(tmp_path / "best")
    assert loaded.model.sentence_encoder == expected
