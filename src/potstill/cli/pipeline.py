"""`potstill pipeline run` and `potstill pipeline info`."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from potstill.cli.params import mask_param, parse_runtime_parameters
from potstill.cli.render import pipeline_info, print_error, run_summary
from potstill.errors import (
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


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turns the mistakes a user can fix into a red panel and exit code 1, no traceback."""
    try:
        yield
    except RemoteCodeError as error:
        print_error(
            _stderr(),
            str(error),
            "From the command line, allow it with --allow-remote-code (only for model "
            "repositories you trust: their code runs on this machine).",
        )
        raise typer.Exit(code=1) from None
    except UnsafeConfigError as error:
        print_error(
            _stderr(),
            str(error),
            "From the command line, allow a module with --allow-module MODULE "
            "(only for modules you trust: importing a module runs its code).",
        )
        raise typer.Exit(code=1) from None
    except PipelineValidationError as error:
        print_error(
            _stderr(),
            str(error),
            "Runtime parameters given with --param STEP.NAME=VALUE are what "
            "`run(params=...)` receives. `potstill pipeline info --config FILE` lists the "
            "steps and their parameters.",
        )
        raise typer.Exit(code=1) from None
    except PotstillUserError as error:
        print_error(_stderr(), str(error))
        raise typer.Exit(code=1) from None
    except ImportError as error:  # a provider SDK that is not installed
        print_error(_stderr(), str(error))
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        print_error(
            _stderr(),
            "Interrupted. Finished batches are stored in the cache: run the same command "
            "again to resume where it stopped.",
        )
        raise typer.Exit(code=130) from None
    except Exception as error:
        from potstill.pipeline.engine import PipelineRunError

        if isinstance(error, PipelineRunError):
            print_error(_stderr(), str(error))
            raise typer.Exit(code=1) from None
        raise


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
) -> None:
    """Run a pipeline from a config file and save the datasets it produces.

    Secrets (API keys) are never stored in configs: they come from the provider's env var
    (e.g. OPENAI_API_KEY) or from --param STEP.llm.api_key=...
    """
    from potstill.cli.config import load_pipeline

    stdout = _stdout()
    with _user_errors():
        params = parse_runtime_parameters(param or [])
        pipeline = load_pipeline(
            config, allowed_modules=allow_module or [], allow_remote_code=allow_remote_code
        )
        if param:
            shown = ", ".join(mask_param(p) for p in param)
            stdout.print(f"Runtime parameters: {shown}", markup=False)
        target = output if output is not None else DEFAULT_OUTPUT_ROOT / pipeline.name
        leaves = list(pipeline.dag.leaves)
        _check_output(target, ["default"] if len(leaves) == 1 else leaves)
        distiset = pipeline.run(
            params=params, use_cache=not ignore_cache, show_progress=show_progress
        )
        _save(distiset, target)
        stdout.print(run_summary(distiset, target))
        if repo_id:
            distiset.push_to_hub(repo_id, private=private, token=token)
            stdout.print(f"Pushed to https://huggingface.co/datasets/{repo_id}", markup=False)


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
    from datasets.utils.tqdm import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()  # the summary table says what was saved
    try:
        distiset.save_to_disk(target)
    finally:
        if not was_disabled:
            enable_progress_bars()


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
