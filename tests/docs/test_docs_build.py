"""The documentation site builds with `mkdocs build --strict` (what CI checks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_PAGES = (
    "anthropic",
    "anyscale",
    "azure",
    "cohere",
    "groq",
    "inference_endpoints",
    "litellm",
    "llamacpp",
    "mistral",
    "ollama",
    "openai",
    "together",
    "transformers",
    "vertexai",
    "vllm",
)


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        "mkdocs build --strict failed (mkdocs comes with `pip install -e '.[dev]'`):\n"
        + result.stdout
        + result.stderr
    )
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "llms" / "openai" / "index.html").is_file()


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def test_every_provider_page_exists_and_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = set(_nav_pages(config["nav"]))
    for name in PROVIDER_PAGES:
        assert f"llms/{name}.md" in pages, f"llms/{name}.md missing from the nav"
        assert (ROOT / "docs" / "llms" / f"{name}.md").is_file()


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = set(_nav_pages(config["nav"]))
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk - pages == set(), "add these pages to the nav in mkdocs.yml"
