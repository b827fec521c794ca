"""Runtime parameters: fields whose value can be given when a pipeline runs.

A field annotated `RuntimeParameter[T]` can be set through
`Pipeline.run(params={step_name: {field: value}})`. It is required (the pipeline refuses to
run without it) when its default is `None`, and optional otherwise; wrapping it in
`Optional[...]` makes it optional whatever its default. Nested components that are themselves
`RuntimeParametersMixin` (a task's `llm`) take a nested dict.
"""

from __future__ import annotations

import inspect
import json
import typing
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, Optional, TypeVar, Union

from pydantic import BaseModel, PrivateAttr, ValidationError
from pydantic.fields import FieldInfo

from potstill.errors import PotstillUserError
from potstill.utils.docstring import parse_google_docstring
from potstill.utils.fields import is_secret_field
from potstill.utils.names import locate, nest, suggest

_T = TypeVar("_T")


class _RuntimeParameterMarker:
    """Annotation metadata that flags a field as a runtime parameter."""

    def __repr__(self) -> str:
        return "RUNTIME_PARAMETER"


RUNTIME_PARAMETER = _RuntimeParameterMarker()

# The place of the parameter being assigned (see `assigning_place`).
_ASSIGNING: ContextVar[Optional[ParameterPlace]] = ContextVar("_ASSIGNING", default=None)

RuntimeParameter = Annotated[Union[_T, None], RUNTIME_PARAMETER]
"""A field that can be set at run time, e.g. `temperature: RuntimeParameter[float] = 0.7`.

A `RuntimeParameter` field declared without a default defaults to `None` (so the component can
be built without it) and is then *required* at run time.
"""

RuntimeParametersNames = dict[str, Union[bool, "RuntimeParametersNames"]]
"""Runtime parameter name -> whether it is optional (or a nested dict for components)."""


def runtime_parameter_status(field: FieldInfo) -> tuple[bool, bool]:
    """Tells whether a pydantic field is a runtime parameter and whether it is optional.

    Args:
        field: the pydantic field.

    Returns:
        `(is_runtime_parameter, is_optional)`.
    """
    if RUNTIME_PARAMETER in field.metadata:
        has_default = field.default is not None or field.default_factory is not None
        return True, has_default
    if _union_wraps_runtime_parameter(field.annotation):
        return True, True
    return False, False


def _is_bare_runtime_parameter(annotation: Any) -> bool:
    if isinstance(annotation, str):  # postponed annotations (`from __future__ import annotations`)
        return annotation.replace(" ", "").startswith("RuntimeParameter[")
    return RUNTIME_PARAMETER in getattr(annotation, "__metadata__", ())


def _union_wraps_runtime_parameter(annotation: Any) -> bool:
    if typing.get_origin(annotation) is not Union:
        return False
    for arg in typing.get_args(annotation):
        if RUNTIME_PARAMETER in getattr(arg, "__metadata__", ()):
            return True
        if _union_wraps_runtime_parameter(arg):
            return True
    return False


class RuntimeParametersMixin(BaseModel):
    """Gives a pydantic model runtime parameters that can be listed, described and set.

    Attributes:
        _runtime_parameters: the values set through `set_runtime_parameters`.
    """

    _runtime_parameters: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Give bare `x: RuntimeParameter[T]` fields their `None` default before pydantic
        # collects the fields (it reads the class attributes after this hook runs).
        for name, annotation in inspect.get_annotations(cls).items():
            if name not in cls.__dict__ and _is_bare_runtime_parameter(annotation):
                setattr(cls, name, None)
        super().__init_subclass__(**kwargs)

    @property
    def runtime_parameters_names(self) -> RuntimeParametersNames:
        """Runtime parameter name -> whether it is optional; nested components give dicts."""
        names: RuntimeParametersNames = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name, None)
            if isinstance(value, RuntimeParametersMixin):
                names[name] = value.runtime_parameters_names
                continue
            is_runtime, optional = runtime_parameter_status(field)
            if is_runtime:
                names[name] = optional
        return names

    def get_runtime_parameters_info(self) -> list[dict[str, Any]]:
        """Describes every runtime parameter, for docs, `pipeline info` and dumps.

        Returns:
            One dict per parameter: `{"name", "optional", "description"}`, or
            `{"name", "runtime_parameters_info": [...]}` for a nested component.
        """
        info: list[dict[str, Any]] = []
        documented = parse_google_docstring(type(self)).attributes
        for name, field in type(self).model_fields.items():
            value = getattr(self, name, None)
            if isinstance(value, RuntimeParametersMixin):
                info.append(
                    {"name": name, "runtime_parameters_info": value.get_runtime_parameters_info()}
                )
                continue
            is_runtime, optional = runtime_parameter_status(field)
            if not is_runtime:
                continue
            item: dict[str, Any] = {"name": name, "optional": optional}
            description = field.description or documented.get(name)
            if description:
                item["description"] = description
            info.append(item)
        return info

    def set_runtime_parameters(self, runtime_parameters: dict[str, Any]) -> None:
        """Sets runtime parameters, validating names and values.

        Args:
            runtime_parameters: parameter name -> value; a nested component takes a dict.

        Raises:
            PotstillUserError: for an unknown name (with close matches) or a value of the
                wrong type (naming the field and the expected type).
        """
        self._set_runtime_parameters(
            runtime_parameters, where=self._runtime_parameters_label(), place=ParameterPlace(self)
        )

    def _runtime_parameters_label(self) -> str:
        return type(self).__name__

    def _set_runtime_parameters(
        self,
        runtime_parameters: dict[str, Any],
        where: str,
        place: Optional[ParameterPlace] = None,
    ) -> None:
        place = place if place is not None else ParameterPlace(self)
        if not isinstance(runtime_parameters, dict):
            raise PotstillUserError(
                f"Runtime parameters for {where} must be a dict of name -> value, "
                f"got {type(runtime_parameters).__name__}."
            )
        names = self.runtime_parameters_names
        for name, value in runtime_parameters.items():
            if name not in names:
                hint = place.elsewhere(name, value) or suggest(name, names)
                raise PotstillUserError(f"Unknown runtime parameter {name!r} for {where}. {hint}")
            current = getattr(self, name)
            if isinstance(current, RuntimeParametersMixin):
                current._set_runtime_parameters(
                    value, where=f"{where} -> {name}", place=place.child(name)
                )
                continue
            token = _ASSIGNING.set(place.child(name))
            try:
                self._assign_runtime_parameter(name, value, where)
            finally:
                _ASSIGNING.reset(token)

    def _assign_runtime_parameter(self, name: str, value: Any, where: str) -> None:
        field = type(self).model_fields[name]
        try:
            # Validate whatever the model's `validate_assignment` setting (a component
            # built on the mixin alone must still coerce and reject values).
            type(self).__pydantic_validator__.validate_assignment(self, name, value)
        except ValidationError as error:
            shown = "'**********'" if is_secret_field(field) else repr(value)
            reasons = "; ".join(e["msg"] for e in error.errors())
            raise PotstillUserError(
                f"Invalid value {shown} for runtime parameter {name!r} of {where}: {reasons}. "
                f"Expected {_describe_type(field.annotation)}."
            ) from None
        self._runtime_parameters[name] = value


def assigning_place() -> Optional[ParameterPlace]:
    """Where the runtime parameter that `_assign_runtime_parameter` is setting sits, for an
    override that validates a nested value (an LLM's `generation_kwargs`) and wants to say
    where a misplaced name belongs; None outside `set_runtime_parameters`."""
    return _ASSIGNING.get()


@dataclass(frozen=True)
class ParameterPlace:
    """Where runtime parameters are being set: the component whose `set_runtime_parameters`
    was called (usually a step) and the keys from it to the current level.

    It lets an error for a name given at the wrong level (`temperature` beside `llm`'s
    fields instead of under its `generation_kwargs`) say where the name belongs.

    Attributes:
        root: the component the parameters were given to.
        path: the keys from `root` to the current level, e.g. `("llm", "generation_kwargs")`.
    """

    root: RuntimeParametersMixin
    path: tuple[str, ...] = ()

    def child(self, key: str) -> ParameterPlace:
        """The place one level down, under `key`."""
        return ParameterPlace(self.root, (*self.path, key))

    def elsewhere(self, name: str, value: Any) -> Optional[str]:
        """Where an unknown name is valid instead, with the nesting to use.

        Args:
            name: a name that is not valid at this place.
            value: the value it was given (shown in the example, unless it is a secret).

        Returns:
            A sentence such as "'temperature' is a generation kwarg: pass it as {'llm':
            {'generation_kwargs': {'temperature': 0.3}}}.", or None when no other level of
            the root knows the name.
        """
        found = self.find(name)
        if found is None:
            return None
        example, command_line = self.example(found, value)
        return f"{name!r} {self.describe(found)}: pass it as {example!r}{command_line}."

    def find(self, name: str) -> Optional[tuple[str, ...]]:
        """The shallowest path from the root to `name` at another level than this one."""
        for found in locate(name, self.root.runtime_parameters_names):
            if found[:-1] != self.path:
                return found
        return None

    def describe(self, found: tuple[str, ...]) -> str:
        """What the name at `found` is, e.g. "is a generation kwarg"."""
        container = found[:-1]
        if container and container[-1] == "generation_kwargs":
            return "is a generation kwarg"
        if container:
            return f"belongs under `{'.'.join(container)}`"
        return f"is a runtime parameter of {self.root._runtime_parameters_label()} itself"

    def example(self, found: tuple[str, ...], value: Any) -> tuple[Any, str]:
        """The nested dict that sets `value` at `found`, and the same as `--param` options
        (when the root is a step), e.g. " (on the command line: --param ...)"."""
        if self._is_secret(found):
            value = "**********"
        step_name = getattr(self.root, "name", None)
        if not isinstance(step_name, str):
            return nest(found, value), ""
        options = " ".join(
            f"--param {'.'.join((step_name, *path))}={_cli_value(leaf)}"
            for path, leaf in _leaves(found, value)
        )
        return nest(found, value), f" (on the command line: {options})"

    def _is_secret(self, path: tuple[str, ...]) -> bool:
        component: Any = self.root
        for key in path[:-1]:
            component = getattr(component, key, None)
        if not isinstance(component, BaseModel):
            return False
        field = type(component).model_fields.get(path[-1])
        return field is not None and is_secret_field(field)


def _leaves(path: tuple[str, ...], value: Any) -> list[tuple[tuple[str, ...], Any]]:
    """The `(keys, value)` of every non-dict value in `value`, under `path`."""
    if isinstance(value, dict) and value:
        return [leaf for key, item in value.items() for leaf in _leaves((*path, str(key)), item)]
    return [(path, value)]


def _cli_value(value: Any) -> str:
    """How a value is written after `--param NAME=` (a string as is, anything else as JSON)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except TypeError:
        return str(value)


def _describe_type(annotation: Any) -> str:
    """Formats a type annotation for an error message, without pydantic's metadata."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _describe_type(args[0])
    if origin is Union:
        return " | ".join(dict.fromkeys(_describe_type(arg) for arg in _union_members(args)))
    if annotation is type(None):
        return "None"
    if origin is not None and args:
        name = getattr(origin, "__name__", repr(origin))
        return f"{name}[{', '.join(_describe_type(arg) for arg in args)}]"
    return getattr(annotation, "__name__", repr(annotation).replace("typing.", ""))


def _union_members(args: tuple[Any, ...]) -> list[Any]:
    """The members of a union, with nested (and `Annotated`) unions flattened."""
    members: list[Any] = []
    for arg in args:
        inner = typing.get_args(arg)[0] if typing.get_origin(arg) is Annotated else arg
        if typing.get_origin(inner) is Union:
            members.extend(_union_members(typing.get_args(inner)))
        else:
            members.append(inner)
    return members
