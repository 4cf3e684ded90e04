"""``egmf data``: generate, inspect and convert datasets.

    egmf data synth --format mmsa --flavour simsv2 --out data/simsv2_synth --size small
    egmf data inspect data/simsv2_synth/ch-simsv2s.pkl --dataset simsv2 [--json]
    egmf data convert data/simsv2_synth/ch-simsv2s.pkl --dataset simsv2 --out data/simsv2_safe
    egmf data datasets                      (the dataset names every command accepts)

Loader and writer options pass as ``--option key=value`` (the value is read as YAML, so numbers,
booleans and ``{text: 16}`` mappings work): ``--option nan=zero``, ``--option "dims={text: 32}"``.
A bad input prints one red line and exits with code 2.
"""

from __future__ import annotations

import importlib
import inspect as pyinspect
import json
from pathlib import Path
from typing import Any, List, Optional

import typer
import yaml

from egmf.atomic import atomic_folder
from egmf.cli.common import console, fail_cleanly
from egmf.errors import ConfigError, EGMFError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Generate, inspect and convert datasets.")

OPTION_HELP = "a loader option key=value (repeatable), e.g. --option nan=zero"


def parse_options(items: List[str]) -> dict[str, Any]:
    """``["nan=zero", "dims={text: 16}"]`` -> ``{"nan": "zero", "dims": {"text": 16}}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option: expected key=value, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"--option {key}: the value is not valid YAML ({e.__class__.__name__})") from e
    return out


def _writer_options(fmt: str, options: dict[str, Any]) -> None:
    """Refuse options the format's writer does not take, listing the ones it does."""
    writer = importlib.import_module(f"egmf.data.synth.{fmt}").write
    params = pyinspect.signature(writer).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n in params if n not in ("out", "n_train", "seed")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"synth --format {fmt}: unknown options {unknown}; valid: {', '.join(valid)}")


def _dataset_name(fmt: str, options: dict[str, Any]) -> str:
    return options.get("flavour", "mosei") if fmt == "mmsa" else fmt


@app.command()
@fail_cleanly
def synth(
    format: str = typer.Option(..., "--format", "-f", help="mmsa, meld, cherma or custom"),
    out: Path = typer.Option(..., "--out", "-o", help="a new (or empty) folder to write into"),
    size: str = typer.Option("small", "--size", help="tiny (24 train), small (240), medium (1200) or a number"),
    seed: int = typer.Option(0, "--seed", help="random seed; the same seed writes the same files"),
    flavour: Optional[str] = typer.Option(None, "--flavour", help="mmsa only: mosi, mosei, sims or simsv2"),
    variant: Optional[str] = typer.Option(None, "--variant", help="mmsa only: aligned or unaligned"),
    option: List[str] = typer.Option([], "--option", help="a writer option key=value, e.g. \"dims={text: 32}\""),
) -> None:
    """Write a generated dataset in a benchmark's exact distributed layout, with a learnable signal."""
    from egmf.data import safe_format
    from egmf.data.synth import FORMATS, size_to_count, write_synthetic

    if format not in FORMATS:
        raise ConfigError(f"--format: unknown format {format!r}; valid choices: {', '.join(FORMATS)}")
    options = parse_options(option)
    for name, value in (("flavour", flavour), ("variant", variant)):
        if value is not None:
            if format != "mmsa":
                raise ConfigError(f"--{name} applies to --format mmsa only, not {format}")
            options[name] = value
    _writer_options(format, options)
    try:
        n_train = size_to_count(size)
    except ValueError as e:
        raise ConfigError(f"--size: {e}") from None
    safe_format.check_output_folder(out)  # fail before generating anything
    # Written into a temporary sibling and renamed when complete: never a half-written dataset.
    with atomic_folder(out, exists="error", check=safe_format.check_output_folder) as tmp:
        try:
            written = write_synthetic(format, tmp, size=n_train, seed=seed, **options)
        except EGMFError:
            raise
        except (ValueError, TypeError) as e:  # a writer refusing an --option value
            raise ConfigError(f"synth --format {format}: bad --option value: {e}") from None
    path = out / Path(written).relative_to(tmp)
    name = _dataset_name(format, options)
    # soft_wrap: a path the user copies must not be broken over lines
    console.print(f"[green]wrote[/green] {path} ({n_train} train utterances, seed {seed})", soft_wrap=True)
    console.print(f"next: egmf data inspect {path} --dataset {name}", highlight=False, soft_wrap=True)


@app.command("inspect")
@fail_cleanly
def inspect_cmd(
    path: Path = typer.Argument(..., help="the dataset file or folder (native, or converted by egmf data convert)"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset name, e.g. mosei, meld (egmf data datasets)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON instead of tables"),
    option: List[str] = typer.Option([], "--option", help=OPTION_HELP),
) -> None:
    """Split sizes, feature dims, frame counts, label distribution, missing modalities, NaN and -inf."""
    from egmf.data.inspect import inspect_dataset, render

    report = inspect_dataset(dataset, path, **parse_options(option))
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    for table in render(report):
        console.print(table)


@app.command()
@fail_cleanly
def convert(
    path: Path = typer.Argument(..., help="the dataset file or folder to convert"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset name, e.g. mosei, meld (egmf data datasets)"),
    out: Path = typer.Option(..., "--out", "-o", help="a new (or empty) folder for the safe copy"),
    option: List[str] = typer.Option([], "--option", help=OPTION_HELP),
) -> None:
    """Convert a dataset (e.g. an MMSA pickle) into the safe format: JSON + safetensors, no pickle."""
    from egmf.data import load_dataset, safe_format

    from egmf.data.validate import refuse_kept_nan

    safe_format.check_output_folder(out)  # fail before loading a large file
    options = parse_options(option)
    refuse_kept_nan(options, "convert --option")
    data = load_dataset(dataset, path, **options)
    safe_format.write(data, out, loader=dataset)
    sizes = ", ".join(f"{split} {len(samples)}" for split, samples in data.splits.items())
    total = sum(f.stat().st_size for f in out.iterdir())
    console.print(f"[green]wrote[/green] {out} ({sizes}; {total / 1e6:.1f} MB)", soft_wrap=True)
    console.print(f"load it with: egmf data inspect {out} --dataset {dataset}", highlight=False, soft_wrap=True)


@app.command()
@fail_cleanly
def datasets() -> None:
    """List the dataset names the data commands (and configs) accept."""
    from rich.table import Table

    from egmf.data.registry import DATASETS, register_builtin_datasets

    register_builtin_datasets()
    table = Table("name", "description")
    for name in sorted(DATASETS):
        table.add_row(name, DATASETS[name].description)
    console.print(table)
