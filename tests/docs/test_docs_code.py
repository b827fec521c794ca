"""Every code block of the documentation runs, against the loopback test server.

Blocks run in-process (imports are shared, so the whole site takes seconds), one test per
block, in page order. The blocks of a page share a working directory, so a Python block
can write `pipeline.yaml` for a `potstill pipeline run` shell block below it; Python blocks
can import modules from that directory, as `python block.py` would. The environment is
what a reader sets up for each provider (`EXTRA_ENV`: keys, base URLs, Google credentials),
pointing at the loopback server, plus a temporary `POTSTILL_CACHE_DIR`, so the provider
examples run as written. A block that loads a Hub model with `transformers` gets a tiny
random stand-in of it in a temporary Hugging Face cache, with the Hub off. A block fails when it raises, when a `potstill` command exits
non-zero, when an LLM request fails (unless marked), or when its expected output is missing.
Blocks marked `local-model` run the embedded model on one CPU thread unless they set
`n_threads` themselves. See `tests/docs/codeblocks.py` for the markers.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import json
import logging
import os
import runpy
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from tests.docs.codeblocks import PYTHON, CodeBlock, all_blocks, potstill_commands
from tests.fake_hub import FakeHub, parquet_bytes
from tests.fake_server.vertex_generate import service_account_info
from typer.testing import CliRunner

BLOCKS = all_blocks()

# The environment a reader sets up for the providers, pointing at the loopback server:
# name -> value, where "{url}" is the server's base URL (`http://127.0.0.1:PORT`) and
# "{files}" the directory of `_docs_files`. These are variables the provider classes or
# their SDKs read themselves, so the examples stay what a user writes against the real
# provider; the two that the examples' own code reads are marked. The `openai_env` fixture
# already sets OPENAI_BASE_URL (url + "/v1") and OPENAI_API_KEY ("test-key", the key the
# server accepts).
EXTRA_ENV: dict[str, str] = {
    "ANTHROPIC_API_KEY": "test-key",
    "ANTHROPIC_BASE_URL": "{url}",
    "ANYSCALE_API_KEY": "test-key",
    "ANYSCALE_BASE_URL": "{url}/v1",
    "AZURE_OPENAI_API_KEY": "test-key",
    "AZURE_OPENAI_ENDPOINT": "{url}",
    "OPENAI_API_VERSION": "2024-10-21",
    "COHERE_API_KEY": "test-key",
    "COHERE_BASE_URL": "{url}",
    "GROQ_API_KEY": "test-key",
    "GROQ_BASE_URL": "{url}",
    "TOGETHER_API_KEY": "test-key",
    "TOGETHER_BASE_URL": "{url}/v1",
    "MISTRAL_API_KEY": "test-key",
    # Read by the Mistral examples' own code: `MistralLLM.endpoint` has no env var (the
    # `mistralai` SDK reads none), so the examples pass it explicitly.
    "MISTRAL_ENDPOINT": "{url}/mistral",
    "OLLAMA_HOST": "{url}",
    "OLLAMA_API_KEY": "test-key",  # the loopback server wants a key; a local Ollama does not
    "HF_TOKEN": "test-key",
    # Read by the Inference Endpoints example's own code, for `base_url` (no env var either).
    "TGI_URL": "{url}/tgi",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no price-map download when litellm is imported
    "GOOGLE_CLOUD_PROJECT": "my-project",
    "GOOGLE_CLOUD_LOCATION": "us-central1",
    "GOOGLE_VERTEX_BASE_URL": "{url}",  # read by google-genai
    "GOOGLE_APPLICATION_CREDENTIALS": "{files}/key.json",  # read by google.auth.default()
}
_WORKDIRS: dict[Path, Path] = {}


@pytest.fixture(scope="session")
def _docs_files(_session_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files the environment points at: `key.json`, a Google service-account key whose
    token server is the loopback server (see `tests/fake_server/vertex_generate.py`)."""
    files = tmp_path_factory.mktemp("docs-files")
    key = service_account_info(_session_server.url, project="my-project")
    (files / "key.json").write_text(json.dumps(key), encoding="utf-8")
    return files


def _service_account_key_file(workdir: Path, files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page opens `key.json`, a service-account key, from its working directory."""
    if not (workdir / "key.json").exists():
        (workdir / "key.json").write_bytes((files / "key.json").read_bytes())


def _hub_client_reaches_the_loopback_server(
    workdir: Path, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`huggingface_hub`'s offline mode (`HF_HUB_OFFLINE=1`, set for every test so that
    nothing downloads) also refuses requests to a TGI server, and the library reads the
    variable once, at import; it is off for this page's blocks, which reach only the
    loopback server."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


_DOCS_HUB: list[FakeHub] = []  # started by the first page that needs it


def _fake_hub(workdir: Path, files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page reads and pushes Hub datasets: `huggingface_hub` and `datasets` talk to the
    loopback Hub (`tests/fake_hub`, shared by the page's blocks, so a dataset a block pushes
    is there for the next), which holds a stand-in of the public dataset the page loads
    (its columns and split, other rows), with their caches in the page's directory."""
    if not _DOCS_HUB:
        hub = FakeHub().start()
        atexit.register(hub.stop)
        rows = [
            {"prompt": f"Question {i}?", "completion": f"Answer {i}.", "meta": {"id": i}}
            for i in range(10)
        ]
        hub.state.add_files(
            "dataset",
            "distilabel-internal-testing/instruction-dataset-mini",
            {"data/test-00000-of-00001.parquet": parquet_bytes(rows)},
        )
        _DOCS_HUB.append(hub)
    _DOCS_HUB[0].point_clients(monkeypatch, workdir / ".hf")


# What a page's blocks need besides the environment: page -> setup(workdir, files, monkeypatch).
PAGE_SETUP: dict[str, Any] = {
    "llms/vertexai.md": _service_account_key_file,
    "llms/inference_endpoints.md": _hub_client_reaches_the_loopback_server,
    "gallery/steps.md": _fake_hub,
}


# The shapes of the tiny stand-ins of `test: tiny-hf-model` (2 layers, a few dozen tokens),
# as the real models' configs give them, so hidden states have the real model's width:
# repo id -> build_tiny_model kwargs. A repo id not listed gets the default tiny shape.
TINY_HF_SHAPES: dict[str, dict[str, int]] = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": {
        "hidden_size": 576,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
    },
}


class _TinyHubCache:
    """A Hugging Face home (`HF_HOME`) whose hub cache gets a tiny random model under each
    repo id a block asks for, built the first time it is asked for (once per session)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.hub_cache = home / "hub"  # huggingface_hub's default: $HF_HOME/hub
        self._installed: set[str] = set()

    def install(self, repo_id: str) -> None:
        from tests.local.tiny_hf import build_tiny_model, install_in_hub_cache

        if repo_id in self._installed:
            return
        with tempfile.TemporaryDirectory() as built:
            model_dir = build_tiny_model(Path(built), **TINY_HF_SHAPES.get(repo_id, {}))
            install_in_hub_cache(model_dir, self.hub_cache, repo_id)
        self._installed.add(repo_id)

    def activate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Points the environment at this cache, with the Hub off. `huggingface_hub` reads
        these variables once, when it is imported (before this test, in this process), so its
        constants are set as well; `transformers` takes them from there."""
        from huggingface_hub import constants

        for name, value in (
            ("HF_HOME", str(self.home)),
            ("HF_HUB_CACHE", str(self.hub_cache)),
            ("HF_HUB_OFFLINE", True),
        ):
            monkeypatch.setenv(name, "1" if value is True else value)
            monkeypatch.setattr(constants, name, value)


@pytest.fixture(scope="session")
def _tiny_hub_cache(tmp_path_factory: pytest.TempPathFactory) -> _TinyHubCache:
    return _TinyHubCache(tmp_path_factory.mktemp("hf-home"))


def _transformers_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers"))


def _local_model_available() -> bool:
    return (
        importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec("potstill.llms.llamacpp") is not None
    )


def _one_llama_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs the embedded model on one CPU thread, as every test does, while the page shows
    `LlamaCppLLM()` as a reader writes it: llama.cpp models created without `n_threads` get
    1 (llama-cpp-python's own default takes several cores of a shared machine)."""
    import llama_cpp

    original = llama_cpp.Llama.__init__

    @functools.wraps(original)
    def one_thread(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("n_threads", 1)
        kwargs.setdefault("n_threads_batch", 1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(llama_cpp.Llama, "__init__", one_thread)


class _FailedRequests(logging.Handler):
    """Collects potstill's warnings about failed generations and failed batches."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "failed" in message:
            self.messages.append(f"{record.name}: {message}")


def test_the_docs_have_code_blocks() -> None:
    pages = {block.page.name for block in BLOCKS}
    for page in ("llms.md", "pipelines.md", "cli.md", "migrating.md", "openai.md"):
        assert page in pages, f"no tested code block in {page}"


# potstill silences this pydantic warning for its `Optional[RuntimeParameter[...]]` fields at
# import time; pytest resets warning filters per test, and the blocks define LLM subclasses.
@pytest.mark.filterwarnings("ignore:The 'default' attribute with value None")
@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_code_block(
    block: CodeBlock,
    openai_env: Any,
    _docs_files: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    if block.skipped:
        pytest.skip(f"marked skip-test in the page: {block.skip_reason or 'no reason given'}")
    if "local-model" in block.markers:
        if not _local_model_available():
            pytest.skip("needs llama_cpp and potstill's LlamaCppLLM")
        _one_llama_thread(monkeypatch)
    if block.hub_models and not _transformers_available():
        pytest.skip("needs torch and transformers")
    workdir = _WORKDIRS.get(block.page)
    if workdir is None:
        workdir = _WORKDIRS[block.page] = tmp_path_factory.mktemp(block.page.stem)
    if block.saved_as is not None:
        target = workdir / block.saved_as
        compile(block.code, str(target), "exec")  # the file must at least be valid Python
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code, encoding="utf-8")
        return
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("COLUMNS", "200")
    for name, value in EXTRA_ENV.items():
        monkeypatch.setenv(name, value.format(url=openai_env.url, files=_docs_files))
    monkeypatch.syspath_prepend(str(workdir))  # as `python block.py` would
    setup = PAGE_SETUP.get(block.id.rsplit(":", 1)[0])
    if setup is not None:
        setup(workdir, _docs_files, monkeypatch)
    if block.hub_models:
        hub_cache: _TinyHubCache = request.getfixturevalue("_tiny_hub_cache")
        for repo_id in block.hub_models:
            hub_cache.install(repo_id)
        hub_cache.activate(monkeypatch)
    saved_environ = dict(os.environ)

    failures = _FailedRequests()
    potstill_logger = logging.getLogger("potstill")
    potstill_logger.addHandler(failures)
    try:
        if block.language in PYTHON:
            _run_python(block, workdir, monkeypatch)
        else:
            _run_shell(block)
    finally:
        potstill_logger.removeHandler(failures)
        os.environ.clear()
        os.environ.update(saved_environ)
        _forget_modules_in(workdir)

    printed = capsys.readouterr().out
    if "failures-expected" not in block.markers:
        assert failures.messages == [], f"{block.id}: requests failed: {failures.messages}"
    missing = [line for line in block.expected_output if line not in printed]
    assert missing == [], f"{block.id}: expected output not printed:\n{printed}"


def _forget_modules_in(workdir: Path) -> None:
    """Drops the modules a block imported from its page's directory (e.g. `my_project`)."""
    inside = str(workdir) + os.sep
    for name, module in list(sys.modules.items()):
        paths = [getattr(module, "__file__", None) or ""]
        package_path = getattr(module, "__path__", None)
        if (
            isinstance(package_path, (list, tuple))
            or type(package_path).__name__ == "_NamespacePath"
        ):
            paths.extend(package_path)  # (torch registers odd modules whose __path__ is not a list)
        if any(str(path).startswith(inside) for path in paths):
            del sys.modules[name]


def _run_python(block: CodeBlock, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = workdir / f"block_{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    monkeypatch.setattr(sys, "argv", [str(script)])
    runpy.run_path(str(script), run_name="__main__")


def _run_shell(block: CodeBlock) -> None:
    from potstill.cli.app import app

    runner = CliRunner()
    for command in potstill_commands(block.code):
        args = shlex.split(command)[1:]
        result = runner.invoke(app, args, catch_exceptions=False)
        if "expect-error" in block.markers:
            assert result.exit_code == 1, f"{block.id}: `{command}` should fail:\n{result.output}"
            assert "Error" in result.output and "Traceback" not in result.output
        else:
            assert result.exit_code == 0, f"{block.id}: `{command}` failed:\n{result.output}"
        print(result.output)
