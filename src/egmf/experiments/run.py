"""A run: one config, one or more seeds, one folder that reproduces every number in it.

    runs/<name>/
      config.yaml                 the resolved config (egmf train --config runs/<name>/config.yaml redoes it)
      results_<dataset>.csv       test metrics per seed, then mean and std (as MMSA reports 5 seeds)
      seed_<s>/
        checkpoints/best/         trainable weights + config + meta (egmf evaluate / predict read this)
        checkpoints/last/         the same + optimizer and trainer state (egmf train --resume)
        metrics.json              valid and test metrics of the best checkpoint, with the trivial baseline
        predictions_{valid,test}.jsonl, plots/*.png, tensorboard/, train_log.jsonl

An existing run folder is never overwritten: ``--resume`` continues it, otherwise choose another name.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from egmf.atomic import write_json_atomic
from egmf.config import RunConfig, save_config
from egmf.errors import RunFolderExistsError
from egmf.evaluation.aggregate import write_results_csv
from egmf.evaluation.report import evaluate_splits
from egmf.experiments.result import RunResult, SeedResult
from egmf.training.data import load_training_data
from egmf.training.trainer import fit, make_accelerator
from egmf.typed_config import to_dict

DEFAULT_SEEDS = (1111,)


def prepare_run_dir(cfg: RunConfig, resume: bool) -> Path:
    """Create the run folder, or check that ``--resume`` continues the same config."""
    run_dir = cfg.run_dir
    saved = run_dir / "config.yaml"
    if run_dir.exists() and any(run_dir.iterdir()):
        if not resume:
            raise RunFolderExistsError(
                f"{run_dir}: run folder exists and holds results; pass --resume to continue it, "
                f"or choose another --name / --output"
            )
        if saved.is_file():
            from egmf.typed_config import read_yaml

            before, now = _comparable(_resolved(read_yaml(saved))), _comparable(to_dict(cfg))
            if before != now:
                changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
                raise RunFolderExistsError(
                    f"{saved}: --resume with a different config (changed: {', '.join(changed)}); "
                    "resume with the saved config or start a new run"
                )
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, saved)
    return run_dir


def _resolved(saved: dict) -> dict:
    """A saved config with every field it lacks at its default (or, where the default changed since, at the
    value the run was made with: :data:`egmf.config.ABSENT_MEANS`): a field added to the config since the run
    was made, left at the value that keeps the old behaviour, is no change. As saved if it no longer validates."""
    from egmf.config import saved_config_from_dict
    from egmf.errors import ConfigError

    try:
        return to_dict(saved_config_from_dict(saved))
    except (ConfigError, TypeError, ValueError):
        return saved


def _comparable(d: dict, prefix: str = "") -> dict:
    """Flattened config without the keys that may differ on resume (seed is per seed folder)."""
    flat = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "options":
            flat.update(_comparable(v, key + "."))
        elif key not in ("train.seed",):
            flat[key] = v
    return flat


def run(cfg: RunConfig, seeds: list[int] | tuple[int, ...] = (), resume: bool = False) -> RunResult:
    """Train and evaluate every seed (a seed finished before an interruption is read back)."""
    seeds = list(seeds) or [cfg.train.seed]
    accelerator = make_accelerator(cfg)
    run_dir = cfg.run_dir
    if accelerator.is_main_process:
        prepare_run_dir(cfg, resume)
    accelerator.wait_for_everyone()
    per_seed: dict[int, SeedResult] = {}
    for seed in seeds:
        seed_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))
        seed_dir = run_dir / f"seed_{seed}"
        done = seed_dir / "metrics.json"
        if resume and done.is_file():  # finished before the interruption
            per_seed[seed] = SeedResult.read(seed, done)
            continue
        data = load_training_data(cfg.data, cfg.model.text_source, cfg.model.sentence_encoder)
        model, info = fit(seed_cfg, data, seed_dir, resume=resume, accelerator=accelerator)
        metrics = evaluate_splits(
            model,
            {"valid": data.split("valid"), "test": data.split("test")},
            data.infos,
            seed_dir,
            cfg.eval.batch_size,
            cfg.eval.decoding,
            accelerator,
            plots=cfg.eval.plots,
            train=data.split("train"),
        )
        metrics["training"] = info
        if accelerator.is_main_process:
            write_json_atomic(done, metrics, default=float)
        per_seed[seed] = SeedResult(seed, metrics)
    result = RunResult(run_dir, per_seed, main_process=accelerator.is_main_process)
    if result.main_process:
        write_summary(result)
    return result


def write_summary(result: RunResult) -> None:
    """``results_<dataset>.csv``: one row per seed (its scalar test metrics), then mean and std."""
    for dataset, by_seed in ((d, result.scores_by_seed(d)) for d in result.datasets):
        scalars = {seed: {k: v for k, v in m.items() if isinstance(v, (int, float))} for seed, m in by_seed.items()}
        write_results_csv(result.run_dir / f"results_{dataset}.csv", scalars)
