"""What every command shares: the console, clean errors, and metric tables."""

from __future__ import annotations

import functools
import logging

import typer
from rich.console import Console
from rich.table import Table

from egmf.errors import EGMFError

console = Console()
err_console = Console(stderr=True)


def fail_cleanly(fn):
    """Turn an :class:`EGMFError` (bad input, bad config) into one red line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        try:
            return fn(*args, **kwargs)
        except EGMFError as e:
            err_console.print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def print_metrics(title: str, metrics: dict, baseline: dict | None = None, baseline_name: str = "baseline") -> None:
    """A table of scalar metrics (accuracies and F1 in percent), with a ``baseline_name`` column when
    ``baseline`` is given."""
    from egmf.evaluation.aggregate import format_cell, is_percent  # pandas: loaded when a table is printed

    baseline = baseline if baseline is not None else metrics.get("baseline")
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("model", justify="right")
    if baseline:
        table.add_column(baseline_name, justify="right")
    for key, value in metrics.items():
        if key == "baseline" or not isinstance(value, (int, float, dict)) or (isinstance(value, dict) and "mean" not in value):
            continue
        row = [key, format_cell(value, is_percent(key))]
        if baseline:
            row.append(format_cell(baseline.get(key, float("nan")), is_percent(key)))
        table.add_row(*row)
    console.print(table)
