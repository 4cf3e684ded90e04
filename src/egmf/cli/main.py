"""The ``egmf`` command: ``egmf --help`` lists every step of the pipeline.

Each area of the package contributes a typer sub-app or commands; this file only assembles them.
"""

from __future__ import annotations

import typer

from egmf.cli import data as data_cli
from egmf.cli import experiments as experiments_cli
from egmf.cli import extract as extract_cli
from egmf.cli import quickstart as quickstart_cli
from egmf.cli import train as train_cli

app = typer.Typer(
    name="egmf",
    help="EGMF: multimodal emotion recognition and sentiment analysis with expert-guided fusion and LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_cli.app, name="data", help="Generate, inspect and convert datasets.")
train_cli.register(app)
quickstart_cli.register(app)
experiments_cli.register(app)
app.command("extract")(extract_cli.extract)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
