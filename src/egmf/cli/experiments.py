"""``egmf ablate`` and ``egmf transfer``: the paper's ablation table and its cross-lingual claim, one command each.

    egmf ablate --config configs/meld.yaml --seeds 1111 1112 1113
    egmf ablate --config configs/meld.yaml --only full no_local no_expert_gate k1 --set train.max_steps=200
    egmf ablate --list
    egmf transfer --config configs/meld.yaml --target-dataset cherma --target-path /data/CHERMA --reverse
    egmf transfer --config configs/mosei.yaml --target-dataset simsv2 --target-path /data/simsv2.pkl \
        --reverse-config configs/simsv2.yaml --modalities text
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from egmf.cli.common import console, fail_cleanly


def _log(line: str) -> None:
    console.print(line, markup=False, highlight=False)  # "[k1] ..." is not rich markup


def _base_config(config: Path, set_: list[str], name: Optional[str], output: Optional[Path]):
    from egmf.config import load_config

    overrides = list(set_)
    if name:
        overrides.append(f"name={name}")
    if output:
        overrides.append(f"output_dir={output}")
    return load_config(config, overrides)


@fail_cleanly
def ablate(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="the base YAML run config"),
    set_: List[str] = typer.Option([], "--set", help="override a key of the base config (repeatable)"),
    seeds: List[int] = typer.Option([], "--seeds", help="seeds per variant (default: the config's train.seed)"),
    only: List[str] = typer.Option([], "--only", help="run only these variants (repeatable; see --list)"),
    name: Optional[str] = typer.Option(None, "--name", help="folder name under --output (default: the config's name)"),
    output: Optional[Path] = typer.Option(None, "--output", help="parent folder (default: the config's output_dir)"),
    list_: bool = typer.Option(False, "--list", help="print the variants and their overrides, then exit"),
) -> None:
    """Run the ablations (experts, gating levels, K, LoRA rank, baselines) and write one table."""
    from egmf.errors import ConfigError
    from egmf.experiments.ablation import VARIANTS, run_ablations

    if list_:
        for variant, overrides in VARIANTS.items():
            typer.echo(f"{variant:18s} {' '.join(overrides) or '(the base config)'}")
        return
    if config is None:
        raise ConfigError("ablate: --config is required (or --list to see the variants)")
    cfg = _base_config(config, set_, name, output)
    # Split multi-word values ("--only full,k1") as well as repeated options.
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    results, out_dir = run_ablations(cfg, seeds, names, log=_log)
    console.print(f"[bold]{len(results)} variant(s)[/bold]; table: {out_dir / 'ablation.md'} and {out_dir / 'ablation.csv'}")
    typer.echo((out_dir / "ablation.md").read_text(encoding="utf-8"))  # unwrapped, so it pastes as markdown


@fail_cleanly
def transfer(
    config: Path = typer.Option(..., "--config", "-c", help="run config of the source dataset (e.g. MELD)"),
    target_dataset: str = typer.Option(..., "--target-dataset", help="dataset of the other language, e.g. cherma, simsv2"),
    target_path: Path = typer.Option(..., "--target-path", help="its file or folder"),
    target_option: List[str] = typer.Option([], "--target-option", help="a loader option of the target: KEY=VALUE"),
    reverse: bool = typer.Option(False, "--reverse", help="also train on the target and evaluate on the source"),
    reverse_config: Optional[Path] = typer.Option(None, "--reverse-config", help="config training on the target (implies --reverse)"),
    modalities: List[str] = typer.Option([], "--modalities", help="target modalities to feed (default: those with the source's dims)"),
    set_: List[str] = typer.Option([], "--set", help="override a key of the config(s) (repeatable)"),
    seeds: List[int] = typer.Option([], "--seeds", help="seeds (default: the config's train.seed)"),
    input_statistics: str = typer.Option("source", "--input-statistics", help="what standardises the target's "
                                         "features: source (the model's own, as trained), target (the target train "
                                         "split's inputs, no labels) or source,target (a row each)"),
    label_prior: str = typer.Option("as_trained", "--label-prior", help="class prior the answers are chosen under: "
                                    "as_trained (the model's own), em (the scored inputs' prior, estimated by EM "
                                    "without their labels) or as_trained,em (a row each)"),
    name: Optional[str] = typer.Option(None, "--name", help="folder name under --output (default: <config name>_transfer)"),
    output: Optional[Path] = typer.Option(None, "--output", help="parent folder (default: the config's output_dir)"),
) -> None:
    """Train on one language's dataset, evaluate on the other's (answers mapped), and the reverse."""
    from egmf.config import DatasetEntry, load_config
    from egmf.errors import ConfigError
    from egmf.experiments.transfer import run_transfer
    from egmf.typed_config import apply_overrides

    cfg = _base_config(config, set_, name, output)
    if not name:
        cfg = load_config(config, [*set_, f"name={cfg.name}_transfer", *([f"output_dir={output}"] if output else [])])
    options: dict = {}
    try:
        apply_overrides(options, target_option)
    except ConfigError as e:
        raise ConfigError(f"--target-option: {e}") from None
    target = DatasetEntry(name=target_dataset, path=str(target_path), options=options)
    reverse_cfg = load_config(reverse_config, list(set_)) if reverse_config else None
    mods = [m.strip() for item in modalities for m in item.split(",") if m.strip()] or None
    choices = [c.strip() for c in input_statistics.split(",") if c.strip()]
    priors = [c.strip() for c in label_prior.split(",") if c.strip()]
    rows, out_dir = run_transfer(cfg, target, seeds, reverse or reverse_cfg is not None, reverse_cfg, mods,
                                 log=_log, input_statistics=choices, label_priors=priors)
    console.print(f"table: {out_dir / 'transfer.md'} and {out_dir / 'transfer.csv'}")
    typer.echo((out_dir / "transfer.md").read_text(encoding="utf-8"))


def register(root: typer.Typer) -> None:
    root.command("ablate")(ablate)
    root.command("transfer")(transfer)
