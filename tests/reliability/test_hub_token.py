"""`$HF_TOKEN` and configs read from a URL: the token goes only over https to the Hub (or
to the origin named in `$HF_ENDPOINT`), and never across a redirect to another host.

A loopback HTTP server records the headers of every request. `127.0.0.1` and `localhost`
reach it as two different hosts; `huggingface.co` is resolved to it where a test needs the
Hub's name.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tests.cli.helpers import build_pipeline

from potstill.cli.config import hub_token_for, load_pipeline

TOKEN = "hf_canary_token_5b8e1f"


class _Server:
    """Serves a pipeline config at `/config.yaml` and redirects from `/to-other-host` (to
    `localhost`) and `/to-same-host`; records `(host header, authorization)` per request."""

    def __init__(self, config: bytes) -> None:
        self.config = config
        self.seen: list[tuple[str, str | None]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.seen.append((self.headers["Host"], self.headers.get("Authorization")))
                port = self.server.server_address[1]
                if self.path == "/to-other-host":
                    self._redirect(f"http://localhost:{port}/config.yaml")
                elif self.path == "/to-same-host":
                    self._redirect("/config.yaml")
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/yaml")
                    self.end_headers()
                    self.wfile.write(owner.config)

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]

    def authorizations(self) -> list[str | None]:
        return [authorization for _, authorization in self.seen]


@pytest.fixture
def server(tmp_path: Any, openai_env: Any) -> Iterator[_Server]:
    config = build_pipeline().save(tmp_path / "pipeline.yaml", format="yaml").read_bytes()
    served = _Server(config)
    thread = threading.Thread(target=served.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.httpd.shutdown()
        served.httpd.server_close()


@pytest.fixture
def hub_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """`huggingface.co` resolves to 127.0.0.1 (the loopback server)."""
    resolve = socket.getaddrinfo

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        return resolve("127.0.0.1" if host == "huggingface.co" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_the_token_is_never_sent_over_plain_http_to_the_hub(
    server: _Server, hub_on_loopback: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)

    pipeline = load_pipeline(f"http://huggingface.co:{server.port}/to-other-host")

    assert pipeline.name == "cli-test"
    assert [host for host, _ in server.seen] == [
        f"huggingface.co:{server.port}",
        f"localhost:{server.port}",
    ]
    assert server.authorizations() == [None, None]


def test_the_token_is_not_forwarded_to_another_host(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.port}")  # named by the user

    load_pipeline(f"http://127.0.0.1:{server.port}/to-other-host")

    assert server.authorizations() == [f"Bearer {TOKEN}", None]


def test_the_token_follows_a_redirect_on_the_same_host(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.port}")

    load_pipeline(f"http://127.0.0.1:{server.port}/to-same-host")

    assert server.authorizations() == [f"Bearer {TOKEN}", f"Bearer {TOKEN}"]


def test_other_hosts_never_get_the_token(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)

    load_pipeline(f"http://127.0.0.1:{server.port}/config.yaml")

    assert server.authorizations() == [None]


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("https://huggingface.co/datasets/org/repo/resolve/main/pipeline.yaml", True),
        ("https://hf.co/datasets/org/repo/resolve/main/pipeline.yaml", True),
        ("https://cdn-lfs.huggingface.co/some/file", True),
        ("http://huggingface.co/datasets/org/repo/resolve/main/pipeline.yaml", False),
        ("https://huggingface.co.example.com/pipeline.yaml", False),
        ("https://evilhuggingface.co/pipeline.yaml", False),
        ("https://example.com/pipeline.yaml", False),
        ("https://mirror.example.com:8443/pipeline.yaml", True),  # named in HF_ENDPOINT
        ("https://mirror.example.com/pipeline.yaml", False),  # another port
        ("http://mirror.example.com:8443/pipeline.yaml", False),  # another scheme
    ],
)
def test_which_urls_get_the_token(url: str, sent: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example.com:8443")

    assert (hub_token_for(url) == TOKEN) is sent


def test_no_token_no_header(monkeypatch: pytest.MonkeyPatch) -> None:
    assert hub_token_for("https://huggingface.co/x.yaml") is None
