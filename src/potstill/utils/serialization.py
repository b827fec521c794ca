"""Dumping potstill components to dicts/JSON/YAML and loading them back safely.

Every dump carries `type_info` (module and class name) so a file can be turned back into the
same objects. Loading never imports a module named in a file unless it is part of potstill or
the caller allowed it explicitly: a config file cannot make potstill run arbitrary code. Classes
the running program already defined (a custom LLM in the user's script) are found without any
import, through the registry that every serializable class joins when it is defined.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from potstill.errors import UnsafeConfigError
from potstill.utils.fields import is_secret_field
from potstill.utils.fingerprint import stable_text

TYPE_INFO_KEY = "type_info"
DEFAULT_FILENAME = "potstill-file"
SaveFormats = Literal["json", "yaml"]

_S = TypeVar("_S", bound="_Serializable")

# libyaml's safe dumper/loader when PyYAML was built with it (much faster), else pure Python.
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_REGISTRY: dict[tuple[str, str], type[_Serializable]] = {}


class _Serializable:
    """Mixin for components that can be dumped and loaded with `type_info`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[(cls.__module__, cls.__qualname__)] = cls

    @classmethod
    def type_info(cls) -> dict[str, str]:
        """The `{"module", "name"}` pair written into dumps."""
        return {"module": cls.__module__, "name": cls.__qualname__}

    def dump(self, **kwargs: Any) -> dict[str, Any]:
        """Dumps the component to a JSON-compatible dict; secrets are never included.

        Args:
            **kwargs: passed to the underlying dump (subclasses decide which apply).

        Returns:
            The dict, with a `type_info` entry.
        """
        raise NotImplementedError

    def save(
        self,
        path: str | Path | None = None,
        format: SaveFormats = "json",
        dump: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Path:
        """Writes the dump to a JSON or YAML file.

        Args:
            path: the file to write; a path without a suffix is treated as a directory and
                gets `potstill-file.<format>` inside it. Defaults to the current directory.
            format: `"json"` or `"yaml"`.
            dump: a dump to write instead of `self.dump()`.
            **kwargs: passed to `dump()`.

        Returns:
            The path written.
        """
        if format not in ("json", "yaml"):
            raise ValueError(f"Invalid format {format!r} for `save`: use 'json' or 'yaml'.")
        target = Path.cwd() if path is None else Path(path)
        if not target.suffix:
            target = target / f"{DEFAULT_FILENAME}.{format}"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_file(target, dump if dump is not None else self.dump(**kwargs), format)
        return target

    @classmethod
    def from_dict(
        cls: type[_S], data: dict[str, Any], *, allowed_modules: Iterable[str] = ()
    ) -> _S:
        """Builds a component from a dump.

        Args:
            data: the dump (as returned by `dump()`).
            allowed_modules: modules outside potstill that the dump may name and that may be
                imported to find their classes.

        Returns:
            The component.

        Raises:
            UnsafeConfigError: when the dump names a class that is not a potstill component
                or lives in a module that was neither imported nor allowed.
        """
        data = dict(data)
        type_info = data.pop(TYPE_INFO_KEY, None)
        target = cls if type_info is None else resolve_class(type_info, cls, allowed_modules)
        return target._from_dump(data, tuple(allowed_modules))

    @classmethod
    def _from_dump(cls: type[_S], data: dict[str, Any], allowed_modules: tuple[str, ...]) -> _S:
        """Instantiates `cls` from a dump without `type_info`; nested dumps are rebuilt."""
        kwargs = {
            key: _Serializable.from_dict(value, allowed_modules=allowed_modules)
            if isinstance(value, dict) and TYPE_INFO_KEY in value
            else value
            for key, value in data.items()
        }
        return cls(**kwargs)

    @classmethod
    def from_json(cls: type[_S], path: str | Path, **kwargs: Any) -> _S:
        """Loads a component from a JSON file written by `save`."""
        return cls.from_dict(read_file(path, "json"), **kwargs)

    @classmethod
    def from_yaml(cls: type[_S], path: str | Path, **kwargs: Any) -> _S:
        """Loads a component from a YAML file written by `save`."""
        return cls.from_dict(read_file(path, "yaml"), **kwargs)

    @classmethod
    def from_file(cls: type[_S], path: str | Path, **kwargs: Any) -> _S:
        """Loads a component from a `.json`, `.yaml` or `.yml` file."""
        return cls.from_dict(read_file(path, _format_of(Path(path))), **kwargs)


def resolve_class(
    type_info: Any, expected: type[_S], allowed_modules: Iterable[str] = ()
) -> type[_S]:
    """Finds the class named by `type_info`, importing only potstill or allowed modules.

    Args:
        type_info: the `{"module", "name"}` dict from a dump.
        expected: the base class the result must derive from.
        allowed_modules: modules outside potstill that may be imported.

    Returns:
        The class.
    """
    if not isinstance(type_info, dict) or not {"module", "name"} <= type_info.keys():
        raise UnsafeConfigError(
            f"Invalid `type_info` {type_info!r}: expected a dict with 'module' and 'name'."
        )
    module, name = str(type_info["module"]), str(type_info["name"])
    found = _REGISTRY.get((module, name))
    if found is None:
        if not (_is_potstill_module(module) or module in set(allowed_modules)):
            raise UnsafeConfigError(
                f"The config names class {name!r} from module {module!r}, which is not part "
                f"of potstill and is not imported. potstill never imports modules named in a "
                f"config on its own: import {module!r} yourself, or pass "
                f"`allowed_modules=[{module!r}]` to allow it."
            )
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise UnsafeConfigError(
                f"The config names class {name!r} from module {module!r}, which cannot be "
                f"imported: {error}."
            ) from error
        found = _REGISTRY.get((module, name))
    if found is None or not issubclass(found, expected):
        raise UnsafeConfigError(
            f"The config names {module}.{name}, which is not a potstill "
            f"{expected.__name__}; refusing to instantiate it."
        )
    return found


def _is_potstill_module(module: str) -> bool:
    return module == "potstill" or module.startswith("potstill.")


def _format_of(path: Path) -> SaveFormats:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    raise ValueError(f"Cannot tell the format of {str(path)!r}: use a .json, .yaml or .yml file.")


def write_file(path: Path, data: dict[str, Any], format: SaveFormats) -> None:
    """Writes a dict as JSON or YAML."""
    with open(path, "w", encoding="utf-8") as handle:
        if format == "json":
            json.dump(data, handle, indent=2, ensure_ascii=False)
        else:
            yaml.dump(
                data,
                handle,
                Dumper=_YAML_DUMPER,
                default_flow_style=False,
                sort_keys=False,
                allow_unicode=True,
            )


def read_file(path: str | Path, format: SaveFormats) -> dict[str, Any]:
    """Reads a dict from a JSON or YAML file (YAML through the safe loader only)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory; give the path of a file.")
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle) if format == "json" else yaml.load(handle, Loader=_YAML_LOADER)
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r} does not hold a potstill dump (expected a mapping).")
    return data


def dump_model(model: Any, **kwargs: Any) -> dict[str, Any]:
    """Dumps a pydantic component: secrets dropped, nested components with their `type_info`.

    Args:
        model: a pydantic model that is also `_Serializable`.
        **kwargs: passed to `model_dump`.

    Returns:
        A JSON-compatible dict.
    """
    fields = type(model).model_fields
    nested = {
        name
        for name, field in fields.items()
        if not field.exclude and isinstance(getattr(model, name, None), _Serializable)
    }
    secrets = {name for name, field in fields.items() if is_secret_field(field)}
    # What JSON cannot hold becomes text without memory addresses (a callable: its name and
    # code fingerprint), so a dump, and the signatures made from it, match across processes.
    data = model.model_dump(mode="json", exclude=nested | secrets, fallback=stable_text, **kwargs)
    for name in nested:
        data[name] = getattr(model, name).dump()
    data[TYPE_INFO_KEY] = type(model).type_info()
    return data
