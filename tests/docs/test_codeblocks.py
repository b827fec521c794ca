"""The extraction of documentation code blocks that `test_docs_code.py` relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.docs import codeblocks
from tests.docs.codeblocks import blocks_of, potstill_commands

PAGE = """# A page

```python
print("plain")
```

<!-- skip-test (it needs the internet) -->
```python
import needs_the_internet
```

<!-- test: local-model -->

<!-- test: failures-expected -->
```py
print("local")
```

<!-- test: output -->
```text
local
```

!!! note
    Inside an admonition:

    ```python
    print("indented")
    ```

```bash
pip install -e ".[dev]"
$ potstill pipeline run --config p.yaml \\
    --param a.b=1
potstill pipeline info --config p.yaml
```
"""


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(codeblocks, "DOCS", tmp_path)
    path = tmp_path / "page.md"
    path.write_text(PAGE)
    return path


def test_blocks_markers_and_expected_output(page: Path) -> None:
    blocks = blocks_of(page)
    assert [(b.language, b.line) for b in blocks] == [
        ("python", 3),
        ("python", 8),
        ("py", 15),
        ("python", 27),
        ("bash", 31),
    ]
    plain, skipped, local, indented, shell = blocks
    assert plain.code == 'print("plain")\n' and not plain.markers and not plain.skipped
    assert skipped.skipped and skipped.skip_reason == "it needs the internet"
    assert not plain.skip_reason
    assert local.markers == {"local-model", "failures-expected"}
    assert local.expected_output == ["local"]
    assert indented.code == 'print("indented")\n'
    assert shell.id == "page.md:31"


def test_potstill_commands_join_continuations_and_ignore_other_lines(page: Path) -> None:
    shell = blocks_of(page)[-1]
    assert potstill_commands(shell.code) == [
        "potstill pipeline run --config p.yaml --param a.b=1",
        "potstill pipeline info --config p.yaml",
    ]


def test_an_output_block_needs_a_python_block_before_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.md"
    path.write_text("<!-- test: output -->\n```text\nx\n```\n")
    with pytest.raises(ValueError, match="no Python block before it"):
        blocks_of(path)


def test_a_file_block_knows_where_it_is_saved(tmp_path: Path) -> None:
    path = tmp_path / "files.md"
    path.write_text(
        "<!-- test: file my_project/steps.py -->\n```python\nX = 1\n```\n\n```python\nprint(1)\n```\n"
    )
    saved, run = blocks_of(path)
    assert saved.saved_as == "my_project/steps.py" and not saved.skipped
    assert run.saved_as is None


def test_skip_reasons_and_hub_models(tmp_path: Path) -> None:
    path = tmp_path / "markers.md"
    path.write_text(
        "<!-- skip-test -->\n```python\nA\n```\n\n"
        "<!-- skip-test(needs `vllm` (not installed), a GPU) -->\n```python\nB\n```\n\n"
        "<!-- test: tiny-hf-model org/a, failures-expected -->\n"
        "<!-- test: tiny-hf-model org/b -->\n```python\nC\n```\n"
    )
    bare, reasoned, hub = blocks_of(path)
    assert bare.skipped and bare.skip_reason == ""
    assert reasoned.skipped and reasoned.skip_reason == "needs `vllm` (not installed), a GPU"
    assert not hub.skipped and hub.hub_models == ["org/a", "org/b"]
    assert "failures-expected" in hub.markers and bare.hub_models == []
