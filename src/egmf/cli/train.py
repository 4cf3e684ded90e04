"""``egmf train``, ``egmf evaluate``, ``egmf predict`` and ``egmf config``: the commands a researcher runs daily.

    egmf train --config configs/meld.yaml --set train.epochs=2 --seeds 1111 1112 1113
    egmf evaluate --checkpoint runs/meld/seed_1111/checkpoints/best --split test
    egmf predict --checkpoint DIR --dataset meld --path data/meld --split test --out preds.jsonl
    egmf config validate configs/meld.yaml        (checks a config without running it)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from egmf.cli.common import console, fail_cleanly, print_metrics

app = typer.Typer(no_args_is_help=True, add_completion=False)
config_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Check configs and list their keys.")


@fail_cleanly
def train(
    config: Path = typer.Option(..., "--config", "-c", help="a YAML run config, e.g. configs/meld.yaml"),
    set_: List[str] = typer.Option([], "--set", help="override a key: --set train.epochs=2 (repeatable)"),
    seeds: List[int] = typer.Option([], "--seeds", help="train once per seed; results.csv gets mean and std"),
    model: Optional[str] = typer.Option(None, "--model", help="model name (egmf, llm_text, late_fusion, mult, ...)"),
    name: Optional[str] = typer.Option(None, "--name", help="run name (default: the config's name)"),
    output: Optional[Path] = typer.Option(None, "--output", help="folder that holds run folders (default: runs)"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run from its last checkpoint"),
) -> None:
    """Train (and evaluate) a model from a config."""
    from egmf.config import load_config
    from egmf.experiments.run import run

    overrides = list(set_)
    if model:
        overrides.append(f"model.name={model}")
    if name:
        overrides.append(f"name={name}")
    if output:
        overrides.append(f"output_dir={output}")
    cfg = load_config(config, overrides)
    result = run(cfg, seeds, resume=resume)
    if result.main_process:  # the other processes of a multi-process launch stay quiet
        console.print(f"[bold]run folder[/bold] {result.run_dir}")
        for dataset, summary in result.summary.items():
            print_metrics(f"{dataset}: test, mean ± std over {len(result.seeds)} seed(s)", summary)


@fail_cleanly
def evaluate(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="a checkpoint folder written by egmf train"),
    split: List[str] = typer.Option(["test"], "--split", help="splits to evaluate (repeatable)"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for metrics/predictions/plots (default: new folder beside the checkpoint)"),
    decoding: Optional[str] = typer.Option(None, "--decoding", help="constrained or free (default: the run's)"),
    set_: List[str] = typer.Option([], "--set", help="override data keys, e.g. --set data.datasets.0.path=..."),
) -> None:
    """Evaluate a checkpoint on splits of the datasets it was trained on (or others given by --set)."""
    from egmf.config import config_from_dict
    from egmf.evaluation.report import evaluate_splits
    from egmf.training import checkpoint as ckpt
    from egmf.training.data import load_training_data
    from egmf.typed_config import apply_overrides, read_yaml

    model, cfg, infos = ckpt.load_model(checkpoint)
    data_cfg = config_from_dict(apply_overrides(read_yaml(checkpoint / ckpt.CONFIG), list(set_))).data
    data = load_training_data(data_cfg, cfg.model.text_source, cfg.model.sentence_encoder)
    unknown = sorted(set(data.infos) - set(infos))
    if unknown:
        from egmf.errors import ConfigError

        raise ConfigError(f"data: dataset(s) {unknown} were not trained by this checkpoint; it knows {sorted(infos)}")
    out = out or _fresh_folder(checkpoint.parent.parent / "evaluations")
    metrics = evaluate_splits(
        model, {s: data.split(s) for s in split}, infos, out, cfg.eval.batch_size, decoding or cfg.eval.decoding,
        train=data.split("train"),
    )
    for s, per_dataset in metrics.items():
        for dataset, m in per_dataset.items():
            print_metrics(f"{dataset}: {s}", m)
    console.print(f"written to {out}")


@fail_cleanly
def predict(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="a checkpoint folder written by egmf train"),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="dataset loader name of --path"),
    path: Optional[Path] = typer.Option(None, "--path", help="a dataset file or folder (or a converted one)"),
    split: str = typer.Option("test", "--split", help="which split of --path to predict"),
    limit: int = typer.Option(0, "--limit", help="predict only the first N samples (0 = all)"),
    video: Optional[Path] = typer.Option(None, "--video", help="a video clip to predict from"),
    audio: Optional[Path] = typer.Option(None, "--audio", help="an audio clip to predict from"),
    text: Optional[str] = typer.Option(None, "--text", help="the transcript (with --video/--audio)"),
    target: Optional[str] = typer.Option(None, "--target", help="with --video/--audio: which trained dataset's task to answer"),
    out: Optional[Path] = typer.Option(None, "--out", help="JSON lines file (default: print to the terminal)"),
    decoding: Optional[str] = typer.Option(None, "--decoding", help="constrained or free (default: the run's)"),
) -> None:
    """Predict emotions or sentiment scores with gate weights, as JSON lines."""
    from egmf.evaluation.evaluate import predict_samples
    from egmf.evaluation.report import write_predictions
    from egmf.training import checkpoint as ckpt

    model, cfg, infos = ckpt.load_model(checkpoint)
    if video or audio:
        from egmf.cli.media import sample_from_files

        _, _, dims = ckpt.read_meta(checkpoint)
        samples = [sample_from_files(cfg, infos, dims, video=video, audio=audio, text=text, target=target)]
    else:
        samples = _samples_from_dataset(dataset, path, split, limit, cfg, infos)
    preds = predict_samples(model, samples, cfg.eval.batch_size, decoding or cfg.eval.decoding)
    if out:
        if out.exists():
            from egmf.errors import RunFolderExistsError

            raise RunFolderExistsError(f"{out}: exists; choose another --out (predictions are never overwritten)")
        write_predictions(preds, out)
        console.print(f"{len(preds)} predictions written to {out}")
    else:
        for p in preds:
            typer.echo(json.dumps(p.to_json(), ensure_ascii=False))


@fail_cleanly
def logit_adjust(
    run: Path = typer.Option(..., "--run", help="a finished seed folder (RUN/seed_S, holding predictions_valid.jsonl "
                             "and predictions_test.jsonl)"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for metrics/predictions (default: a new folder "
                                       "under RUN/seed_S/evaluations)"),
) -> None:
    """Re-choose a finished run's emotion answers with the train class prior divided out, at the strength that
    scores best on valid (post-hoc logit adjustment, Menon et al. 2021); reports test beside the run's own."""
    from egmf.config import saved_config_from_dict
    from egmf.evaluation.logit_adjustment import adjust_run_predictions
    from egmf.evaluation.metrics import main_metric
    from egmf.training import checkpoint as ckpt
    from egmf.training.data import load_training_data
    from egmf.typed_config import read_yaml

    best = run / "checkpoints" / "best"
    _, infos, _ = ckpt.read_meta(best)
    data_cfg = saved_config_from_dict(read_yaml(best / ckpt.CONFIG)).data
    # Only the labels are read: no sentence vectors are made ("none" drops the text features).
    data = load_training_data(data_cfg, "none", splits=("train", "valid", "test"))
    out = out or _fresh_folder(run / "evaluations", "logit_adjusted")
    record = adjust_run_predictions(run, infos, data.splits, out)
    for name, fitted in record["logit_adjustment"].items():
        key, _ = main_metric(infos[name])
        console.print(f"[bold]{name}[/bold]: tau {fitted['tau']} chosen on valid {key} "
                      f"({record['as_trained']['valid'][name][key]:.4f} -> {record['valid'][name][key]:.4f})")
        print_metrics(f"{name}: test, logit-adjusted", record["test"][name], record["as_trained"]["test"][name],
                      "as trained")
    if not record["logit_adjustment"]:
        console.print("no emotion-label (ERC) dataset in this run: nothing to adjust")
    console.print(f"written to {out}")


def _samples_from_dataset(dataset, path, split, limit, cfg, infos):
    from egmf.data.registry import load_dataset
    from egmf.errors import ConfigError

    if not dataset or not path:
        raise ConfigError("predict: give --dataset and --path, or --video / --audio (with --text)")
    data = load_dataset(dataset, path)
    if data.info.name not in infos:
        raise ConfigError(f"--dataset {data.info.name!r}: this checkpoint was trained on {sorted(infos)}")
    samples = data.splits.get(split) or []
    if not samples:
        raise ConfigError(f"--split {split!r}: empty or unknown in {path}; splits: {sorted(data.splits)}")
    from egmf.training.data import apply_text_source, normalize_per_speaker

    if cfg.data.speaker_normalization:  # over the whole split, as training and evaluation saw it, then --limit
        normalize_per_speaker(samples)
    samples = samples[:limit] if limit else samples
    apply_text_source(samples, cfg.model.text_source, cfg.model.sentence_encoder)
    return samples


def _fresh_folder(parent: Path, stem: str = "eval") -> Path:
    """A new numbered folder: an evaluation never overwrites an earlier one."""
    parent.mkdir(parents=True, exist_ok=True)
    i = 1
    while (parent / f"{stem}_{i:03d}").exists():
        i += 1
    return parent / f"{stem}_{i:03d}"


@config_app.command("validate")
@fail_cleanly
def validate(
    config: Path = typer.Argument(..., help="a YAML run config"),
    set_: List[str] = typer.Option([], "--set", help="overrides to check with it"),
) -> None:
    """Check a config (every key, type and choice) without loading data or models."""
    from egmf.config import load_config

    cfg = load_config(config, list(set_))
    console.print(f"[green]{config}: valid[/green] ({len(cfg.data.datasets)} dataset(s), model {cfg.model.name})")


@config_app.command("keys")
@fail_cleanly
def keys() -> None:
    """List every config key with its default and help (one line each, easy to grep)."""
    from egmf.config import RunConfig
    from egmf.typed_config import help_table

    for key, default, text in help_table(RunConfig):
        typer.echo(f"{key} = {default}    # {text}")


def register(root: typer.Typer) -> None:
    root.command("train")(train)
    root.command("evaluate")(evaluate)
    root.command("predict")(predict)
    root.command("logit-adjust")(logit_adjust)
    root.add_typer(config_app, name="config")
