"""Routing batch functions: send each batch of a step to some of its successors only.

```python
from potstill.pipeline import Pipeline, sample_n_steps

with Pipeline(name="routing") as pipeline:
    load = LoadDataFromDicts(data=[...])
    generators = [TextGeneration(llm=llm) for llm in (llm_a, llm_b, llm_c)]
    combine = CombineGenerations()  # process(self, *inputs: StepInput)
    load >> sample_n_steps(2) >> generators >> combine
```

Each batch `load` emits goes to two of the three generators, drawn at random. A step fed by
all the routed steps (`combine`, a *convergence step*) receives, for each routed batch, the
outputs of the steps that got it, one list per step (`process(*inputs)`).

A routing function takes the names of the successors and returns the names of those that
get the batch. The engine records every decision in the run's folder (see `routing.py`), so
a resumed run sends each batch where it went the first time (a random choice is not drawn
again).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from potstill.errors import PotstillUserError, UnsafeConfigError
from potstill.utils.serialization import TYPE_INFO_KEY, _Serializable

if TYPE_CHECKING:
    from potstill.steps.base import _Step

__all__ = [
    "RoutingBatchFunc",
    "RoutingBatchFunction",
    "routing_batch_function",
    "sample_n_steps",
]

RoutingBatchFunc = Callable[[List[str]], List[str]]
"""Successor step names -> the names of those that get the batch."""

# (module, qualified name) -> a callable that rebuilds the routing function from a dump's
# `kwargs`: factories like `sample_n_steps`, and every decorated function of this program.
_KNOWN: dict[tuple[str, str], Callable[..., RoutingBatchFunction]] = {}


@dataclass(frozen=True)
class RoutedBatch:
    """What a routing function is routing: batch `seq_no` of step `step_name`."""

    step_name: str
    seq_no: int


class RoutingBatchFunction(BaseModel, _Serializable):
    """Decides which successors of a step receive each of its batches.

    Connect it between a step and a list of successors:
    `step >> routing_function >> [a, b, c]`, or `step.connect(a, b, c,
    routing_batch_function=routing_function)`.

    Attributes:
        routing_function: successor names -> the names that receive the batch.
        description: what the function does (kept in dumps).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    routing_function: RoutingBatchFunc = Field(exclude=True)
    description: Optional[str] = None

    _step: Any = PrivateAttr(default=None)  # the `_Step` it routes for
    _routed_batch_registry: dict[str, dict[int, list[str]]] = PrivateAttr(default_factory=dict)
    _factory: Optional[tuple[str, str, dict[str, Any]]] = PrivateAttr(default=None)
    _max_steps: Optional[int] = PrivateAttr(default=None)

    def route_batch(self, batch: Any, steps: List[str]) -> List[str]:
        """The successors that receive `batch`, recorded in `_routed_batch_registry`.

        Args:
            batch: the batch being routed (anything with `step_name` and `seq_no`).
            steps: the names of all the successors.

        Returns:
            The names of those that receive it, each once, in the order returned.

        Raises:
            PotstillUserError: when the function returns a name that is not a successor.
        """
        chosen = list(dict.fromkeys(self.routing_function(list(steps))))
        unknown = [name for name in chosen if name not in steps]
        if unknown:
            raise PotstillUserError(
                f"Routing batch function {self._label()} returned {unknown}, which are not "
                f"successors of the step it routes for; it must return names among {steps}."
            )
        self._register(batch, chosen)
        return chosen

    def __call__(self, batch: Any, steps: List[str]) -> List[str]:
        """Same as `route_batch`."""
        return self.route_batch(batch, steps)

    def _register(self, batch: Any, chosen: list[str]) -> None:
        step_name = getattr(batch, "step_name", None)
        seq_no = getattr(batch, "seq_no", None)
        if step_name is not None and seq_no is not None:
            self._routed_batch_registry.setdefault(step_name, {})[seq_no] = chosen

    def __rshift__(self, other: list[_Step]) -> list[_Step]:
        """`step >> routing_function >> [a, b]` connects the step to a and b; returns them."""
        if not isinstance(other, list):
            raise PotstillUserError(
                "A routing batch function routes to a list of steps: write "
                "`step >> routing_function >> [step_a, step_b, ...]`."
            )
        if self._step is None:
            raise PotstillUserError(
                "This routing batch function has no upstream step yet: write "
                "`step >> routing_function >> [step_a, step_b, ...]`."
            )
        self._step.connect(*other)
        return other

    def _label(self) -> str:
        if self._factory is not None:
            _, name, kwargs = self._factory
            arguments = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
            return f"{name}({arguments})"
        return getattr(self.routing_function, "__qualname__", repr(self.routing_function))

    # -- serialization ---------------------------------------------------------------------

    def __getstate__(self) -> dict[Any, Any]:
        """Pickled; one built by a factory (`sample_n_steps`) is rebuilt from it when
        unpickled (its function is a closure, which `pickle` cannot take)."""
        state = super().__getstate__()
        if self._factory is not None:
            state = {**state, "__dict__": {**state["__dict__"], "routing_function": None}}
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        if self._factory is not None and self.routing_function is None:
            module, name, arguments = self._factory
            rebuilt = _KNOWN[(module, name)](**arguments).routing_function
            self.__dict__["routing_function"] = rebuilt

    def dump(self, **kwargs: Any) -> dict[str, Any]:
        """`{"description", "type_info": {"module", "name", "kwargs"}}`: the function (or the
        factory and its arguments) that rebuilds it."""
        if self._factory is not None:
            module, name, arguments = self._factory
        else:
            function = self.routing_function
            module = getattr(function, "__module__", "")
            name = getattr(function, "__qualname__", repr(function))
            arguments = {}
        return {
            "description": self.description,
            TYPE_INFO_KEY: {"module": module, "name": name, "kwargs": dict(arguments)},
        }

    @classmethod
    def from_dict(  # type: ignore[override]
        cls, data: dict[str, Any], *, allowed_modules: Iterable[str] = ()
    ) -> RoutingBatchFunction:
        """Rebuilds a routing function from `dump()`.

        Only potstill's factories (`sample_n_steps`) and functions decorated with
        `@routing_batch_function` in the running program (or in `allowed_modules`, which
        are imported) can be named: a config never imports arbitrary code.

        Args:
            data: the dump.
            allowed_modules: modules outside potstill that may be imported to find it.

        Returns:
            The routing batch function.
        """
        info = data.get(TYPE_INFO_KEY) if isinstance(data, dict) else None
        if not isinstance(info, dict) or not {"module", "name"} <= info.keys():
            raise UnsafeConfigError(
                f"Invalid routing batch function dump {data!r}: expected a `type_info` with "
                "'module' and 'name'."
            )
        module, name = str(info["module"]), str(info["name"])
        make = _KNOWN.get((module, name))
        if make is None and (module.startswith("potstill.") or module in set(allowed_modules)):
            import importlib

            importlib.import_module(module)
            make = _KNOWN.get((module, name))
        if make is None:
            raise UnsafeConfigError(
                f"The config names routing batch function {name!r} from module {module!r}, "
                "which this program has not defined. Import the module that defines it (with "
                f"`@routing_batch_function`) first, or pass `allowed_modules=[{module!r}]`."
            )
        rebuilt = make(**dict(info.get("kwargs") or {}))
        if data.get("description") is not None:
            rebuilt.description = data["description"]
        return rebuilt


def routing_batch_function(
    func: Union[RoutingBatchFunc, str, None] = None, *, description: Optional[str] = None
) -> Any:
    """Makes a `RoutingBatchFunction` from a function of the successor names.

    Works as `@routing_batch_function`, `@routing_batch_function()` and
    `@routing_batch_function(description="...")`.

    ```python
    @routing_batch_function
    def two_of_them(steps: list[str]) -> list[str]:
        return random.sample(steps, 2)

    load >> two_of_them >> [generate_a, generate_b, generate_c]
    ```

    Args:
        func: the routing function (successor names -> names that get the batch).
        description: what it does, kept in dumps.

    Returns:
        The `RoutingBatchFunction`, or a decorator that makes one.
    """
    if isinstance(func, str):  # `@routing_batch_function("description")`
        description, func = func, None

    def wrap(function: RoutingBatchFunc) -> RoutingBatchFunction:
        if not callable(function):
            raise PotstillUserError(
                f"@routing_batch_function needs a function of the successor names, got "
                f"{function!r}."
            )
        key = (getattr(function, "__module__", ""), getattr(function, "__qualname__", ""))
        if key not in _KNOWN:
            _KNOWN[key] = lambda **_: RoutingBatchFunction(
                routing_function=function, description=description
            )
        return RoutingBatchFunction(routing_function=function, description=description)

    return wrap(func) if func is not None else wrap


def _factory(name: str) -> Callable[[Callable[..., RoutingBatchFunction]], Any]:
    """Registers a potstill function that builds routing functions under its public `name`,
    so that dumps name it (with its arguments) and configs can rebuild what it built."""

    def register(make: Callable[..., RoutingBatchFunction]) -> Callable[..., RoutingBatchFunction]:
        def build(**kwargs: Any) -> RoutingBatchFunction:
            built = make(**kwargs)
            built._factory = (__name__, name, kwargs)
            return built

        _KNOWN[(__name__, name)] = build
        return build

    return register


@_factory("sample_n_steps")
def _build_sample_n_steps(n: int) -> RoutingBatchFunction:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise PotstillUserError(f"sample_n_steps(n={n!r}): `n` must be a positive integer.")

    def sample_n(steps: List[str]) -> List[str]:
        if n > len(steps):
            raise PotstillUserError(
                f"sample_n_steps(n={n}) cannot pick {n} of {len(steps)} successors {steps}."
            )
        return random.sample(steps, n)

    built = RoutingBatchFunction(
        routing_function=sample_n,
        description=f"Sample {n} steps from the list of downstream steps.",
    )
    built._max_steps = n
    return built


def sample_n_steps(n: int) -> RoutingBatchFunction:
    """A routing batch function that sends each batch to `n` successors drawn at random
    (with Python's `random`, so `random.seed` makes the draws repeatable).

    Args:
        n: how many successors get each batch.

    Returns:
        The routing batch function.
    """
    return _build_sample_n_steps(n=n)
