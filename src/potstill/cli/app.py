"""The `potstill` command (`potstill = "potstill.cli.app:main"` in pyproject.toml)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from potstill import __version__
from potstill.cli import pipeline

_CLICK_USAGE_ERROR_CODE = 2  # what click exits with; potstill keeps 2 for failed rows


class _RootGroup(TyperGroup):
    """The `potstill` command group. Usage errors (an unknown option, a missing `--config`)
    exit with 1 like every other mistake a user can fix, instead of click's 2, so that 2
    only ever means "rows failed"."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except Exception as error:
            _exit_with_1(error)
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            _exit_with_1(error)
            raise


def _exit_with_1(error: Exception) -> None:
    # click's UsageError (typer may ship its own copy of click, so it is matched by shape):
    # it shows itself and exits with 2.
    if getattr(error, "exit_code", None) == _CLICK_USAGE_ERROR_CODE and callable(
        getattr(error, "show", None)
    ):
        error.exit_code = 1  # type: ignore[attr-defined]


app = typer.Typer(
    cls=_RootGroup,
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
