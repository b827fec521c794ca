"""`HostedLLM` and the helpers of `potstill.llms.hosted`, without a server."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import pytest
from pydantic import validate_call

from potstill.llms.hosted import HostedLLM, aiohttp_transport, passed_kwargs
from potstill.llms.typing import GenerateOutput
from potstill.typing import ChatType


class DemoLLM(HostedLLM):
    """A hosted LLM for these tests.

    Attributes:
        base_url: where the demo API is; defaults to `$DEMO_BASE_URL`.
        api_key: the demo key; defaults to `$DEMO_API_KEY`.
    """

    api_key_env_var: ClassVar[Optional[str]] = "DEMO_API_KEY"
    base_url_env_var: ClassVar[Optional[str]] = "DEMO_BASE_URL"
    default_base_url: ClassVar[Optional[str]] = "https://demo.invalid/v1"

    @validate_call
    async def agenerate(
        self, input: ChatType, temperature: float = 1.0, top_p: Optional[float] = None
    ) -> GenerateOutput:
        """Answers with the generation kwargs it was called with.

        Args:
            input: the conversation.
            temperature: the sampling temperature.
            top_p: the nucleus sampling probability mass.
        """
        return [repr(passed_kwargs(locals()))]


def test_key_and_base_url_are_read_from_the_environment_when_created(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_API_KEY", "sk-env")
    monkeypatch.setenv("DEMO_BASE_URL", "http://127.0.0.1:9/v1")

    llm = DemoLLM(model="m")
    monkeypatch.setenv("DEMO_API_KEY", "sk-later")

    assert llm.api_key is not None and llm.api_key.get_secret_value() == "sk-env"
    assert llm.base_url == "http://127.0.0.1:9/v1"
    assert llm.describe_endpoint() == "http://127.0.0.1:9/v1"
    assert llm.model_name == "m"


def test_given_values_win_and_the_default_url_is_the_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_API_KEY", "sk-env")

    given = DemoLLM(model="m", api_key="sk-given", base_url=None)
    plain = DemoLLM(model="m")

    assert given.api_key is not None and given.api_key.get_secret_value() == "sk-given"
    assert given.base_url is None, "a value given as None stays None"
    assert plain.base_url == "https://demo.invalid/v1"


def test_field_descriptions_come_from_the_providers_docstring() -> None:
    info = {item["name"]: item for item in DemoLLM(model="m").get_runtime_parameters_info()}

    assert info["base_url"]["description"] == "where the demo API is; defaults to `$DEMO_BASE_URL`."
    assert info["api_key"]["description"] == "the demo key; defaults to `$DEMO_API_KEY`."
    assert info["timeout"]["description"].startswith("The maximum time in seconds")


def test_client_options_turn_the_sdk_retries_off() -> None:
    llm = DemoLLM(model="m", api_key="sk-1", base_url="http://x/v1", timeout=7)

    assert llm._client_options() == {
        "api_key": "sk-1",
        "base_url": "http://x/v1",
        "timeout": 7.0,
        "max_retries": 0,
    }


def test_passed_kwargs_are_the_generation_kwargs_of_the_call() -> None:
    llm = DemoLLM(model="m", api_key="k")
    llm.load()
    try:
        [output] = llm.generate([[{"role": "user", "content": "hi"}]], temperature=0.3)
    finally:
        llm.unload()

    assert output == ["{'temperature': 0.3, 'top_p': None}"]


def test_passed_kwargs_leave_out_the_call_itself() -> None:
    call: dict[str, Any] = {"self": 1, "input": [], "num_generations": 2, "__class__": 3, "x": 4}

    assert passed_kwargs(call) == {"x": 4}


def test_aiohttp_transport_when_the_sdk_has_one() -> None:
    import openai

    assert isinstance(aiohttp_transport("openai"), openai.DefaultAioHttpClient)
    assert aiohttp_transport("json") is None, "an SDK without one gets its default"
    assert aiohttp_transport(None) is None
