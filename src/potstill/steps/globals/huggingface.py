"""`PushToHub`: pushes all the rows it receives to a Hugging Face Hub dataset."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field, SecretStr

from potstill.errors import PotstillUserError
from potstill.llms.base import describe_error
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.steps.base import GlobalStep
from potstill.steps.typing import StepInput, StepOutput
from potstill.typing import Row


class PushToHub(GlobalStep):
    """Pushes every row it receives, as one split of a Hub dataset, then passes them on.

    A global step: it waits for all the rows, builds a `datasets.Dataset` (a column for every
    key any row has, `None` where a row lacks it) and pushes it with `Dataset.push_to_hub`.

    Input columns: any. Output columns: the input's, unchanged.

    Attributes:
        repo_id: the dataset repository to push to (created when missing).
        split: the split the rows become.
        private: create the repository as private (an existing one keeps its visibility).
        token: the Hub token; `HF_TOKEN` or the token `huggingface-cli login` saved when not
            given. Never saved in `pipeline.yaml`.
    """

    repo_id: RuntimeParameter[str] = Field(
        default=None,
        description="The Hugging Face Hub repository ID where the dataset will be uploaded.",
    )
    split: RuntimeParameter[str] = Field(
        default="train",
        description="The split of the dataset that will be pushed. Defaults to 'train'.",
    )
    private: RuntimeParameter[bool] = Field(
        default=False,
        description="Whether the dataset to be pushed should be private or not. Defaults to `False`.",
    )
    token: Optional[RuntimeParameter[SecretStr]] = Field(
        default=None,
        description="The token that will be used to authenticate in the Hub. If not provided, "
        "the `HF_TOKEN` environment variable or the token saved by `huggingface-cli login` is "
        "used.",
    )

    def process(self, inputs: StepInput) -> StepOutput:
        """Pushes the rows and yields them unchanged.

        Args:
            inputs: every row of the dataset.

        Yields:
            The same rows.
        """
        if not self.repo_id:
            raise PotstillUserError(
                f"Step {self.name!r} needs `repo_id`, the dataset repository to push to: pass "
                f"`repo_id=...` or `run(params={{{self.name!r}: {{'repo_id': ...}}}})`."
            )
        if not inputs:
            self.logger.warning("Step %r received no rows: nothing pushed.", self.name)
            yield []
            return
        from datasets import Dataset

        dataset = Dataset.from_dict(_columns_of(inputs))
        token = self.token.get_secret_value() if self.token is not None else None
        try:
            dataset.push_to_hub(self.repo_id, split=self.split, private=self.private, token=token)
        except Exception as error:
            raise PotstillUserError(
                f"Step {self.name!r} could not push to the Hub dataset {self.repo_id!r}: "
                f"{describe_error(error)}. Check that the token (`token` or HF_TOKEN) can write "
                "to that repository."
            ) from error
        self.logger.info("Pushed %d rows to %s (split %r).", len(inputs), self.repo_id, self.split)
        yield inputs


def _columns_of(rows: list[Row]) -> dict[str, list[Any]]:
    names = list(dict.fromkeys(key for row in rows for key in row))
    return {name: [row.get(name) for row in rows] for name in names}
