"""Generation kwargs: the keyword arguments of an LLM's `generate`/`agenerate`.

They are runtime parameters under `generation_kwargs`. This module reads them from the
method's signature (names, defaults, types) and docstring (descriptions), and validates a
dict of them up front, so that a typo or a wrong type fails when the pipeline is configured
instead of turning every row of a batch into `None` at call time.
"""

from __future__ import annotations

import inspect
import typing
from functools import cache
from typing import Any, Callable, Optional

from pydantic import ConfigDict, ValidationError, create_model

from potstill.errors import PotstillUserError
from potstill.utils.docstring import parse_google_docstring
from potstill.utils.names import suggest

# Arguments of `generate`/`agenerate` that are not generation kwargs (`structured_output`
# is the request's structured output, set from the LLM's field or the input: see
# `potstill.llms.structured`).
NOT_GENERATION_KWARGS = frozenset(
    {"self", "input", "inputs", "num_generations", "structured_output"}
)


class GenerationKwargsSpec:
    """What the generation method of one LLM class accepts.

    Attributes:
        parameters: name -> `inspect.Parameter` for each generation kwarg.
        accepts_any: whether the method also takes `**kwargs`.
        descriptions: name -> description from the method's `Args:` docstring section.
        native_num_generations: whether the method takes `num_generations` itself.
    """

    def __init__(self, method: Callable[..., Any]) -> None:
        signature = inspect.signature(method)
        self.parameters = {
            name: parameter
            for name, parameter in signature.parameters.items()
            if name not in NOT_GENERATION_KWARGS
            and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
        }
        self.accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        self.native_num_generations = "num_generations" in signature.parameters
        self.descriptions = parse_google_docstring(method).args
        self._method = method
        self._validator: Any = None

    def names(self) -> dict[str, bool]:
        """Kwarg name -> whether it is optional (has a default)."""
        return {
            name: parameter.default is not inspect.Parameter.empty
            for name, parameter in self.parameters.items()
        }

    def info(self) -> list[dict[str, Any]]:
        """One `{"name", "optional", "description"}` dict per kwarg."""
        items = []
        for name, optional in self.names().items():
            item: dict[str, Any] = {"name": name, "optional": optional}
            if name in self.descriptions:
                item["description"] = self.descriptions[name]
            items.append(item)
        return items

    def validate(
        self,
        kwargs: dict[str, Any],
        where: str,
        elsewhere: Optional[Callable[[str, Any], Optional[str]]] = None,
    ) -> dict[str, Any]:
        """Checks names and types of generation kwargs and coerces their values.

        Args:
            kwargs: the generation kwargs to check.
            where: names the LLM (and step) in error messages.
            elsewhere: for an unknown kwarg, says where else the name is valid (e.g.
                `max_retries` is a field of the LLM, not a generation kwarg), or None.

        Returns:
            The kwargs with each known one coerced to its annotated type (e.g. the string
            `"0.3"` from a CLI `--param` becomes `0.3` for a `float` kwarg); kwargs that only
            `**kwargs` accepts are returned as given.

        Raises:
            PotstillUserError: naming the unknown kwarg (with close matches) or the kwarg,
                value and expected type.
        """
        if not isinstance(kwargs, dict):
            raise PotstillUserError(
                f"`generation_kwargs` of {where} must be a dict, got {type(kwargs).__name__}."
            )
        if not self.accepts_any:
            for name in kwargs:
                if name not in self.parameters:
                    hint = elsewhere(name, kwargs[name]) if elsewhere is not None else None
                    raise PotstillUserError(
                        f"Unknown generation kwarg {name!r} for {where}. "
                        f"{hint or suggest(name, self.parameters)}"
                    )
        known = {name: value for name, value in kwargs.items() if name in self.parameters}
        try:
            validated = self._get_validator().model_validate(known)
        except ValidationError as error:
            first = error.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "?"
            raise PotstillUserError(
                f"Invalid generation kwarg {name}={kwargs.get(name)!r} for {where}: {first['msg']}."
            ) from None
        return {
            name: validated.__dict__[name] if name in known else value
            for name, value in kwargs.items()
        }

    def _get_validator(self) -> Any:
        if self._validator is None:
            hints = _type_hints(self._method)
            fields: dict[str, Any] = {}
            for name, parameter in self.parameters.items():
                annotation = hints.get(name, Any)
                default = parameter.default
                fields[name] = (annotation, None if default is inspect.Parameter.empty else default)
            self._validator = create_model(  # type: ignore[call-overload]
                "GenerationKwargs",
                __config__=ConfigDict(arbitrary_types_allowed=True),
                **fields,
            )
        return self._validator


def _type_hints(method: Callable[..., Any]) -> dict[str, Any]:
    function = inspect.unwrap(method)
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception:  # unresolvable forward references: validate names only
        return {}


@cache
def spec_for(method: Callable[..., Any]) -> GenerationKwargsSpec:
    """The (cached) spec of a generation method.

    Args:
        method: an LLM class's `generate` or `agenerate` function.

    Returns:
        Its `GenerationKwargsSpec`.
    """
    return GenerationKwargsSpec(method)
