"""`TogetherLLM`: Together AI's OpenAI-compatible chat completions API."""

from __future__ import annotations

from typing import ClassVar, Optional

from potstill.llms.openai import OpenAILLM


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

    api_key_env_var: ClassVar[Optional[str]] = "TOGETHER_API_KEY"
    base_url_env_var: ClassVar[Optional[str]] = "TOGETHER_BASE_URL"
    default_base_url: ClassVar[Optional[str]] = "https://api.together.xyz/v1"
