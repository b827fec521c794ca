"""`datasets`' progress bars during a run, and when `datasets` gets imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.core.fakes import RecordingStep

from potstill.llms.testing import TestLLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.generators.huggingface import LoadDataFromHub
from potstill.steps.tasks import TextGeneration
from potstill.utils.datasets_progress import steps_use_datasets


def _in_a_fresh_process(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_run_without_dataset_steps_imports_datasets_after_loading_its_steps() -> None:
    out = _in_a_fresh_process(
        """
        import sys
        from potstill.llms.testing import TestLLM
        from potstill.pipeline import Pipeline
        from potstill.steps import LoadDataFromDicts
        from potstill.steps.tasks import TextGeneration

        seen = []

        class Probe(TestLLM):
            def load(self):
                seen.append("datasets" in sys.modules)  # while the steps load
                super().load()

        with Pipeline(name="deferred") as pipeline:
            LoadDataFromDicts(data=[{"instruction": "hi"}]) >> TextGeneration(llm=Probe())
        distiset = pipeline.run(use_cache=False)

        from datasets.utils.tqdm import are_progress_bars_disabled
        print(seen, distiset["default"]["train"].num_rows, are_progress_bars_disabled())
        """
    )
    assert out == "[False] 1 False"


def test_inside_a_deferred_block_bars_are_off_once_imported_and_back_on_after() -> None:
    out = _in_a_fresh_process(
        """
        import sys
        from potstill.utils.datasets_progress import import_in_background, quiet_datasets_progress

        with quiet_datasets_progress(defer_import=True):
            before = "datasets" in sys.modules
            import_in_background()
            with quiet_datasets_progress():  # a block that uses datasets now
                from datasets.utils.tqdm import are_progress_bars_disabled
                inside = are_progress_bars_disabled()
        print(before, inside, are_progress_bars_disabled())
        """
    )
    assert out == "False True False"


def test_steps_that_may_use_datasets_are_told_apart() -> None:
    with Pipeline(name="kinds"):
        plain = [LoadDataFromDicts(data=[{"instruction": "hi"}]), TextGeneration(llm=TestLLM())]
        custom = RecordingStep()
        hub = LoadDataFromHub(repo_id="org/data")

    assert steps_use_datasets(plain) is False
    assert steps_use_datasets([*plain, custom]) is True  # defined outside potstill
    assert steps_use_datasets([*plain, hub]) is True
