"""`AnyscaleLLM`: the Anyscale Endpoints OpenAI-compatible chat completions API."""

from __future__ import annotations

from typing import ClassVar, Optional

from potstill.llms.openai import OpenAILLM


class AnyscaleLLM(OpenAILLM):
    """An LLM served by Anyscale Endpoints, through the `openai` SDK.

    Everything but the endpoint and key is `OpenAILLM`'s: the generation kwargs,
    `num_generations` as the API's native `n`, usage from the response.

    Attributes:
        model: the model name, e.g. `meta-llama/Meta-Llama-3-8B-Instruct`.
        base_url: the API's base URL; defaults to `$ANYSCALE_BASE_URL`, else
            `https://api.endpoints.anyscale.com/v1`.
        api_key: the API key; defaults to `$ANYSCALE_API_KEY`.
        timeout: seconds to wait for a response before giving up on a request.

    Examples:
        ```python
        from potstill.llms import AnyscaleLLM

        llm = AnyscaleLLM(model="meta-llama/Meta-Llama-3-8B-Instruct")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    api_key_env_var: ClassVar[Optional[str]] = "ANYSCALE_API_KEY"
    base_url_env_var: ClassVar[Optional[str]] = "ANYSCALE_BASE_URL"
    default_base_url: ClassVar[Optional[str]] = "https://api.endpoints.anyscale.com/v1"
