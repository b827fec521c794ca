"""The `potstill` command (`potstill = "potstill.cli.app:main"` in pyproject.toml)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from potstill import __version__
from potstill.cli import pipeline

app = typer.Typer(
    name="potstill",
    help="potstill: build datasets with LLMs.",
    no_args_is_help=True,
    rich_markup_mode=None,
    # A traceback's local variables could include a secret given with --param.
    pretty_exceptions_show_locals=False,
)
app.add_typer(pipeline.app, name="pipeline")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"potstill {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = None,
) -> None:
    """potstill: build datasets with LLMs."""


def main() -> None:
    """Runs the `potstill` command."""
    app(prog_name="potstill")


if __name__ == "__main__":
    main()
