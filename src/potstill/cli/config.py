"""Loading a pipeline config (a local file or an http(s) URL) without importing strangers.

A config names the class of every step and LLM. potstill instantiates only its own classes
and classes from modules the user allows with `--allow-module`; a config naming anything
else is refused before any module is imported. YAML is read with the safe loader, so tags
such as `!!python/object` are rejected too.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from potstill.errors import PotstillUserError
from potstill.pipeline import Pipeline
from potstill.utils.serialization import read_file

_URL_TIMEOUT_S = 30.0
_MAX_CONFIG_BYTES = 16 * 1024 * 1024


def is_url(config: str) -> bool:
    """Whether `config` is an http(s) URL rather than a local path."""
    return urllib.parse.urlparse(config).scheme in ("http", "https")


def load_pipeline(config: str, allowed_modules: Iterable[str] = ()) -> Pipeline:
    """Builds the pipeline a config file (or URL) describes.

    Args:
        config: a `.yaml`/`.yml`/`.json` path, or an http(s) URL serving one.
        allowed_modules: modules outside potstill whose classes the config may name; they
            are imported (from the installed packages or the current directory) if needed.

    Returns:
        The pipeline.

    Raises:
        PotstillUserError: when the config cannot be read, is not a pipeline, or names a
            class potstill refuses to load.
    """
    allowed = [module.strip() for module in allowed_modules if module.strip()]
    if allowed and "" not in sys.path and os.getcwd() not in sys.path:
        # `python -m` would find modules in the current directory; a console script does
        # not. Appended, so an allowed module never shadows an installed package.
        sys.path.append(os.getcwd())
    data = _read_url(config) if is_url(config) else _read_path(config)
    try:
        return Pipeline.from_dict(data, allowed_modules=allowed)
    except PotstillUserError:
        raise
    except (TypeError, ValueError, KeyError) as error:
        # pydantic's ValidationError is a ValueError: a field the class does not accept,
        # a value of the wrong type, a missing `steps` entry...
        raise PotstillUserError(
            f"The config {config!r} does not describe a valid pipeline: {error}"
        ) from None


def _read_path(config: str) -> dict[str, Any]:
    path = Path(config).expanduser()
    if not path.exists():
        raise PotstillUserError(f"Config file {config!r} not found.")
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise PotstillUserError(
            f"Config file {config!r} must end in .yaml, .yml or .json "
            "(write one with `pipeline.save(path, format='yaml')`)."
        )
    try:
        return read_file(path, "json" if path.suffix.lower() == ".json" else "yaml")
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise PotstillUserError(f"Cannot read config {config!r}: {_short(error)}") from None


def _read_url(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json, */*"})
    host = urllib.parse.urlparse(url).hostname or ""
    token = os.environ.get("HF_TOKEN")
    if token and _is_hub_host(host):
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=_URL_TIMEOUT_S) as response:
            body = response.read(_MAX_CONFIG_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise PotstillUserError(
            f"Cannot fetch config {url!r}: HTTP {error.code} {error.reason}."
        ) from None
    except (urllib.error.URLError, OSError) as error:
        raise PotstillUserError(f"Cannot fetch config {url!r}: {_short(error)}") from None
    if len(body) > _MAX_CONFIG_BYTES:
        raise PotstillUserError(f"Config {url!r} is larger than 16 MiB; refusing it.")
    text = body.decode("utf-8", errors="replace")
    try:
        if urllib.parse.urlparse(url).path.lower().endswith(".json"):
            data = json.loads(text)
        else:  # YAML's safe loader also reads JSON
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (ValueError, yaml.YAMLError) as error:
        raise PotstillUserError(f"Cannot parse config {url!r}: {_short(error)}") from None
    if not isinstance(data, dict):
        raise PotstillUserError(f"Config {url!r} does not hold a pipeline (expected a mapping).")
    return data


def _is_hub_host(host: str) -> bool:
    """Whether `host` is the Hugging Face Hub's (or the `HF_ENDPOINT` the user set), the
    only hosts `HF_TOKEN` is sent to (for configs in private dataset repositories)."""
    endpoint = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "")).hostname
    return host == "huggingface.co" or host.endswith(".huggingface.co") or host == endpoint


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 400 else text[:397] + "..."
