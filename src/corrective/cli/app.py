"""The `corrective` command: typer sub-commands, each thin over `corrective.api`."""

from __future__ import annotations

import sys

import typer

from corrective.errors import UserError

app = typer.Typer(
    help="Corrective machine unlearning: manipulate, train, unlearn, benchmark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def main() -> None:
    """Entry point: bad input ends with one line on stderr and exit code 2, never a traceback."""
    from corrective.cli import commands  # noqa: F401  (registers the sub-commands)

    try:
        app()
    except UserError as e:
        typer.echo(f"corrective: error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("corrective: interrupted", err=True)
        sys.exit(130)
