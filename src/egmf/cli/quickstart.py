"""``egmf quickstart``: the whole pipeline in a few minutes on a laptop CPU, with nothing to download.

It writes generated MELD-format (emotions, English dialogues) and MOSEI-format (sentiment scores) data,
trains ONE EGMF model on both at once with the embedded SmolLM2-135M, prints the test metrics next to the
majority / mean baseline, the mean gate weights, saves the checkpoint, and runs ``egmf predict`` on a few
test samples. Every output lands under ``--out`` (default ``quickstart_out/``); a second run starts a new
run folder and reuses the generated data.
"""

from __future__ import annotations

from pathlib import Path

import typer

from egmf.cli.common import console, fail_cleanly, print_metrics

QUICKSTART_OVERRIDES = {
    "model.fusion.d_model": 64,
    "model.fusion.num_pseudo_tokens": 4,
    "model.prompt.max_context_turns": 2,
    "model.prompt.max_prompt_tokens": 160,
    "train.batch_size": 8,
    "train.lr_lora": 1.0e-3,
    "train.lr_fusion": 3.0e-3,
    "train.warmup_ratio": 0.05,
    # Three evaluations, the last at the final step (steps 40, 80, 120 by default): nothing is scored twice.
    "train.num_evals": 3,
    "train.patience": 0,
    "train.save_every": 20,
    "eval.batch_size": 16,
}


def quickstart_config(data_dir: Path, out: Path, name: str, steps: int, minutes: float, backend: str):
    from egmf.config import config_from_dict

    cfg = {
        "name": name,
        "output_dir": str(out / "runs"),
        "data": {
            "datasets": [
                {"name": "meld", "path": str(data_dir / "meld")},  # features/ beside the CSVs is found
                {"name": "mosei", "path": str(data_dir / "mosei")},
            ]
        },
        "model": {"name": "egmf", "text_source": "dataset", "llm": {"backend": backend}},
        # A fixed number of steps, not a time budget: the result does not depend on how busy the machine is.
        "train": {"epochs": 100, "max_steps": steps, "time_limit_minutes": minutes},
    }
    from egmf.typed_config import apply_overrides

    overrides = dict(QUICKSTART_OVERRIDES)
    if backend == "tiny":  # the test LLM reads bytes: its prompts are ~4x as many tokens as SmolLM2's
        overrides["model.prompt.max_prompt_tokens"] = 4 * overrides["model.prompt.max_prompt_tokens"]
    apply_overrides(cfg, [f"{k}={v}" for k, v in overrides.items()])
    return config_from_dict(cfg)


def generate_data(data_dir: Path, size: str, seed: int = 0) -> None:
    """Write the generated datasets once; a later quickstart reuses them."""
    from egmf.data.synth import write_synthetic

    if not (data_dir / "meld").exists():
        write_synthetic("meld", data_dir / "meld", size=size, seed=seed)
    if not (data_dir / "mosei").exists():
        # MOSEI's layout and 768-d BERT text features, with shorter audio/vision sequences than the real
        # 500/375 frames so that a laptop spends its minutes on the LLM.
        write_synthetic(
            "mmsa", data_dir / "mosei", size=size, seed=seed + 1, flavour="mosei",
            seq_lens={"text": 50, "audio": 100, "vision": 75},
        )


def _next_name(runs: Path, stem: str = "quickstart") -> str:
    i = 1
    while (runs / f"{stem}_{i:03d}").exists():
        i += 1
    return f"{stem}_{i:03d}"


@fail_cleanly
def quickstart(
    out: Path = typer.Option(Path("quickstart_out"), "--out", help="folder for the generated data and the run"),
    steps: int = typer.Option(120, "--steps", help="optimiser steps (batch 8); 3-5 s each on 2 CPU cores"),
    minutes: float = typer.Option(0.0, "--minutes", help="also stop after this many minutes (0 = no time limit)"),
    size: str = typer.Option("small", "--size", help="generated data size: tiny, small, medium or a number"),
    backend: str = typer.Option("smollm2-135m", "--llm", help="LLM backend (the embedded SmolLM2 by default)"),
) -> None:
    """Generate data, train EGMF on it, print metrics against the baseline, and predict a few samples."""
    from egmf.evaluation.evaluate import predict_samples
    from egmf.evaluation.report import mean_gates, read_predictions
    from egmf.training import checkpoint as ckpt
    from egmf.training.data import load_training_data
    from egmf.experiments.run import run

    data_dir = out / "data"
    console.rule("[bold]1. data")
    generate_data(data_dir, size)
    name = _next_name(out / "runs")
    cfg = quickstart_config(data_dir, out, name, steps, minutes, backend)
    console.print(f"generated MELD-format and MOSEI-format data in {data_dir}")

    console.rule("[bold]2. train EGMF (one model, both tasks)")
    result = run(cfg)
    seed, first = next(iter(result.seeds.items()))
    seed_dir = result.run_dir / f"seed_{seed}"

    console.rule("[bold]3. test metrics (model against the trivial baseline)")
    verdicts = []
    for dataset, m in first.test.items():
        print_metrics(f"{dataset} (test)", m)
        verdicts.append(_verdict(dataset, m))
    for line in verdicts:
        console.print(line)

    console.rule("[bold]4. gate weights and predictions")
    best = seed_dir / "checkpoints" / "best"
    model, run_cfg, infos = ckpt.load_model(best)
    data = load_training_data(run_cfg.data, run_cfg.model.text_source, run_cfg.model.sentence_encoder)
    test = data.split("test")
    # The run already predicted the whole test split (with the gates): read it rather than predict it again.
    preds = read_predictions(seed_dir / "predictions_test.jsonl")
    for key, weights in mean_gates(preds).items():
        # \[ : rich would read "[expert]" as markup and drop it
        console.print(f"mean gate weights \\[{key}]: " + ", ".join(f"{k} {v:.3f}" for k, v in weights.items()))
    console.print(f"checkpoint: {best}")
    console.print("a few test predictions (egmf predict --checkpoint ... writes these as JSON lines):")
    picks = [s for s in test if s.dataset == "meld"][:2] + [s for s in test if s.dataset == "mosei"][:2]
    for s, p in zip(picks, predict_samples(model, picks, 4)):
        answer = p.prediction if isinstance(p.prediction, str) else f"{p.prediction:+.1f}"
        truth = s.label if isinstance(s.label, str) else f"{s.label:+.2f}"
        console.print(f"  {s.dataset} {s.id}: predicted {answer}  (truth {truth})  text: {s.text[:60]!r}")
    console.print(
        f"\nnext: egmf predict --checkpoint {best} --dataset meld --path {data_dir / 'meld'} --limit 5\n"
        f"      tensorboard --logdir {seed_dir / 'tensorboard'}"
    )


def _verdict(dataset: str, m: dict) -> str:
    """Did the model beat the train split's majority label (ERC) / mean score (MSA)?"""
    base = m.get("baseline", {})
    if "weighted_f1" in m:
        key, better = "weighted_f1", m["weighted_f1"] > base.get("weighted_f1", float("inf"))
    else:
        key, better = "mae", m["mae"] < base.get("mae", float("-inf"))
    word = "[green]beats[/green]" if better else "[red]does not beat[/red]"
    kind = "majority-label" if key == "weighted_f1" else "mean-score"
    return f"{dataset}: EGMF {word} the {kind} baseline on {key} ({m[key]:.4f} vs {base.get(key, float('nan')):.4f})"


def register(root: typer.Typer) -> None:
    root.command("quickstart")(quickstart)
