"""The one training loop, for every model and dataset, on Hugging Face Accelerate.

``fit`` trains one seed into ``seed_dir``: AdamW with separate learning rates for LoRA and fusion and weight
decay on weight matrices only (``optim.py``), warmup then cosine decay, gradient accumulation, clipping, bf16
where the device has it, early stopping on the *valid* split's main metric (never test), and a resumable ``last`` checkpoint every ``save_every`` steps. The
best checkpoint is reloaded at the end for the final valid/test evaluation. The same code runs on one CPU,
``accelerate launch --cpu --num_processes 2`` (gloo), or many GPUs.

Batches are length-bucketed where the model measures prompts (``sampler.py``); valid is scored on the plan of
``schedule.py``; torch uses this process's share of the cores (``train.threads``). Each batch goes through
``egmf.training.step.train_step`` (the step the benchmarks time too); resume state is
``accelerator.save_state`` (``checkpoint.save_resumable``); logs go through Accelerate's trackers
(``tracking.py``); the progress bar is ``egmf.progress`` (plain lines in a log file).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from torch.utils.data import DataLoader
from transformers import get_cosine_schedule_with_warmup

from egmf.atomic import recover_folder
from egmf.config import RunConfig, TrainConfig
from egmf.data.collate import collate
from egmf.data.schema import Sample
from egmf.errors import ConfigError
from egmf.evaluation.evaluate import predict_samples, score, selection_score
from egmf.model.llm.precision import native_bf16
from egmf.model.registry import build_model
from egmf.model.standardize import fit_input_statistics
from egmf.progress import progress
from egmf.training import checkpoint as ckpt
from egmf.training.data import SampleList, TrainingData, feature_statistics
from egmf.training.optim import build_optimizer
from egmf.training.sampler import EpochShuffle, LengthBucketSampler, ProcessShares
from egmf.training.schedule import evaluation_steps
from egmf.training.step import train_step
from egmf.training.tracking import start_trackers, stop_trackers
from egmf.typed_config import to_dict


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
    # Wall seconds of training so far, the processes before a resume included, so that a resumed run reports
    # its whole training time rather than only its last process's.
    train_seconds: float = 0.0


def resolve_precision(setting: str) -> str:
    """``auto`` picks bf16 on a GPU that supports it or a CPU with native bf16 (avx512_bf16 / AMX)."""
    if setting != "auto":
        return setting
    return "bf16" if native_bf16() else "no"


def _no_accelerator() -> bool:
    xpu = getattr(torch, "xpu", None)
    mps = getattr(torch.backends, "mps", None)
    return not (
        torch.cuda.is_available() or (xpu is not None and xpu.is_available()) or (mps is not None and mps.is_available())
    )


def resolve_threads(setting: int) -> int:
    """Torch CPU threads for this process: ``setting``, else OMP_NUM_THREADS, else its share of the cores.

    The share is the cores this process may run on (its affinity, not the machine's count) divided by the
    processes launched on this machine (``LOCAL_WORLD_SIZE``, set by torchrun / accelerate launch), so that
    two processes on two cores do not oversubscribe them.
    """
    if setting:
        return setting
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, cores // max(1, local))


def _release_state_of_other_precision(precision: str) -> None:
    """Let one process train runs of different mixed precision one after the other (a sweep, the tests).

    Accelerate keeps one state per process and refuses an Accelerator of another mixed precision. In a single
    process the old state holds nothing a new run needs, so it is reset; under a distributed launch every rank
    shares it, so a change is refused with the reason instead."""
    from accelerate.state import AcceleratorState

    if not AcceleratorState._shared_state:
        return
    state = AcceleratorState()
    if str(state.mixed_precision) == precision:
        return
    if state.num_processes > 1:
        raise ConfigError(f"train.mixed_precision: this launch already runs {state.mixed_precision!r} on "
                          f"{state.num_processes} processes; a run in it cannot switch to {precision!r}")
    AcceleratorState._reset_state(reset_partial_state=False)


def make_accelerator(cfg: RunConfig) -> Accelerator:
    precision = resolve_precision(cfg.train.mixed_precision)
    _release_state_of_other_precision(precision)
    return Accelerator(
        # Without cpu=True, Accelerate ignores torchrun's WORLD_SIZE on a machine with no accelerator and
        # every process believes it trains alone; with it, several CPU processes join over gloo.
        cpu=_no_accelerator(),
        gradient_accumulation_steps=cfg.train.grad_accum,
        mixed_precision=precision,
        # Switches (an expert off, K=1) leave some parameters without gradients on some batches.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        step_scheduler_with_optimizer=False,
    )


def fit(cfg: RunConfig, data: TrainingData, seed_dir: Path, resume: bool = False, accelerator=None):
    """Train one seed (``cfg.train.seed``) into ``seed_dir``.

    Returns ``(model, info)``: the unwrapped model holding the best checkpoint's weights, and a summary
    (best step, steps, seconds)."""
    torch.set_num_threads(resolve_threads(cfg.train.threads))
    accelerator = accelerator or make_accelerator(cfg)
    # One accelerator serves every seed of a run: forget the previous seed's prepared model and optimizer,
    # or save_state / load_state would carry them along.
    accelerator.free_memory()
    set_seed(cfg.train.seed)
    training = SeedTraining(cfg, data, seed_dir, accelerator)
    if resume:
        training.resume()
    start_trackers(accelerator, seed_dir)
    try:
        summary = training.train()
    finally:
        stop_trackers(accelerator)
    return training.raw, summary


class SeedTraining:
    """The prepared pieces of one seed's training and the loop over them (built by :func:`fit`)."""

    def __init__(self, cfg: RunConfig, data: TrainingData, seed_dir: Path, accelerator: Accelerator):
        self.cfg, self.tc, self.data, self.accelerator = cfg, cfg.train, data, accelerator
        tc = cfg.train
        model = build_model(cfg.model, data.infos, data.feature_dims)
        # What the model learns from the train split before its first step: input statistics (buffers, so
        # checkpoints carry them) and class weights of the loss (refitted whenever training starts).
        fit_input_statistics(model, feature_statistics(data.split("train")))
        if hasattr(model, "fit_class_weights"):
            model.fit_class_weights(data.split("train"))
        optimizer = build_optimizer(model, tc)
        loader, self.sampler = train_loader(model, data.split("train"), tc, accelerator.num_processes)
        self.model, self.optimizer, self.loader = accelerator.prepare(model, optimizer, loader)
        steps_per_epoch = max(1, math.ceil(len(self.loader) / tc.grad_accum))
        self.total_steps = tc.max_steps or tc.epochs * steps_per_epoch
        self.eval_steps = set(evaluation_steps(self.total_steps, tc.eval_every, tc.num_evals))
        # Prepared, so that save_state / load_state carry it (it steps once per optimiser step: see
        # make_accelerator's step_scheduler_with_optimizer=False).
        self.scheduler = accelerator.prepare(
            get_cosine_schedule_with_warmup(self.optimizer, int(tc.warmup_ratio * self.total_steps), self.total_steps)
        )
        self.raw = accelerator.unwrap_model(self.model)
        accelerator.print(
            f"training {cfg.model.name} on {accelerator.num_processes} process(es), device {accelerator.device}, "
            f"precision {accelerator.mixed_precision}, {torch.get_num_threads()} thread(s), "
            f"{type(self.sampler).__name__} batches, {self.total_steps} steps, {_evaluations(self.eval_steps)}"
        )
        self.state = TrainerState()
        self._started, self._seconds_before = time.monotonic(), 0.0
        self.last_dir, self.best_dir = seed_dir / "checkpoints" / "last", seed_dir / "checkpoints" / "best"

    # -- checkpoints -----------------------------------------------------------------------------------------

    def resume(self) -> None:
        """Continue from ``last``: weights, optimizer, scheduler, every process's RNG, and the trainer state."""
        accelerator = self.accelerator
        if accelerator.is_main_process:
            for folder in (self.last_dir, self.best_dir):
                if note := recover_folder(folder):
                    accelerator.print(note)
        accelerator.wait_for_everyone()
        if not ckpt.is_resumable(self.last_dir):
            why = "no resumable checkpoint"
            if (self.last_dir / ckpt.STATE).is_file():  # the hand-written resume state of egmf before save_state
                why = f"the checkpoint holds no {ckpt.ACCELERATE_STATE}/ (written by an older egmf)"
            accelerator.print(f"--resume: {why} at {self.last_dir}; training from step 0")
            return
        try:
            state = ckpt.load_resumable(self.last_dir, accelerator)
        except ValueError as e:
            if "parameter group" not in str(e):
                raise
            # torch refuses an optimizer state of another group layout before changing anything (e.g. one
            # written before weights and norms were split into decay / no-decay groups).
            accelerator.print(f"--resume: the checkpoint's optimizer state has other parameter groups than this "
                              f"egmf builds ({e}) at {self.last_dir}; training from step 0")
            return
        self.raw.load_trainable_state_dict(ckpt.load_weights(self.last_dir))
        self.state = TrainerState(**state)
        accelerator.print(f"resumed from {self.last_dir} at step {self.state.step} (epoch {self.state.epoch})")

    def _checkpoint(self) -> dict:
        cfg, data = self.cfg, self.data
        extra = {"step": self.state.step, "best_score": self.state.best_score, "llm": _llm_reference(cfg)}
        return {"weights": self.raw.trainable_state_dict(), "config": to_dict(cfg), "infos": data.infos,
                "feature_dims": data.feature_dims, "extra_meta": extra}

    def save_best(self) -> None:
        if self.accelerator.is_main_process:
            ckpt.save_checkpoint(self.best_dir, **self._checkpoint())

    def save_last(self) -> None:
        """The resumable checkpoint; every process takes part (each saves its own RNG states)."""
        self.state.train_seconds = self._elapsed()
        ckpt.save_resumable(self.last_dir, self.accelerator, dict(self.state.__dict__), **self._checkpoint())

    # -- evaluation ------------------------------------------------------------------------------------------

    def evaluate_valid(self) -> None:
        """Score valid, keep the best weights, count evaluations without improvement (early stopping)."""
        cfg, state, valid = self.cfg, self.state, self.data.split("valid")
        if not valid:  # nothing to select on: keep the latest weights as "best"
            self.save_best()
            return
        preds = predict_samples(self.raw, valid, cfg.eval.batch_size, cfg.eval.decoding, self.accelerator)
        metrics = score(preds, valid, self.data.infos)
        value = selection_score(metrics, self.data.infos, cfg.eval.main_metric)
        improved = value > state.best_score
        if improved:
            state.best_score, state.best_step, state.bad_evals = value, state.step, 0
            self.save_best()
        else:
            state.bad_evals += 1
        state.history.append({"step": state.step, "valid_selection": value, "valid": _scalars(metrics)})
        self.accelerator.log({"valid/selection": value, "valid/improved": improved}, step=state.step)
        self.accelerator.print(f"step {state.step}: valid {value:.4f}{' (best)' if improved else ''}")

    def _evaluate_and_check_patience(self) -> None:
        self.evaluate_valid()
        out_of_patience = self.tc.patience > 0 and self.state.bad_evals >= self.tc.patience
        self.state.done = self.state.done or out_of_patience

    # -- the loop --------------------------------------------------------------------------------------------

    def train(self) -> dict:
        """Epochs until ``total_steps``, early stopping or the time limit; then reload the best weights."""
        tc, state, accelerator = self.tc, self.state, self.accelerator
        self._started, self._seconds_before = time.monotonic(), state.train_seconds
        bar = progress(total=self.total_steps, initial=state.step, desc="train", unit="step",
                       disable=not accelerator.is_main_process)
        self.model.train()
        while not state.done and state.epoch < tc.epochs:
            self._epoch(bar)
            if not state.done:
                state.epoch += 1
                state.micro_in_epoch = 0
                if not self.eval_steps:  # once per epoch
                    self._evaluate_and_check_patience()
                self.save_last()
        bar.close()
        if not state.history or state.history[-1]["step"] != state.step:  # stopped at a step not evaluated
            self.evaluate_valid()
        state.done = True
        self.save_last()
        accelerator.wait_for_everyone()
        self.raw.load_trainable_state_dict(ckpt.load_weights(self.best_dir))
        return {"best_step": state.best_step, "steps": state.step, "train_seconds": self._elapsed()}

    def _elapsed(self) -> float:
        """Seconds this run has trained: this process's, plus those saved by the processes before a resume."""
        return round(self._seconds_before + time.monotonic() - self._started, 1)

    def _epoch(self, bar) -> None:
        """The rest of the current epoch (after a resume, the batches not yet done are skipped)."""
        tc, state, accelerator = self.tc, self.state, self.accelerator
        self.sampler.use_epoch(state.epoch)
        loader = self.loader
        batches = accelerator.skip_first_batches(loader, state.micro_in_epoch) if state.micro_in_epoch else loader
        for batch in batches:
            out = train_step(self.model, batch, self.optimizer, accelerator, self.scheduler, tc.max_grad_norm)
            state.micro_in_epoch += 1
            if not out.stepped:
                continue
            state.step += 1
            loss = accelerator.reduce(out.loss, reduction="mean").item()
            lr = self.scheduler.get_last_lr()
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr[-1]:.1e}")
            if state.step % tc.log_every == 0 or state.step == 1:
                values = {"train/epoch": state.epoch, "train/loss": loss, "train/lr_lora": lr[0]}
                accelerator.log(values, step=state.step)
            state.done = state.step >= self.total_steps or self._out_of_time()
            if state.step in self.eval_steps:
                self._evaluate_and_check_patience()
            if state.done:
                return
            if state.step % tc.save_every == 0:
                self.save_last()

    def _out_of_time(self) -> bool:
        if not self.tc.time_limit_minutes:
            return False
        late = torch.tensor(float(time.monotonic() - self._started > 60 * self.tc.time_limit_minutes))
        # Every process must stop at the same step (the next save and evaluation are collective): stop when any
        # one of them is out of time.
        return bool(self.accelerator.reduce(late.to(self.accelerator.device), reduction="sum").item() > 0)


def train_loader(
    model, samples: list[Sample], tc: TrainConfig, processes: int
) -> tuple[DataLoader, EpochShuffle | LengthBucketSampler | ProcessShares]:
    """The train split's loader and the sampler whose ``use_epoch`` picks each epoch's order.

    With ``train.length_bucketing`` and a model that can measure prompts (``prompt_length``: EGMF; the
    baselines have no prompt), batches are length-bucketed at the global batch size (``batch_size`` times the
    processes) and each process takes its share (:class:`ProcessShares`), so P processes of batch b train on
    the batches of one process of batch P * b; otherwise a seeded shuffle, batched by the loader.
    """
    length = getattr(model, "prompt_length", None) if tc.length_bucketing else None
    if length is None:
        sampler = EpochShuffle(len(samples), tc.seed)
        return DataLoader(SampleList(samples), batch_size=tc.batch_size, sampler=sampler, collate_fn=collate,
                          generator=_loader_generator(tc.seed)), sampler
    buckets = LengthBucketSampler([length(s) for s in samples], tc.batch_size * processes, tc.seed, tc.bucket_batches)
    batches = ProcessShares(buckets, processes) if processes > 1 else buckets
    return DataLoader(SampleList(samples), batch_sampler=batches, collate_fn=collate,
                      generator=_loader_generator(tc.seed)), batches


def _loader_generator(seed: int) -> torch.Generator:
    """The loader's own generator. Without one, every new iterator over the loader draws its base seed from the
    global torch RNG; a resumed run creates its iterator (``skip_first_batches``) after the saved RNG state is
    restored, so that extra draw would shift every dropout mask after the resume."""
    return torch.Generator().manual_seed(seed)


def _evaluations(steps: set[int]) -> str:
    if not steps:
        return "valid after every epoch"
    shown = sorted(steps)
    return f"valid at steps {', '.join(map(str, shown[:6]))}{', ...' if len(shown) > 6 else ''}"


def _llm_reference(cfg: RunConfig) -> str | None:
    llm = getattr(cfg.model, "llm", None)
    return getattr(llm, "backend", None)


def _scalars(metrics: dict[str, dict]) -> dict[str, dict[str, float]]:
    return {d: {k: float(v) for k, v in m.items() if isinstance(v, (int, float))} for d, m in metrics.items()}
