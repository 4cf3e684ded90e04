"""The one training loop, for every model and dataset, on Hugging Face Accelerate.

``fit`` trains one seed into ``seed_dir``: AdamW with separate learning rates for LoRA and fusion, warmup then
cosine decay, gradient accumulation, clipping, bf16 where the device has it, early stopping on the *valid*
split's main metric (never test), and a resumable ``last`` checkpoint every ``save_every`` steps. The
best checkpoint is reloaded at the end for the final valid/test evaluation. The same code runs on one CPU,
``accelerate launch --cpu --num_processes 2`` (gloo), or many GPUs.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from torch.utils.data import DataLoader, Sampler
from transformers import get_cosine_schedule_with_warmup

from egmf.config import RunConfig
from egmf.data.collate import collate
from egmf.evaluation.evaluate import predict_samples, score, selection_score
from egmf.model.registry import build_model
from egmf.training import checkpoint as ckpt
from egmf.training.data import SampleList, TrainingData
from egmf.typed_config import to_dict

logger = logging.getLogger(__name__)


class EpochShuffle(Sampler[int]):
    """A permutation drawn from ``seed + epoch``: the order of any epoch can be replayed after a resume.

    The method is deliberately not called ``set_epoch``: Accelerate calls ``set_epoch`` with its own count
    of iterations over a loader, which restarts at 0 for the loader that skips the batches done before a
    resume, and would replay the wrong epoch's order.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng(self.seed + self.epoch).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


@dataclass
class TrainerState:
    """Where training stands; saved with the ``last`` checkpoint so ``--resume`` continues exactly."""

    step: int = 0
    epoch: int = 0
    micro_in_epoch: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    bad_evals: int = 0
    done: bool = False
    history: list[dict] = field(default_factory=list)


def resolve_precision(setting: str) -> str:
    """``auto`` picks bf16 on a GPU that supports it or a CPU with native bf16 (avx512_bf16 / AMX)."""
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "no"
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "no"


def _no_accelerator() -> bool:
    xpu = getattr(torch, "xpu", None)
    mps = getattr(torch.backends, "mps", None)
    return not (
        torch.cuda.is_available() or (xpu is not None and xpu.is_available()) or (mps is not None and mps.is_available())
    )


def make_accelerator(cfg: RunConfig) -> Accelerator:
    return Accelerator(
        # Without cpu=True, Accelerate ignores torchrun's WORLD_SIZE on a machine with no accelerator and
        # every process believes it trains alone; with it, several CPU processes join over gloo.
        cpu=_no_accelerator(),
        gradient_accumulation_steps=cfg.train.grad_accum,
        mixed_precision=resolve_precision(cfg.train.mixed_precision),
        # Switches (an expert off, K=1) leave some parameters without gradients on some batches.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        step_scheduler_with_optimizer=False,
    )


def fit(cfg: RunConfig, data: TrainingData, seed_dir: Path, resume: bool = False, accelerator=None):
    """Train one seed (``cfg.train.seed``) into ``seed_dir``.

    Returns ``(model, info)``: the unwrapped model holding the best checkpoint's weights, and a summary
    (best step, steps, seconds)."""
    accelerator = accelerator or make_accelerator(cfg)
    tc = cfg.train
    set_seed(tc.seed)
    model = build_model(cfg.model, data.infos, data.feature_dims)
    groups = model.param_groups()
    param_groups = [
        {"params": ps, "lr": tc.lr_lora if name == "lora" else tc.lr_fusion, "name": name}
        for name, ps in groups.items()
        if ps
    ]
    optimizer = torch.optim.AdamW(param_groups, weight_decay=tc.weight_decay)
    sampler = EpochShuffle(len(data.split("train")), tc.seed)
    loader = DataLoader(SampleList(data.split("train")), batch_size=tc.batch_size, sampler=sampler, collate_fn=collate)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = max(1, math.ceil(len(loader) / tc.grad_accum))
    total_steps = tc.max_steps or tc.epochs * steps_per_epoch
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(tc.warmup_ratio * total_steps), total_steps)
    raw = accelerator.unwrap_model(model)
    accelerator.print(
        f"training {cfg.model.name} on {accelerator.num_processes} process(es), device {accelerator.device}, "
        f"precision {accelerator.mixed_precision}, {total_steps} steps"
    )
    trainable = [p for g in param_groups for p in g["params"]]

    state = TrainerState()
    last_dir, best_dir = seed_dir / "checkpoints" / "last", seed_dir / "checkpoints" / "best"
    if resume and accelerator.is_main_process:
        for folder in (last_dir, best_dir):
            if note := ckpt.recover_interrupted_save(folder):
                accelerator.print(note)
    accelerator.wait_for_everyone()
    if resume and (last_dir / ckpt.STATE).is_file():
        raw.load_trainable_state_dict(ckpt.load_weights(last_dir))
        optimizer.load_state_dict(ckpt.load_optimizer_state(last_dir))
        saved = ckpt.load_trainer_state(last_dir)
        scheduler.load_state_dict(saved.pop("scheduler"))
        ckpt.set_rng_state(saved.pop("rng"))
        state = TrainerState(**saved)
        accelerator.print(f"resumed from {last_dir} at step {state.step} (epoch {state.epoch})")
    elif resume:
        accelerator.print(f"--resume: no resumable checkpoint at {last_dir}; training from step 0")

    def save(path: Path, resumable: bool) -> None:
        if not accelerator.is_main_process:
            return
        extra = {"step": state.step, "best_score": state.best_score, "llm": _llm_reference(cfg)}
        trainer_state = None
        if resumable:
            trainer_state = {**state.__dict__, "scheduler": scheduler.state_dict(), "rng": ckpt.rng_state()}
        ckpt.save_checkpoint(
            path, raw.trainable_state_dict(), to_dict(cfg), data.infos, data.feature_dims, extra,
            optimizer.state_dict() if resumable else None, trainer_state,
        )

    def evaluate_valid() -> None:
        valid = data.split("valid")
        if not valid:  # nothing to select on: keep the latest weights as "best"
            save(best_dir, resumable=False)
            return
        preds = predict_samples(raw, valid, cfg.eval.batch_size, cfg.eval.decoding, accelerator)
        metrics = score(preds, valid, data.infos)
        value = selection_score(metrics, data.infos, cfg.eval.main_metric)
        improved = value > state.best_score
        if improved:
            state.best_score, state.best_step, state.bad_evals = value, state.step, 0
            save(best_dir, resumable=False)
        else:
            state.bad_evals += 1
        state.history.append({"step": state.step, "valid_selection": value, "valid": _scalars(metrics)})
        log.write({"step": state.step, "valid_selection": value, "improved": improved})
        accelerator.print(f"step {state.step}: valid {value:.4f}{' (best)' if improved else ''}")

    log = RunLog(seed_dir, accelerator.is_main_process)
    started = time.monotonic()
    progress = _progress(accelerator, total_steps, state.step)
    model.train()
    while not state.done and state.epoch < tc.epochs:
        sampler.use_epoch(state.epoch)
        batches = accelerator.skip_first_batches(loader, state.micro_in_epoch) if state.micro_in_epoch else loader
        for batch in batches:
            with accelerator.accumulate(model):
                out = model(batch)
                accelerator.backward(out.loss)
                if accelerator.sync_gradients and tc.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(trainable, tc.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            state.micro_in_epoch += 1
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            state.step += 1
            loss = accelerator.reduce(out.loss.detach(), reduction="mean").item()
            progress.update(1)
            progress.set_postfix(loss=f"{loss:.3f}", lr=f"{scheduler.get_last_lr()[-1]:.1e}")
            if state.step % tc.log_every == 0 or state.step == 1:
                log.scalar("train/loss", loss, state.step)
                log.scalar("train/lr_lora", scheduler.get_last_lr()[0], state.step)
                log.write({"step": state.step, "epoch": state.epoch, "loss": loss})
            out_of_time = tc.time_limit_minutes and time.monotonic() - started > 60 * tc.time_limit_minutes
            state.done = state.step >= total_steps or bool(out_of_time)
            if tc.eval_every and state.step % tc.eval_every == 0 and not state.done:
                evaluate_valid()
                state.done = tc.patience > 0 and state.bad_evals >= tc.patience
            if state.done:
                break
            if state.step % tc.save_every == 0:
                save(last_dir, resumable=True)
        if not state.done:
            state.epoch += 1
            state.micro_in_epoch = 0
            if not tc.eval_every:
                evaluate_valid()
                state.done = tc.patience > 0 and state.bad_evals >= tc.patience
            save(last_dir, resumable=True)
    progress.close()
    if not state.history or state.history[-1]["step"] != state.step:
        evaluate_valid()
    state.done = True
    save(last_dir, resumable=True)
    accelerator.wait_for_everyone()
    raw.load_trainable_state_dict(ckpt.load_weights(best_dir))
    result = {"best_step": state.best_step, "steps": state.step, "train_seconds": round(time.monotonic() - started, 1)}
    log.close()
    return raw, result


def _llm_reference(cfg: RunConfig) -> str | None:
    llm = getattr(cfg.model, "llm", None)
    return getattr(llm, "backend", None)


def _scalars(metrics: dict[str, dict]) -> dict[str, dict[str, float]]:
    return {d: {k: float(v) for k, v in m.items() if isinstance(v, (int, float))} for d, m in metrics.items()}


def _progress(accelerator, total: int, done: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc="train", unit="step", disable=not accelerator.is_main_process)


class RunLog:
    """TensorBoard scalars plus a JSON-lines log, written by the main process only."""

    def __init__(self, folder: Path, active: bool):
        self.active = active
        self.writer = None
        if not active:
            return
        folder.mkdir(parents=True, exist_ok=True)
        self.file = (folder / "train_log.jsonl").open("a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder / "tensorboard"))
        except ImportError:  # tensorboard is a dependency; a trimmed install still trains
            logger.warning("tensorboard is not installed: no TensorBoard logs")

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def write(self, record: dict) -> None:
        if self.active:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.active:
            self.file.close()
            if self.writer is not None:
                self.writer.close()
