"""`AzureOpenAILLM`: OpenAI models deployed on Azure, through the `openai` SDK."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Optional

from pydantic import Field

from potstill.errors import PotstillUserError
from potstill.llms.batch_jobs import JobAdapter
from potstill.llms.openai import OpenAIBatchJobs, OpenAILLM
from potstill.mixins.runtime_parameters import RuntimeParameter

_API_VERSION_ENV_VAR = "OPENAI_API_VERSION"


class AzureOpenAILLM(OpenAILLM):
    """An OpenAI model deployed on Azure OpenAI.

    Requests go to `{base_url}/openai/deployments/{model}/chat/completions?api-version=...`
    with the key in the `api-key` header (the SDK's `AsyncAzureOpenAI` builds both). The
    generation kwargs and `num_generations` (native `n`) are `OpenAILLM`'s, and so is
    `use_offline_batch_generation` (through Azure's Batch API: the deployment must be a
    "Global Batch" one).

    Attributes:
        model: the name of the Azure *deployment* (not the underlying model name).
        base_url: the resource endpoint, e.g. `https://my-resource.openai.azure.com/`;
            defaults to `$AZURE_OPENAI_ENDPOINT`.
        api_key: the API key; defaults to `$AZURE_OPENAI_API_KEY`.
        api_version: the API version sent as `api-version`, e.g. `2024-10-21`; defaults to
            `$OPENAI_API_VERSION`.
        timeout: seconds to wait for a response before giving up on a request.

    Examples:
        ```python
        from potstill.llms import AzureOpenAILLM

        llm = AzureOpenAILLM(
            model="my-gpt-4o-deployment",
            base_url="https://my-resource.openai.azure.com/",
            api_version="2024-10-21",
        )
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    api_version: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv(_API_VERSION_ENV_VAR),
        description="The Azure OpenAI API version, sent as the `api-version` query parameter.",
    )

    api_key_env_var: ClassVar[Optional[str]] = "AZURE_OPENAI_API_KEY"
    base_url_env_var: ClassVar[Optional[str]] = "AZURE_OPENAI_ENDPOINT"
    default_base_url: ClassVar[Optional[str]] = None

    def load(self) -> None:
        """Checks the endpoint, API version, SDK and key.

        Raises:
            PotstillUserError: naming the env var of a missing endpoint, API version or key.
        """
        missing = [
            f"`{field}` (or the environment variable `{env}`)"
            for field, env in (
                ("base_url", self.base_url_env_var),
                ("api_version", _API_VERSION_ENV_VAR),
            )
            if not getattr(self, field)
        ]
        if missing:
            raise PotstillUserError(
                f"To use `{type(self).__name__}` set " + " and ".join(missing) + "."
            )
        super().load()

    def job_adapter(self) -> JobAdapter:
        """Azure OpenAI's Batch API, for `use_offline_batch_generation`."""
        return AzureBatchJobs(self)

    def _create_client(self) -> Any:
        from openai import AsyncAzureOpenAI

        options = self._client_options()
        endpoint = options.pop("base_url")
        return AsyncAzureOpenAI(
            **options,
            azure_endpoint=endpoint,
            azure_deployment=self.model,
            api_version=self.api_version,
            default_headers=self._headers(),
            http_client=self._http_client(),
        )


class AzureBatchJobs(OpenAIBatchJobs):
    """Azure OpenAI's Batch API: OpenAI's (the SDK sends its calls to `/openai/files` and
    `/openai/batches`), with the endpoint named `/chat/completions` and each request's
    `model` naming the deployment."""

    endpoint: ClassVar[str] = "/chat/completions"
