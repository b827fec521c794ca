"""Loading a pipeline config (a local file or an http(s) URL) without importing strangers.

A config names the class of every step and LLM. potstill instantiates only its own classes
and classes from modules the user allows with `--allow-module`; a config naming anything
else is refused before any module is imported. Likewise a config that sets
`trust_remote_code` (code from a model repository) is refused without `--allow-remote-code`. YAML is read with the safe loader, so tags
such as `!!python/object` are rejected too, and a config larger than 16 MiB or whose YAML
aliases expand too far is refused (see `potstill.utils.serialization.parse_config`).

`$HF_TOKEN` is sent with a URL only over https to the Hugging Face Hub (or to the origin
named in `$HF_ENDPOINT`), and never across a redirect to another host.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

import yaml

from potstill.errors import PotstillUserError
from potstill.pipeline import Pipeline
from potstill.utils.serialization import MAX_CONFIG_BYTES, parse_config, read_file

_URL_TIMEOUT_S = 30.0
_HUB_HOSTS = ("huggingface.co", "hf.co")


def is_url(config: str) -> bool:
    """Whether `config` is an http(s) URL rather than a local path."""
    return urllib.parse.urlparse(config).scheme in ("http", "https")


def load_pipeline(
    config: str, allowed_modules: Iterable[str] = (), allow_remote_code: bool = False
) -> Pipeline:
    """Builds the pipeline a config file (or URL) describes.

    Args:
        config: a `.yaml`/`.yml`/`.json` path, or an http(s) URL serving one.
        allowed_modules: modules outside potstill whose classes the config may name; they
            are imported (from the installed packages or the current directory) if needed.
        allow_remote_code: let the config set `trust_remote_code` on an LLM.

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
        return Pipeline.from_dict(
            data, allowed_modules=allowed, allow_remote_code=allow_remote_code
        )
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
    except PotstillUserError:
        raise
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise PotstillUserError(f"Cannot read config {config!r}: {_short(error)}") from None


def hub_token_for(url: str) -> Optional[str]:
    """`$HF_TOKEN` when `url` may receive it, else `None`.

    The token goes only over https to the Hugging Face Hub (`huggingface.co`, `hf.co` and
    their subdomains), or to the origin the user named in `$HF_ENDPOINT` (a Hub mirror),
    with the scheme written there. Never to any other host, and never over plain http to
    the Hub.

    Args:
        url: the URL about to be requested.

    Returns:
        The token, or `None`.
    """
    token = os.environ.get("HF_TOKEN")
    if not token:
        return None
    target = urllib.parse.urlparse(url)
    host = (target.hostname or "").lower()
    named = os.environ.get("HF_ENDPOINT")
    if named and _origin(urllib.parse.urlparse(named)) == _origin(target):
        return token
    on_hub = any(host == hub or host.endswith(f".{hub}") for hub in _HUB_HOSTS)
    return token if on_hub and target.scheme == "https" else None


def _origin(url: urllib.parse.ParseResult) -> tuple[str, str, Optional[int]]:
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme.lower(), (url.hostname or "").lower(), port


class _TokenRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects; the token is sent again only to the same host, where
    `hub_token_for` still allows it (urllib itself never forwards it: it is added as an
    unredirected header)."""

    def redirect_request(  # type: ignore[override]
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Optional[urllib.request.Request]:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        same_host = (
            urllib.parse.urlparse(newurl).hostname == urllib.parse.urlparse(req.full_url).hostname
        )
        token = hub_token_for(newurl)
        if new is not None and token and same_host and req.has_header("Authorization"):
            new.add_unredirected_header("Authorization", f"Bearer {token}")
        return new


def _read_url(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json, */*"})
    token = hub_token_for(url)
    if token:
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(_TokenRedirects)
    try:
        with opener.open(request, timeout=_URL_TIMEOUT_S) as response:
            body = response.read(MAX_CONFIG_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise PotstillUserError(
            f"Cannot fetch config {url!r}: HTTP {error.code} {error.reason}."
        ) from None
    except (urllib.error.URLError, OSError) as error:
        raise PotstillUserError(f"Cannot fetch config {url!r}: {_short(error)}") from None
    if len(body) > MAX_CONFIG_BYTES:
        raise PotstillUserError(
            f"Config {url!r} is larger than {MAX_CONFIG_BYTES:,} bytes; refusing it."
        )
    text = body.decode("utf-8", errors="replace")
    json_path = urllib.parse.urlparse(url).path.lower().endswith(".json")
    try:
        # YAML's safe loader also reads JSON.
        data = parse_config(text, "json" if json_path else "yaml", repr(url))
    except PotstillUserError:
        raise
    except (ValueError, yaml.YAMLError) as error:
        raise PotstillUserError(f"Cannot parse config {url!r}: {_short(error)}") from None
    if not isinstance(data, dict):
        raise PotstillUserError(f"Config {url!r} does not hold a pipeline (expected a mapping).")
    return data


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 400 else text[:397] + "..."
