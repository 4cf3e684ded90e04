"""What every command shares (egmf.cli.common): an EGMF error becomes one red line and exit code 2, and
metric tables print percentages and the baseline."""

from __future__ import annotations

import pytest
import typer
from rich.console import Console

from egmf.cli import common
from egmf.errors import ConfigError


def test_fail_cleanly_turns_an_egmf_error_into_one_line_and_exit_2(monkeypatch):
    record = Console(record=True, width=200)
    monkeypatch.setattr(common, "err_console", record)

    @common.fail_cleanly
    def command(value):
        if value == "bad":
            raise ConfigError("train.epochs: expected an integer, got 'bad'")
        return value

    assert command("good") == "good" and command.__name__ == "command"
    with pytest.raises(typer.Exit) as e:
        command("bad")
    assert e.value.exit_code == 2
    assert record.export_text() == "error: train.epochs: expected an integer, got 'bad'\n"


def test_fail_cleanly_lets_a_bug_through():
    @common.fail_cleanly
    def command():
        raise KeyError("a bug, not a user error")

    with pytest.raises(KeyError):
        command()


def test_print_metrics_shows_percent_raw_values_and_the_baseline(monkeypatch):
    record = Console(record=True, width=200)
    monkeypatch.setattr(common, "console", record)
    common.print_metrics("test meld", {"weighted_f1": 0.4321, "mae": 0.75, "confusion_matrix": [[1]],
                                       "baseline": {"weighted_f1": 0.2}})
    text = record.export_text()
    assert "test meld" in text and "baseline" in text and "confusion_matrix" not in text
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in text.splitlines() if line.startswith("│")]
    assert rows == [["weighted_f1", "43.21", "20.00"], ["mae", "0.7500", "nan"]]  # no baseline value for mae
