"""`TogetherLLM`: Together AI's OpenAI-compatible chat completions API."""

from __future__ import annotations

import os
from typing import ClassVar, Optional

from pydantic import Field, SecretStr

from potstill.llms.openai import OpenAILLM
from potstill.mixins.runtime_parameters import RuntimeParameter


class TogetherLLM(OpenAILLM):
    """An LLM served by Together AI, through the `openai` SDK.

    Everything but the endpoint and key is `OpenAILLM`'s: the generation kwargs,
    `num_generations` as the API's native `n`, usage from the response.

    Attributes:
        model: the model name, e.g. `meta-llama/Llama-3.3-70B-Instruct-Turbo`.
        base_url: the API's base URL; defaults to `$TOGETHER_BASE_URL`, else
            `https://api.together.xyz/v1`.
        api_key: the API key; defaults to `$TOGETHER_API_KEY`.
        timeout: seconds to wait for a response before giving up on a request.

    Examples:
        ```python
        from potstill.llms import TogetherLLM

        llm = TogetherLLM(model="meta-llama/Llama-3.3-70B-Instruct-Turbo")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    base_url: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv("TOGETHER_BASE_URL", "https://api.together.xyz/v1"),
        description="The base URL to use for the Together API requests.",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv("TOGETHER_API_KEY"),
        description="The API key to authenticate the requests to the Together API.",
    )

    api_key_env_var: ClassVar[Optional[str]] = "TOGETHER_API_KEY"
