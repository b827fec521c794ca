"""User-facing text speaks the reader's language, not the project's internal shorthand.

The documentation pages and the docstrings (which the API reference and `pipeline info`
show) must not say "the main job" (the quickstart), "the seed" (distilabel's LLM guide that
potstill follows) or "loopback server" (the project's test server): a reader knows none of
them. Contributor material (tests/, benchmarks/) may.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SOURCE = ROOT / "src" / "potstill"

JARGON = re.compile(
    r"\bmain job\b"
    # "the seed of the random generator" and Self-Instruct's "seed text/words" are real seeds
    r"|\bthe seed\b(?! (?:of|text|words?|instructions?|tasks?)\b)"
    r"|\bseed(?:'s| document)"
    r"|\bloopback\b",
    re.IGNORECASE,
)


def _hits(text: str) -> list[str]:
    lines = text.splitlines()
    return [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(lines, start=1)
        if JARGON.search(line)
    ]


def _pages() -> list[str]:
    return sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))


@pytest.mark.parametrize("page", _pages())
def test_documentation_pages_use_no_internal_jargon(page: str) -> None:
    assert _hits((DOCS / page).read_text(encoding="utf-8")) == []


def test_docstrings_use_no_internal_jargon() -> None:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, _DOCUMENTED))]
        for node in nodes:
            docstring = ast.get_docstring(node) or ""
            found.extend(f"{path.relative_to(ROOT)}: {hit}" for hit in _hits(docstring))
    assert found == []


_DOCUMENTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def test_the_check_catches_the_jargon() -> None:
    for text in (
        "Run the main job",
        "the seed's name",
        "follows the seed document",
        "against the loopback server",
    ):
        assert _hits(text), text
    assert _hits("A `seed` fixes the seed of every call") == []


def test_the_readme_uses_no_internal_jargon() -> None:
    assert _hits((ROOT / "README.md").read_text(encoding="utf-8")) == []
