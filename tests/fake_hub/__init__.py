"""A loopback stand-in of the Hugging Face Hub's HTTP API, for the real `huggingface_hub` and
`datasets` clients.

```python
with FakeHub() as hub:
    with hub.pointed_at(monkeypatch, cache_dir=tmp_path):  # HF_ENDPOINT, HF_TOKEN, caches
        Dataset.from_dict({"a": [1]}).push_to_hub("me/data")
    hub.state.get("dataset", "me/data").head.files  # path -> bytes
```

It implements repository creation, `whoami`, preupload (every file is a regular one), NDJSON
commits, repository info, tree and paths-info listings and file resolution with byte ranges;
an unknown route answers 404 and is recorded in `hub.unknown_routes`. Writes and private
repositories need `Authorization: Bearer <hub.token>`.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from .repos import HubState
from .server import USER, HubServer

__all__ = ["USER", "FakeHub", "HubState", "parquet_bytes"]

TOKEN = "test-key"


class FakeHub:
    """The fake Hub, served from a background thread while the context is open."""

    def __init__(self, token: str = TOKEN) -> None:
        self.state = HubState()
        self.token = token
        self._server: HubServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeHub:
        self._server = HubServer(self.state, self.token)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake Hub is not running"
        return self._server.url

    @property
    def unknown_routes(self) -> list[str]:
        assert self._server is not None
        return self._server.unknown_routes

    def reset(self) -> None:
        """Forgets every repository."""
        self.state.repos.clear()
        self.state.commits_made.clear()
        if self._server is not None:
            self._server.unknown_routes.clear()

    def point_clients(self, monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
        """Points `huggingface_hub` and `datasets` at this Hub, online, with its token and
        caches under `cache_dir`. Both libraries read these settings once, at import, so
        their constants are patched as well as the environment."""
        from datasets import config as datasets_config
        from huggingface_hub import constants

        settings: list[tuple[Any, str, Any]] = [
            (constants, "ENDPOINT", self.url),
            (
                constants,
                "HUGGINGFACE_CO_URL_TEMPLATE",
                self.url + "/{repo_id}/resolve/{revision}/{filename}",
            ),
            (constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {"127.0.0.1"}),
            (constants, "HF_HUB_OFFLINE", False),
            (constants, "HF_HUB_DISABLE_XET", True),
            (constants, "HF_HUB_CACHE", str(cache_dir / "hub")),
            (constants, "HF_TOKEN_PATH", str(cache_dir / "no-token-file")),
            (constants, "AGENT_HARNESSES_PATH", str(cache_dir / "agent_harnesses.json")),
            (datasets_config, "HF_ENDPOINT", self.url),
            (
                datasets_config,
                "HUB_DATASETS_URL",
                self.url + "/datasets/{repo_id}/resolve/{revision}/{path}",
            ),
            (datasets_config, "HF_HUB_OFFLINE", False),
            (datasets_config, "HF_DATASETS_OFFLINE", False),
            (datasets_config, "HF_DATASETS_CACHE", cache_dir / "datasets"),
        ]
        for module, name, value in settings:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, value)
        monkeypatch.setenv("HF_ENDPOINT", self.url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.setenv("HF_TOKEN", self.token)
        monkeypatch.setenv("HF_HUB_CACHE", str(cache_dir / "hub"))
        monkeypatch.setenv("HF_DATASETS_CACHE", str(cache_dir / "datasets"))

    @contextmanager
    def pointed_at(self, monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> Iterator[FakeHub]:
        with monkeypatch.context() as patch:
            self.point_clients(patch, cache_dir)
            yield self


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    """The rows as a parquet file, to seed a repository with."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()
