"""Runtime parameters: fields whose value can be given when a pipeline runs.

A field annotated `RuntimeParameter[T]` can be set through
`Pipeline.run(params={step_name: {field: value}})`. It is required (the pipeline refuses to
run without it) when its default is `None`, and optional otherwise; wrapping it in
`Optional[...]` makes it optional whatever its default. Nested components that are themselves
`RuntimeParametersMixin` (a task's `llm`) take a nested dict.
"""

from __future__ import annotations

import typing
import warnings
from typing import Annotated, Any, TypeVar, Union

from pydantic import BaseModel, Field, PrivateAttr, ValidationError
from pydantic.fields import FieldInfo
from pydantic.warnings import UnsupportedFieldAttributeWarning

from potstill.errors import PotstillUserError
from potstill.utils.docstring import parse_google_docstring
from potstill.utils.fields import is_secret_field
from potstill.utils.names import suggest

_T = TypeVar("_T")


class _RuntimeParameterMarker:
    """Annotation metadata that flags a field as a runtime parameter."""

    def __repr__(self) -> str:
        return "RUNTIME_PARAMETER"


RUNTIME_PARAMETER = _RuntimeParameterMarker()

RuntimeParameter = Annotated[Union[_T, None], Field(default=None), RUNTIME_PARAMETER]
"""A field that can be set at run time, e.g. `temperature: RuntimeParameter[float] = 0.7`."""

# `Optional[RuntimeParameter[T]] = <default>` puts the alias's `Field(default=None)` inside a
# union, where pydantic ignores it (the assigned default applies) and warns; the warning is
# expected and harmless for this alias, so it is silenced for this message only.
warnings.filterwarnings(
    "ignore",
    message=r"The 'default' attribute with value None was provided to the `Field\(\)` function",
    category=UnsupportedFieldAttributeWarning,
)

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
        self._set_runtime_parameters(runtime_parameters, where=self._runtime_parameters_label())

    def _runtime_parameters_label(self) -> str:
        return type(self).__name__

    def _set_runtime_parameters(self, runtime_parameters: dict[str, Any], where: str) -> None:
        if not isinstance(runtime_parameters, dict):
            raise PotstillUserError(
                f"Runtime parameters for {where} must be a dict of name -> value, "
                f"got {type(runtime_parameters).__name__}."
            )
        names = self.runtime_parameters_names
        for name, value in runtime_parameters.items():
            if name not in names:
                raise PotstillUserError(
                    f"Unknown runtime parameter {name!r} for {where}. {suggest(name, names)}"
                )
            current = getattr(self, name)
            if isinstance(current, RuntimeParametersMixin):
                current._set_runtime_parameters(value, where=f"{where} -> {name}")
                continue
            self._assign_runtime_parameter(name, value, where)

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
