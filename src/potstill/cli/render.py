"""What the CLI prints: the `pipeline info` panel, the run summary, its cost and errors."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, SecretStr
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from potstill.cli.params import is_secret_name
from potstill.errors import PotstillUserError
from potstill.llms.base import LLM
from potstill.llms.budget import dollars
from potstill.mixins.runtime_parameters import RuntimeParametersMixin
from potstill.pipeline import Pipeline
from potstill.pipeline.failures import errors_in
from potstill.pipeline.spend import RunCost
from potstill.steps.tasks.base import METADATA_COLUMN
from potstill.utils.fields import is_secret_field
from potstill.utils.secrets import redact

_NOT_SET = "not set"


def pipeline_info(pipeline: Pipeline) -> Group:
    """The `pipeline info` view: steps, connections and runtime parameters.

    Args:
        pipeline: the pipeline loaded from a config.

    Returns:
        A renderable for a rich console.
    """
    header = Text.assemble(("Name: ", "bold"), pipeline.name)
    if pipeline.description:
        header.append("\n")
        header.append_text(Text.assemble(("Description: ", "bold"), pipeline.description))
    return Group(
        Panel(header, title="[bold]Pipeline[/bold]", expand=True),
        _steps_table(pipeline),
        _connections_table(pipeline),
        Panel(
            Group(*(_parameters_tree(pipeline, name) for name in pipeline.dag.topological_order())),
            title="[bold]Runtime parameters[/bold] (set with --param STEP.NAME=VALUE)",
            expand=True,
        ),
    )


def _steps_table(pipeline: Pipeline) -> Table:
    table = Table(title="Steps", title_justify="left", expand=True)
    table.add_column("Step", style="bold cyan", overflow="fold", ratio=3)
    table.add_column("Class", overflow="fold", ratio=2)
    table.add_column("LLM", overflow="fold", ratio=3)
    table.add_column("Input -> output columns", overflow="fold", ratio=4)
    for name in pipeline.dag.topological_order():
        step = pipeline.dag.steps[name]
        llm = getattr(step, "llm", None)
        llm_text = f"{type(llm).__name__} ({_model_name(llm)})" if isinstance(llm, LLM) else "-"
        inputs = ", ".join(step.input_columns()) or "-"
        outputs = _outputs(step)
        table.add_row(
            escape(name), type(step).__name__, escape(llm_text), escape(f"{inputs} -> {outputs}")
        )
    return table


def _outputs(step: Any) -> str:
    try:
        return ", ".join(step.get_outputs()) or "-"
    except PotstillUserError as error:  # a loader whose dataset cannot be read from here
        return f"? ({error})"


def _connections_table(pipeline: Pipeline) -> Table:
    table = Table(title="Connections", title_justify="left", expand=True)
    table.add_column("From", style="bold cyan", overflow="fold")
    table.add_column("To", overflow="fold")
    for connection in pipeline.dag.connections():
        targets = connection["to"]
        table.add_row(
            escape(connection["from"]),
            escape(", ".join(targets)) if targets else "[dim](leaf: becomes a dataset)[/dim]",
        )
    return table


def _parameters_tree(pipeline: Pipeline, name: str) -> Tree:
    step = pipeline.dag.steps[name]
    tree = Tree(f"[bold cyan]{escape(name)}[/bold cyan] [dim]({type(step).__name__})[/dim]")
    _add_parameters(tree, step, step.get_runtime_parameters_info())
    return tree


def _add_parameters(tree: Tree, owner: Any, info: list[dict[str, Any]]) -> None:
    for item in info:
        name = item["name"]
        value = getattr(owner, name, None)
        if "runtime_parameters_info" in item:
            label = f"[bold]{escape(name)}[/bold]"
            if isinstance(value, LLM):
                label += f" [dim]({type(value).__name__})[/dim]"
            branch = tree.add(label)
            if isinstance(value, RuntimeParametersMixin):
                _add_parameters(branch, value, item["runtime_parameters_info"])
            continue
        secret = _is_secret_field(owner, name)
        branch = tree.add(_parameter_line(name, item, _show(name, value, secret)))
        if "keys" in item:
            given = value if isinstance(value, dict) else {}
            defaults = _generation_defaults(owner)
            for key in item["keys"]:
                key_name = key["name"]
                if key_name in given:
                    shown = _show(key_name, given[key_name])
                elif defaults.get(key_name) is not None:
                    shown = f"{_show(key_name, defaults[key_name])} (default)"
                else:
                    shown = None
                branch.add(_parameter_line(key_name, key, shown))


def _parameter_line(name: str, item: dict[str, Any], value: Optional[str]) -> Text:
    line = Text(name, style="bold")
    if not item.get("optional", True):
        line.append(" (required)", style="bold red")
    if value is not None:
        line.append(f" = {value}", style="green")
    description = item.get("description")
    if description:
        line.append(f": {' '.join(str(description).split())}", style="dim")
    return line


def _is_secret_field(owner: Any, name: str) -> bool:
    field = type(owner).model_fields.get(name) if isinstance(owner, BaseModel) else None
    return field is not None and is_secret_field(field)


def _generation_defaults(owner: Any) -> dict[str, Any]:
    if not isinstance(owner, LLM):
        return {}
    return {
        name: parameter.default
        for name, parameter in owner.generation_spec().parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def _show(name: str, value: Any, secret: bool = False) -> Optional[str]:
    if isinstance(value, RuntimeParametersMixin):
        return None
    if value is not None and (secret or isinstance(value, SecretStr) or is_secret_name(name)):
        return "********** (set)"
    if value is None:
        return _NOT_SET
    if isinstance(value, dict) and not value:
        return None
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _model_name(llm: LLM) -> str:
    try:
        return llm.model_name
    except Exception:  # a model name that needs loading first
        return "?"


def run_summary(distiset: Any, output: Optional[Path]) -> Table:
    """A table of the datasets a run produced.

    Args:
        distiset: the `Distiset` returned by `Pipeline.run`.
        output: where it was saved, if anywhere.

    Returns:
        A renderable for a rich console.
    """
    title = "Datasets" + (f" saved to {output}" if output is not None else "")
    table = Table(title=escape(title), title_justify="left")
    table.add_column("Config", style="bold cyan", overflow="fold")
    table.add_column("Split")
    table.add_column("Rows", justify="right")
    table.add_column("Failed rows", justify="right")
    table.add_column("Columns", overflow="fold")
    for config, dataset_dict in distiset.items():
        for split, dataset in dataset_dict.items():
            table.add_row(
                escape(str(config)),
                escape(str(split)),
                f"{dataset.num_rows:,}",
                f"{_failed_rows(dataset):,}",
                escape(", ".join(c for c in dataset.column_names if c != METADATA_COLUMN)),
            )
    return table


def cost_summary(cost: RunCost) -> Table:
    """A table of what a run's LLMs consumed: requests, tokens and dollars.

    Args:
        cost: `pipeline.last_run_cost`.

    Returns:
        A renderable for a rich console; its caption is the run's total.
    """
    total = cost.cost
    caption = "Total: " + (dollars(total) if total is not None else "unknown (an LLM has no price)")
    table = Table(title="LLM cost", title_justify="left", caption=caption, caption_justify="left")
    table.add_column("Steps", style="bold cyan", overflow="fold")
    table.add_column("LLM", overflow="fold")
    for name in ("Requests", "From journal/cache", "Input tokens", "Output tokens", "Cost"):
        table.add_column(name, justify="right")
    for entry in cost.llms:
        usage = entry.usage
        table.add_row(
            escape(", ".join(entry.steps)),
            escape(f"{entry.llm} {entry.model}"),
            f"{usage.requests:,}",
            f"{usage.cached_requests:,}",
            f"{usage.input_tokens:,}",
            f"{usage.output_tokens:,}",
            dollars(usage.cost) if usage.cost is not None else "no price",
        )
    return table


def _failed_rows(dataset: Any) -> int:
    """Rows whose `potstill_metadata` records an error for any step."""
    if METADATA_COLUMN not in dataset.column_names:
        return 0
    return errors_in(dataset.data.column(METADATA_COLUMN))[0]


def print_error(console: Console, message: str, hint: Optional[str] = None) -> None:
    """Prints a user error as one red panel (no traceback).

    Args:
        console: the (stderr) console.
        message: what went wrong.
        hint: an extra line saying what to do.
    """
    body = Text(redact(message))
    if hint:
        body.append("\n\n")
        body.append(hint, style="yellow")
    console.print(Panel(body, title="[bold red]Error[/bold red]", border_style="red"))
