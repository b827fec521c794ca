"""Every code block of the documentation runs, against the loopback test server.

Blocks run in-process (imports are shared, so the whole site takes seconds), one test per
block, in page order. The blocks of a page share a working directory, so a Python block
can write `pipeline.yaml` for a `potstill pipeline run` shell block below it. The
environment has `OPENAI_BASE_URL`/`OPENAI_API_KEY` pointing at the loopback server and a
temporary `POTSTILL_CACHE_DIR`. A block fails when it raises, when a `potstill` command
exits non-zero, when an LLM request fails (unless marked), or when its expected output is
missing. See `tests/docs/codeblocks.py` for the markers.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import runpy
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.docs.codeblocks import PYTHON, CodeBlock, all_blocks, potstill_commands
from typer.testing import CliRunner

BLOCKS = all_blocks()

# More environment for the blocks, e.g. a provider's base URL and key once the loopback
# server speaks its API: name -> value, where "{url}" is the server's base URL
# (`http://127.0.0.1:PORT`). The `openai_env` fixture already sets OPENAI_BASE_URL (url +
# "/v1") and OPENAI_API_KEY ("test-key", the key the server accepts).
EXTRA_ENV: dict[str, str] = {}
_WORKDIRS: dict[Path, Path] = {}


def _local_model_available() -> bool:
    return (
        importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec("potstill.llms.llamacpp") is not None
    )


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
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if block.skipped:
        pytest.skip("marked <!-- skip-test --> in the page")
    if "local-model" in block.markers and not _local_model_available():
        pytest.skip("needs llama_cpp and potstill's LlamaCppLLM")
    workdir = _WORKDIRS.get(block.page)
    if workdir is None:
        workdir = _WORKDIRS[block.page] = tmp_path_factory.mktemp(block.page.stem)
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("COLUMNS", "200")
    for name, value in EXTRA_ENV.items():
        monkeypatch.setenv(name, value.format(url=openai_env.url))
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

    printed = capsys.readouterr().out
    if "failures-expected" not in block.markers:
        assert failures.messages == [], f"{block.id}: requests failed: {failures.messages}"
    missing = [line for line in block.expected_output if line not in printed]
    assert missing == [], f"{block.id}: expected output not printed:\n{printed}"


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
