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
from typing import Any, Literal, Optional, TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError

from potstill.errors import PotstillUserError, RemoteCodeError, UnsafeConfigError
from potstill.utils.fields import is_secret_field
from potstill.utils.fingerprint import stable_text
from potstill.utils.yaml_rows import dump_yaml

TYPE_INFO_KEY = "type_info"
DEFAULT_FILENAME = "potstill-file"
SaveFormats = Literal["json", "yaml"]

_S = TypeVar("_S", bound="_Serializable")

# libyaml's safe dumper/loader when PyYAML was built with it (much faster), else pure Python.
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_REGISTRY: dict[tuple[str, str], type[_Serializable]] = {}

MAIN_MODULE = "__main__"  # the module of the script Python runs
_LOCALS = "<locals>"  # in the qualified name of a class defined inside a function
# What messages call the base classes that are not public names.
_KINDS = {"_Step": "step", "_Task": "task", "_Serializable": "component"}


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
        """Writes the dump to a JSON or YAML file (for `from_file`, and for a pipeline the
        CLI).

        A pipeline warns when a step (or its LLM) is a class defined in the running script or
        inside a function: the file names it, but no other program can load it from there.

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
        data = dump if dump is not None else self.dump(**kwargs)
        self._check_saveable(data)
        write_file(target, data, format)
        return target

    def _check_saveable(self, data: dict[str, Any]) -> None:
        """Called by `save` with the dump it is about to write, to warn about what another
        program could not load from it (nothing, unless a subclass says otherwise)."""

    @classmethod
    def from_dict(
        cls: type[_S],
        data: dict[str, Any],
        *,
        allowed_modules: Iterable[str] = (),
        allow_remote_code: bool = False,
    ) -> _S:
        """Builds a component from a dump.

        Args:
            data: the dump (as returned by `dump()`).
            allowed_modules: modules outside potstill that the dump may name and that may be
                imported to find their classes.
            allow_remote_code: let the dump set `trust_remote_code` (a model whose
                repository's own code runs when it loads); refused otherwise.

        Returns:
            The component.

        Raises:
            UnsafeConfigError: when the dump names a class that is not a potstill component
                or lives in a module that was neither imported nor allowed.
            RemoteCodeError: when the dump sets `trust_remote_code` and
                `allow_remote_code` is not given.
        """
        refuse_remote_code(data, allow_remote_code)
        data = dict(data)
        type_info = data.pop(TYPE_INFO_KEY, None)
        target = cls if type_info is None else resolve_class(type_info, cls, allowed_modules)
        return target._from_dump(data, tuple(allowed_modules))

    @classmethod
    def _from_dump(cls: type[_S], data: dict[str, Any], allowed_modules: tuple[str, ...]) -> _S:
        """Instantiates `cls` from a dump without `type_info`; nested dumps are rebuilt
        (the caller has checked the whole dump for remote code)."""
        kwargs = {
            key: _Serializable.from_dict(
                value, allowed_modules=allowed_modules, allow_remote_code=True
            )
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
    where = defined_where(module, name)
    if found is None and where is not None:
        # Another program's script, or a function's body: there is nothing to import.
        raise UnsafeConfigError(
            f"The config names class {name!r}, defined {where} when the pipeline was "
            "saved: no other program can load it. "
            f"{importable_module_advice(name.split('.')[-1])}"
        )
    if found is None:
        if not (_is_potstill_module(module) or module in set(allowed_modules)):
            raise UnsafeConfigError(
                f"The config names class {name!r} from module {module!r}, which is not part "
                f"of potstill and is not imported. potstill never imports modules named in a "
                f"config on its own: import {module!r} yourself, or pass "
                f"`allowed_modules=[{module!r}]` to allow it."
            )
        try:
            imported = importlib.import_module(module)
        except ImportError as error:
            raise UnsafeConfigError(
                f"The config names class {name!r} from module {module!r}, which cannot be "
                f"imported: {error}."
            ) from error
        found = _REGISTRY.get((module, name))
        if found is None and _is_potstill_module(module):
            # A potstill module that re-exports the class (`potstill.pipeline.local`).
            found = getattr(imported, name, None)
    if found is None:
        raise UnsafeConfigError(
            f"The config names class {name!r} from module {module!r}, but that module has "
            f"no potstill component of that name (was the class renamed or moved?)."
        )
    if not isinstance(found, type) or not issubclass(found, expected):
        raise UnsafeConfigError(
            f"The config names {module}.{name}, which is not a potstill "
            f"{_KINDS.get(expected.__name__, expected.__name__)}; refusing to instantiate it."
        )
    return found


def importable_module_advice(class_name: str) -> str:
    """What to do with a class that a saved file cannot name: the same words for the warning
    at save time and the error at load time.

    Args:
        class_name: the class.

    Returns:
        The advice, as sentences.
    """
    return (
        f"Move {class_name} into an importable module (e.g. `my_steps.py` next to your "
        "script) at its top level, import it from there, save the pipeline again, and allow "
        "that module when loading: `potstill pipeline run --allow-module my_steps ...` on "
        "the command line, or `Pipeline.from_yaml(path, allowed_modules=['my_steps'])` in "
        "Python."
    )


def defined_where(module: str, name: str) -> Optional[str]:
    """Where a class that only its own program can load was defined (its `__main__` script,
    or a function's body), or `None` for a class other programs can import.

    Args:
        module: the class's module.
        name: its qualified name.
    """
    if _LOCALS in name:
        return f"inside a function (`{module}.{name.split('.' + _LOCALS)[0]}`)"
    if module == MAIN_MODULE:
        return f"in the running script (`{MAIN_MODULE}`)"
    return None


REMOTE_CODE_FIELD = "trust_remote_code"


def refuse_remote_code(data: Any, allowed: bool) -> None:
    """Refuses a dump that sets `trust_remote_code` anywhere (a field of `TransformersLLM`
    or `vLLM`, or a key inside their `model_kwargs`/`extra_kwargs`), unless allowed.

    Loading such a model runs Python code from its repository, so a config shared with
    someone must not turn it on silently. Setting it in Python code stays allowed.

    Args:
        data: the dump, or a whole pipeline dump.
        allowed: whether the caller allowed remote code explicitly.

    Raises:
        RemoteCodeError: naming where the dump sets it and how to allow it.
    """
    if allowed:
        return
    found = _remote_code_settings(data, "")
    if found:
        raise RemoteCodeError(
            f"The config sets `{REMOTE_CODE_FIELD}` to true ({', '.join(found)}): loading "
            "that model would run code from its repository on this machine. If you trust "
            "the repository, allow it with `--allow-remote-code` on the command line, or "
            "`allow_remote_code=True` in `from_yaml`/`from_json`/`from_dict`."
        )


def _remote_code_settings(value: Any, path: str) -> list[str]:
    """The paths inside a dump where `trust_remote_code` is set to a true value."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key == REMOTE_CODE_FIELD and _is_true(item):
                found.append(where)
            else:
                found.extend(_remote_code_settings(item, where))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            name = item.get("name") if isinstance(item, dict) else None
            label = name if isinstance(name, str) else index
            found.extend(_remote_code_settings(item, f"{path}[{label}]"))
    return found


def _is_true(value: Any) -> bool:
    """Whether pydantic would read the value as `True` (`true`, `"yes"`, `1`...)."""
    try:
        return _BOOL.validate_python(value) is True
    except ValidationError:
        return bool(value)


_BOOL: TypeAdapter[bool] = TypeAdapter(bool)


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
            dump_yaml(  # long inline datasets one row per line (see `yaml_rows`)
                data,
                handle,
                Dumper=_YAML_DUMPER,
                default_flow_style=False,
                sort_keys=False,
                allow_unicode=True,
            )


def read_file(path: str | Path, format: SaveFormats) -> dict[str, Any]:
    """Reads a dict from a JSON or YAML file (YAML through the safe loader only).

    Raises:
        PotstillUserError: for a file larger than `MAX_CONFIG_BYTES` or YAML whose aliases
            expand too far (see `parse_config`).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory; give the path of a file.")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise PotstillUserError(
            f"{str(path)!r} is {size:,} bytes, more than a config may be "
            f"({MAX_CONFIG_BYTES:,} bytes); refusing to read it."
        )
    data = parse_config(path.read_text(encoding="utf-8"), format, repr(str(path)))
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r} does not hold a potstill dump (expected a mapping).")
    return data


def parse_config(text: str, format: SaveFormats, source: str) -> Any:
    """Parses config text as JSON, or as YAML through the safe loader with bounded aliases.

    A YAML alias repeats the node its anchor names, without copying it; a few hundred bytes
    of nested aliases (a "billion laughs" document) stand for billions of nodes, which
    exhaust memory as soon as anything walks them. Documents with more than
    `MAX_YAML_ALIASES` aliases, whose aliases add more than `MAX_YAML_ALIAS_NODES` nodes, or
    with an alias to a node that contains it, are refused.

    Args:
        text: the file's content.
        format: `"json"` or `"yaml"`.
        source: names the file or URL in error messages.

    Returns:
        The parsed value.

    Raises:
        PotstillUserError: for a document refused for its aliases or its nesting depth.
    """
    try:
        if format == "json":
            return json.loads(text)
        loader = _YAML_LOADER(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_aliases(node, source)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except RecursionError:
        raise PotstillUserError(f"{source} is nested too deeply to be a config.") from None


MAX_CONFIG_BYTES = 16 * 1024 * 1024
"""The largest config file (or URL answer) potstill reads."""
MAX_YAML_ALIASES = 100
"""The most aliases (`*name`) a YAML config may use."""
MAX_YAML_ALIAS_NODES = 100_000
"""The most nodes that the aliases of a YAML config may add to it."""


def _check_aliases(root: yaml.Node, source: str) -> None:
    """Refuses a composed YAML document whose aliases repeat too much (or loop).

    An alias makes a second reference to a node, so the aliases are the references beyond
    one per node; the expanded size of each node is counted once (depth first, without
    recursion, so deep documents cannot exhaust the stack).
    """
    sizes: dict[int, int] = {}  # node id -> the nodes it stands for, expanded
    references = 0
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]  # (node, children counted)
    while stack:
        node, counted = stack.pop()
        key = id(node)
        if counted:
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            open_nodes.discard(key)
        elif key in open_nodes:
            raise PotstillUserError(
                f"{source} has a YAML alias inside the node it refers to (a recursive "
                "document); refusing to load it."
            )
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            children = _children(node)
            references += len(children)
            stack.extend((child, False) for child in children)
    aliases = references - (len(sizes) - 1)
    if aliases > MAX_YAML_ALIASES:
        raise PotstillUserError(
            f"{source} uses {aliases:,} YAML aliases, more than {MAX_YAML_ALIASES}; refusing "
            "to load it. Write the repeated parts out instead."
        )
    added = sizes[id(root)] - len(sizes)
    if added > MAX_YAML_ALIAS_NODES:
        raise PotstillUserError(
            f"{source} uses YAML aliases that expand it by {added:,} nodes (more than "
            f"{MAX_YAML_ALIAS_NODES:,}: a 'billion laughs' document); refusing to load it."
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


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
