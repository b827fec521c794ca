"""`potstill pipeline run` and `potstill pipeline info`."""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from potstill.cli.params import mask_param, parse_runtime_parameters
from potstill.cli.render import cost_summary, pipeline_info, print_error, run_summary
from potstill.errors import (
    BudgetExceededError,
    PipelineRunError,
    PipelineValidationError,
    PotstillUserError,
    RemoteCodeError,
    UnsafeConfigError,
)

app = typer.Typer(
    name="pipeline",
    help="Run and inspect pipelines saved with `pipeline.save(...)` (YAML or JSON).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

DEFAULT_OUTPUT_ROOT = Path("potstill-data")
# The exit code of a run that failed on more rows than --max-failed-rows accepts (1 is for
# mistakes in the command or the config, 130 for Ctrl+C).
EXIT_FAILED_ROWS = 2
# The exit code of a run that --max-cost (or an LLM's max_cost) stopped before its end.
EXIT_BUDGET = 3

ConfigOption = Annotated[
    str,
    typer.Option(
        "--config",
        "-c",
        metavar="FILE|URL",
        help="The pipeline config: a .yaml/.yml/.json file written by `pipeline.save(...)`, "
        "or an http(s) URL serving one.",
        show_default=False,
    ),
]
AllowModuleOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--allow-module",
        metavar="MODULE",
        help="A module outside potstill whose classes the config may name (repeatable). "
        "Without it, a config can only use potstill's own classes and imports nothing else.",
        show_default=False,
    ),
]

AllowRemoteCodeOption = Annotated[
    bool,
    typer.Option(
        "--allow-remote-code",
        help="Let the config set trust_remote_code on an LLM, so that loading its model "
        "runs code from the model's repository. Without it, such a config is refused.",
    ),
]


def _stdout() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


# The errors reported as a red panel and exit code 1, most specific first, each with the
# hint printed under it (if any).
_USER_ERRORS: tuple[tuple[type[Exception], Optional[str]], ...] = (
    (
        RemoteCodeError,
        "From the command line, allow it with --allow-remote-code (only for model "
        "repositories you trust: their code runs on this machine).",
    ),
    (
        UnsafeConfigError,
        "From the command line, allow a module with --allow-module MODULE "
        "(only for modules you trust: importing a module runs its code).",
    ),
    (
        PipelineValidationError,
        "Runtime parameters given with --param STEP.NAME=VALUE are what "
        "`run(params=...)` receives. `potstill pipeline info --config FILE` lists the "
        "steps and their parameters.",
    ),
    (PotstillUserError, None),
    (ImportError, None),  # a provider SDK that is not installed
    (PipelineRunError, None),
)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turns the mistakes a user can fix into a red panel and exit code 1, no traceback."""
    try:
        yield
    except tuple(kind for kind, _ in _USER_ERRORS) as error:
        hint = next(hint for kind, hint in _USER_ERRORS if isinstance(error, kind))
        print_error(_stderr(), str(error), hint)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        print_error(
            _stderr(),
            "Interrupted. Finished batches are stored in the cache: run the same command "
            "again to resume where it stopped.",
        )
        raise typer.Exit(code=130) from None


@app.command("run")
def run(
    config: ConfigOption,
    param: Annotated[
        Optional[list[str]],
        typer.Option(
            "--param",
            "-p",
            metavar="STEP.NAME=VALUE",
            help="A runtime parameter, STEP.NAME=VALUE, nested with dots, e.g. "
            "text_generation_0.llm.generation_kwargs.temperature=0.7 (repeatable). "
            "Values are coerced to each parameter's type; a JSON list/object is decoded.",
            show_default=False,
        ),
    ] = None,
    ignore_cache: Annotated[
        bool,
        typer.Option(
            "--ignore-cache",
            help="Discard the batches stored by earlier runs of this configuration and start over.",
        ),
    ] = False,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            metavar="DIR",
            help="Directory to save the datasets to (Distiset.save_to_disk). "
            "[default: potstill-data/<pipeline name>]",
            show_default=False,
        ),
    ] = None,
    allow_module: AllowModuleOption = None,
    allow_remote_code: AllowRemoteCodeOption = False,
    show_progress: Annotated[
        bool,
        typer.Option("--progress/--no-progress", help="Show per-step progress bars."),
    ] = True,
    repo_id: Annotated[
        Optional[str],
        typer.Option(
            "--repo-id",
            metavar="REPO_ID",
            help="Also push the datasets to this Hugging Face Hub dataset repository.",
            show_default=False,
        ),
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", help="Create the Hub repository as private.")
    ] = False,
    token: Annotated[
        Optional[str],
        typer.Option(
            "--token",
            metavar="TOKEN",
            help="Hugging Face token for --repo-id (default: the one huggingface_hub finds, "
            "e.g. $HF_TOKEN).",
            show_default=False,
        ),
    ] = None,
    max_failed_rows: Annotated[
        str,
        typer.Option(
            "--max-failed-rows",
            metavar="N|N%",
            help="How many output rows may fail (rows whose potstill_metadata holds an "
            "error), as a count or a share of the rows, e.g. 10 or 5%. With more, the "
            "datasets are still saved but the command exits with code 2 (and pushes "
            "nothing).",
        ),
    ] = "0",
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Run the pipeline on a Ray cluster (pipeline.ray()): the one of the Ray job "
            "this command runs in, $RAY_ADDRESS, or a new local one. Needs potstill[ray].",
        ),
    ] = False,
    ray_address: Annotated[
        Optional[str],
        typer.Option(
            "--ray-address",
            metavar="ADDRESS",
            help="The Ray cluster to run on, e.g. ray://head:10001 or head:6379 (implies --ray).",
            show_default=False,
        ),
    ] = None,
    max_cost: Annotated[
        Optional[float],
        typer.Option(
            "--max-cost",
            metavar="DOLLARS",
            help="The most the run's LLM requests may cost, in dollars. Past it the run stops "
            "gracefully (requests in flight finish and are kept), saves nothing and exits "
            "with code 3; the same command with a higher --max-cost resumes.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a pipeline from a config file and save the datasets it produces.

    Secrets (API keys) are never stored in configs: they come from the provider's env var
    (e.g. OPENAI_API_KEY) or from --param STEP.llm.api_key=...
    """
    from potstill.cli.config import load_pipeline

    stdout = _stdout()
    with _user_errors():
        limit = parse_failed_rows_limit(max_failed_rows)
        if max_cost is not None and not max_cost > 0:
            raise PotstillUserError(
                f"--max-cost {max_cost:g} is not an amount of dollars: give one > 0, e.g. "
                "--max-cost 5 (or leave it out for no limit)."
            )
        params = parse_runtime_parameters(param or [])
        pipeline = load_pipeline(
            config, allowed_modules=allow_module or [], allow_remote_code=allow_remote_code
        )
        if ray or ray_address:
            pipeline = pipeline.ray(ray_head_node_url=ray_address)
        if param:
            shown = ", ".join(mask_param(p) for p in param)
            stdout.print(f"Runtime parameters: {shown}", markup=False)
        target = output if output is not None else DEFAULT_OUTPUT_ROOT / pipeline.name
        leaves = list(pipeline.dag.leaves)
        _check_output(target, ["default"] if len(leaves) == 1 else leaves)
        try:
            distiset = pipeline.run(
                params=params,
                use_cache=not ignore_cache,
                show_progress=show_progress,
                max_cost=max_cost,
            )
        except BudgetExceededError as stopped:
            _report_budget_stop(stdout, stopped, target)
            raise typer.Exit(code=EXIT_BUDGET) from None
        _save(distiset, target)
        stdout.print(run_summary(distiset, target))
        if pipeline.last_run_cost is not None and pipeline.last_run_cost.llms:
            stdout.print(cost_summary(pipeline.last_run_cost))
        failed = distiset.failed_rows
        too_many = failed is not None and failed.total > limit.allowed(failed.total_rows)
        if failed:
            for line in failed.describe():
                stdout.print(line, markup=False)
        if too_many:
            _report_failed_rows(failed, limit, target, repo_id)
            raise typer.Exit(code=EXIT_FAILED_ROWS)
        if repo_id:
            distiset.push_to_hub(repo_id, private=private, token=token)
            stdout.print(f"Pushed to https://huggingface.co/datasets/{repo_id}", markup=False)


class FailedRowsLimit:
    """What `--max-failed-rows` accepts: a number of rows, or a share of them.

    Args:
        text: the option as given.
        count: the most rows, when given as a number.
        share: the largest share of rows (0-1), when given as a percentage.
    """

    def __init__(self, text: str, count: Optional[int] = None, share: Optional[float] = None):
        self.text = text
        self.count = count
        self.share = share

    def allowed(self, rows: int) -> int:
        """The most failed rows accepted out of `rows`."""
        if self.share is not None:
            return math.floor(self.share * rows + 1e-9)
        return self.count or 0


def parse_failed_rows_limit(text: str) -> FailedRowsLimit:
    """Reads `--max-failed-rows`: `N` (rows) or `N%` (a share of the output rows).

    Args:
        text: the option's value.

    Returns:
        The limit.
    """
    value = text.strip()
    try:
        if value.endswith("%"):
            share = float(value[:-1]) / 100
            if 0 <= share <= 1:
                return FailedRowsLimit(value, share=share)
        else:
            count = int(value)
            if count >= 0:
                return FailedRowsLimit(value, count=count)
    except ValueError:
        pass
    raise PotstillUserError(
        f"--max-failed-rows {text!r} is not a number of rows or a percentage: give e.g. "
        "--max-failed-rows 10 (rows) or --max-failed-rows 5% (of the output rows)."
    )


def _report_failed_rows(
    failed: Any, limit: FailedRowsLimit, target: Path, repo_id: Optional[str]
) -> None:
    """The red panel of a run that failed on more rows than the limit accepts."""
    allowed = limit.allowed(failed.total_rows)
    message = (
        f"{failed.total:,} of {failed.total_rows:,} output rows failed; "
        f"--max-failed-rows {limit.text} accepts {allowed:,}. The datasets were saved to "
        f"{target}, each failed row with its error in the potstill_metadata column."
    )
    if repo_id:
        message += f" Nothing was pushed to {repo_id}."
    print_error(
        _stderr(),
        message,
        "Fix the cause and run the same command again: it retries the failed rows only "
        "(answered requests are not sent again). To accept some failures, pass "
        "--max-failed-rows N or N%.",
    )


def _report_budget_stop(stdout: Console, stopped: BudgetExceededError, target: Path) -> None:
    """What a run stopped by its spending limit prints: its cost table and a red panel."""
    if stopped.cost is not None:
        stdout.print(cost_summary(stopped.cost))  # type: ignore[arg-type]
    print_error(
        _stderr(),
        f"{stopped} Nothing was saved to {target}.",
        "Run the same command again with a higher --max-cost to resume where it stopped.",
    )


def _check_output(target: Path, names: list[str]) -> None:
    """Refuses, before anything runs, an output that saving would have to overwrite."""
    if target.exists() and not target.is_dir():
        raise PotstillUserError(f"--output {str(target)!r} exists and is not a directory.")
    for name in names:
        existing = target / name
        if existing.exists() and not (existing / "dataset_dict.json").is_file():
            raise PotstillUserError(
                f"--output {str(target)!r} already has a {name!r} that is not a saved "
                "dataset; choose another --output directory."
            )


def _save(distiset: Any, target: Path) -> None:
    """Saves the distiset, replacing what an earlier run saved under the same names."""
    _check_output(target, [str(name) for name in distiset])
    for name in distiset:
        stale = target / str(name)
        if stale.is_dir():  # a dataset an earlier run saved (checked above)
            shutil.rmtree(stale)
    distiset.save_to_disk(target)  # quietly: the summary table says what was saved


@app.command("info")
def info(
    config: ConfigOption,
    allow_module: AllowModuleOption = None,
    allow_remote_code: AllowRemoteCodeOption = False,
) -> None:
    """Show a pipeline's steps, connections and runtime parameters (with descriptions)."""
    from potstill.cli.config import load_pipeline

    with _user_errors():
        pipeline = load_pipeline(
            config, allowed_modules=allow_module or [], allow_remote_code=allow_remote_code
        )
        _stdout().print(pipeline_info(pipeline))
