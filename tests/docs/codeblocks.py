"""Finding the code blocks of the documentation and what the tests should do with them.

Markers, each an HTML comment on its own line just above a fenced block (blank lines
between are allowed, several markers can be stacked):

- `<!-- skip-test -->`: the block is not run (e.g. it needs a real hosted API); a reason
  may follow, and the test's skip message gives it: `<!-- skip-test (why) -->`.
- `<!-- test: local-model -->`: the block needs the embedded local model; it runs only
  where `llama_cpp` and potstill's `LlamaCppLLM` can be imported.
- `<!-- test: tiny-hf-model ORG/NAME -->`: the block loads the Hub model ORG/NAME (with
  `transformers`). The test puts a tiny random model with its tokenizer into a temporary
  Hugging Face cache under that repo id and turns the Hub off (`HF_HUB_OFFLINE=1`), so the
  block loads the stand-in from the cache as it would load the real model after a download.
  Its text is gibberish: check only what holds for both (counts, shapes, names). Runs only
  where `torch` and `transformers` can be imported.
- `<!-- test: failures-expected -->`: the block shows failed requests on purpose, so
  "generation failed" warnings do not fail the test.
- `<!-- test: expect-error -->`: a shell block whose `potstill` commands must fail
  (exit code 1, a clean error and no traceback).
- `<!-- test: output -->` above a `text` block: every non-empty line of it must appear in
  what the preceding Python block printed.
- `<!-- test: file PATH -->` above a Python block: the block is a file the reader saves
  (e.g. `my_project/steps.py`); it is written to the page's working directory as PATH, for
  the blocks below it, instead of being run.

Python blocks are complete programs. Shell blocks are checked for their `potstill ...`
commands only (other lines, such as `pip install`, are instructions for the reader).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"

PYTHON = frozenset({"python", "py", "python3"})
SHELL = frozenset({"bash", "sh", "shell", "console", "zsh"})

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<body>.*?)\s*-->\s*$")


@dataclass
class CodeBlock:
    """One fenced block of a documentation page."""

    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    markers: set[str] = field(default_factory=set)
    expected_output: list[str] = field(default_factory=list)
    skip_reason: str = ""  # the `(why)` of `<!-- skip-test (why) -->`

    @property
    def id(self) -> str:
        try:
            name = self.page.relative_to(DOCS).as_posix()
        except ValueError:  # a page outside docs/ (the parser's own tests)
            name = self.page.name
        return f"{name}:{self.line}"

    @property
    def skipped(self) -> bool:
        return "skip-test" in self.markers

    @property
    def saved_as(self) -> str | None:
        """The relative path a `test: file PATH` block is saved to, else None."""
        for marker in self.markers:
            if marker.startswith("file "):
                return marker[len("file ") :].strip()
        return None

    @property
    def hub_models(self) -> list[str]:
        """The repo ids of its `test: tiny-hf-model ORG/NAME` markers."""
        prefix = "tiny-hf-model "
        return sorted(m[len(prefix) :].strip() for m in self.markers if m.startswith(prefix))


def _markers_above(lines: list[str], index: int) -> tuple[set[str], str]:
    """The markers of the block whose fence is at `index`, and the reason of its skip-test."""
    markers: set[str] = set()
    skip_reason = ""
    position = index - 1
    while position >= 0:
        text = lines[position]
        if not text.strip():
            position -= 1
            continue
        match = _MARKER.match(text)
        if match is None:
            break
        body = match.group("body")
        if body == "skip-test" or body.startswith(("skip-test ", "skip-test(")):
            markers.add("skip-test")
            skip_reason = body[len("skip-test") :].strip()
            if skip_reason.startswith("(") and skip_reason.endswith(")"):
                skip_reason = skip_reason[1:-1].strip()
        elif body.startswith("test:"):
            markers.update(part.strip() for part in body[5:].split(",") if part.strip())
        position -= 1
    return markers, skip_reason


def blocks_of(page: Path) -> list[CodeBlock]:
    """The fenced blocks of one page, with their markers; expected output attached."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[CodeBlock] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        indent, fence = match.group("indent"), match.group("fence")
        language = (match.group("info").split() or [""])[0].lower()
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != fence:
            text = lines[index]
            body.append(text[len(indent) :] if text.startswith(indent) else text.lstrip())
            index += 1
        index += 1  # the closing fence
        markers, skip_reason = _markers_above(lines, start)
        block = CodeBlock(
            page=page,
            line=start + 1,
            language=language,
            code="\n".join(body) + "\n",
            markers=markers,
            skip_reason=skip_reason,
        )
        if "output" in block.markers:
            previous = next((b for b in reversed(blocks) if b.language in PYTHON), None)
            if previous is None:
                raise ValueError(f"{block.id}: an output block with no Python block before it")
            previous.expected_output = [t.strip() for t in body if t.strip()]
            continue
        blocks.append(block)
    return blocks


def all_blocks() -> list[CodeBlock]:
    """Every Python block and every shell block with a `potstill` command, in page order."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for block in blocks_of(page):
            if block.language in PYTHON or (
                block.language in SHELL and potstill_commands(block.code)
            ):
                found.append(block)
    return found


def potstill_commands(code: str) -> list[str]:
    """The `potstill ...` commands of a shell block (continuations joined, prompts removed)."""
    commands: list[str] = []
    current = ""
    for raw in code.splitlines():
        text = raw.rstrip()
        if text.startswith("$ "):
            text = text[2:]
        if current:
            current += " " + text.strip()
        elif text.strip().startswith("potstill "):
            current = text.strip()
        else:
            continue
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        commands.append(current)
        current = ""
    return commands
