"""The contract every hosted provider keeps, checked for each one (`cases.HOSTED`) through
its real SDK over real HTTP against the loopback server.

The provider list comes from the registry (`potstill.llms`): a hosted class without a case
fails `test_every_hosted_provider_has_a_case`. What only one provider does (its wire
format, its own fields) is tested in its own file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.fake_server import FakeServer
from tests.providers.cases import HOSTED, ProviderCase, cases, hosted_classes
from tests.providers.contract import (
    FRANCE,
    HELLO,
    HELLO_ANSWER,
    MADRID,
    PARIS,
    SPAIN,
    chat,
    check_empty_answer,
    check_failures_are_isolated,
    check_missing_key,
    check_native_num_generations,
    check_num_generations,
    check_pipeline,
    check_retry_succeeds,
    check_secret_never_shown,
    loaded,
    received,
)

import potstill.llms
from potstill.llms import LLM, AsyncLLM
from potstill.llms.hosted import HostedLLM
from potstill.utils.fields import is_execution_only

ROOT = Path(__file__).resolve().parents[2]


def each(select: Any = lambda case: True) -> Any:
    """Parametrizes `case` with the cases `select` keeps."""
    return pytest.mark.parametrize("case", cases(select), indirect=True)


# -- the registry --------------------------------------------------------------------------------


def test_every_hosted_provider_has_a_case() -> None:
    registered = sorted(hosted_classes())
    covered = sorted(case.id for case in HOSTED)

    assert covered == registered, (
        "every hosted provider in potstill.llms._PROVIDERS needs a case in "
        "tests/providers/cases.py (see CONTRIBUTING.md)"
    )


@each()
def test_the_lazy_registry_resolves_the_class(case: ProviderCase) -> None:
    name = case.id

    assert getattr(potstill.llms, name) is case.cls
    assert case.cls.__module__ == f"potstill.llms.{potstill.llms._PROVIDERS[name]}"
    assert issubclass(case.cls, AsyncLLM) and issubclass(case.cls, LLM)
    assert name in potstill.llms.__all__


def test_importing_the_providers_imports_no_sdk() -> None:
    sdks = sorted({cls.sdk_module for cls in hosted_classes().values() if cls.sdk_module})
    code = (
        "import sys, potstill.llms\n"
        "for name in potstill.llms._PROVIDERS: getattr(potstill.llms, name)\n"
        f"print(','.join(m for m in {[*sdks, 'google.auth', 'transformers', 'torch']!r} "
        "if m in sys.modules))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert {"openai", "anthropic", "huggingface_hub", "google.genai"} <= set(sdks)
    assert result.stdout.strip() == ""


# -- fields, descriptions, dumps -------------------------------------------------------------------


@each()
def test_every_runtime_parameter_has_a_description(
    case: ProviderCase, fake_server: FakeServer
) -> None:
    llm = case.make(fake_server)

    info = llm.get_runtime_parameters_info()

    [kwargs] = [item for item in info if item["name"] == "generation_kwargs"]
    assert kwargs["keys"], "the class has generation kwargs"
    assert [key["name"] for key in kwargs["keys"] if not key.get("description")] == []
    assert [item["name"] for item in info if not item.get("description")] == []
    assert {"max_retries", "timeout"} <= set(llm.runtime_parameters_names)


@each()
def test_the_dump_round_trips_without_the_secret(
    case: ProviderCase, fake_server: FakeServer
) -> None:
    llm = case.make(fake_server, key="sk-dump-secret", generation_kwargs=case.temperature)

    dump = llm.dump()
    rebuilt = type(llm).from_dict(json.loads(json.dumps(dump)))

    assert "sk-dump-secret" not in json.dumps(dump)
    assert "api_key" not in dump and "credentials" not in dump
    assert type(rebuilt) is case.cls
    assert getattr(rebuilt, "api_key", None) is None
    assert rebuilt.generation_kwargs == case.temperature
    assert rebuilt.dump() == dump


@each()
def test_timeout_is_float_seconds(case: ProviderCase, fake_server: FakeServer) -> None:
    llm = case.make(fake_server)

    assert isinstance(llm.timeout, float)
    assert llm.timeout == case.timeout
    llm.timeout = 2.5
    assert llm.timeout == 2.5
    # It changes how the LLM runs, not what it answers: not part of the cache key.
    assert is_execution_only(case.cls.model_fields["timeout"])


@each(lambda case: case.default_base_url is not None)
def test_base_url_defaults_mirror_distilabel(case: ProviderCase) -> None:
    llm = case.cls(**case.kwargs)

    assert llm.base_url == case.default_base_url
    assert llm.api_key is None
    assert llm.model_name == case.kwargs["model"]


@each(lambda case: issubclass(case.cls, HostedLLM) and case.cls.base_url_env_var is not None)
def test_env_vars_set_base_url_and_key(
    case: ProviderCase, fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = case.target(fake_server)["base_url"]
    monkeypatch.setenv(case.cls.base_url_env_var, url)
    monkeypatch.setenv(case.key_env, "test-key")

    llm = loaded(case.cls(**case.kwargs))

    assert llm.base_url == url
    assert llm.api_key is not None and llm.api_key.get_secret_value() == "test-key"
    assert llm.generate([chat(SPAIN)]) == [[MADRID]]


@each()
def test_the_endpoint_is_named(case: ProviderCase, fake_server: FakeServer) -> None:
    [url] = case.target(fake_server).values()

    assert case.make(fake_server).describe_endpoint() == url


@each(lambda case: case.key_env is not None)
def test_missing_api_key_fails_at_load(case: ProviderCase, fake_server: FakeServer) -> None:
    check_missing_key(lambda **kwargs: case.make(fake_server, key=None, **kwargs), case.key_env)


# -- requests --------------------------------------------------------------------------------------


@each()
def test_an_empty_answer_is_none_with_a_reason(case: ProviderCase, fake_server: FakeServer) -> None:
    check_empty_answer(case.make(fake_server), case.empty_reason)


@each()
def test_num_generations(case: ProviderCase, fake_server: FakeServer) -> None:
    check = check_native_num_generations if case.native_n else check_num_generations
    check(case.make(fake_server), fake_server, case.route)


@each(lambda case: case.native_n)
def test_missing_generations_are_requested_when_n_is_ignored(
    case: ProviderCase, fake_server: FakeServer
) -> None:
    """The server answers one choice whatever `n` asks; the missing generations are
    requested one by one, and the instance then sends one request per generation."""
    fake_server.configure(ignore_n=True)
    llm = loaded(case.make(fake_server))

    first = llm.generate([chat(SPAIN), chat(FRANCE)], num_generations=3)
    later = llm.generate([chat(HELLO)], num_generations=3)

    assert first == [[MADRID] * 3, [PARIS] * 3]
    assert later == [[HELLO_ANSWER] * 3]
    assert all(error is None for output in first + later for error in output.errors)
    asked = [request.body.get("n", 1) for request in received(fake_server, case.route, "Spain")]
    assert sorted(asked) == [1, 1, 3], "one request with n=3, then the 2 missing ones"
    hello = received(fake_server, case.route, HELLO)
    assert [request.body.get("n", 1) for request in hello] == [1, 1, 1]
    usage = llm.usage
    assert usage.requests == 3 + 3 + 3
    assert usage.extra_requests == 2 + 2 + 2
    assert usage.failed_requests == 0
    assert first[0].usage.input_tokens == 3 * 5, "the usage of every request is kept"


@each()
def test_failures_are_isolated(case: ProviderCase, fake_server: FakeServer) -> None:
    # For LiteLLM this also shows its own retries are off: one request for the 500.
    check_failures_are_isolated(case.make(fake_server), fake_server, case.route)


@each()
def test_a_transient_error_is_retried(case: ProviderCase, fake_server: FakeServer) -> None:
    check_retry_succeeds(case.make(fake_server), fake_server, case.route)


@each()
def test_the_secret_is_never_shown(
    case: ProviderCase, fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    check_secret_never_shown(
        lambda key: case.make(fake_server, key=key),
        fake_server,
        caplog,
        case.show_key,
        case.refused_error,
    )


@each()
def test_runs_in_a_text_generation_pipeline(case: ProviderCase, fake_server: FakeServer) -> None:
    check_pipeline(
        case.make(fake_server), {"generation_kwargs": case.temperature}, native_n=case.native_n
    )

    requests = received(fake_server, case.route)
    assert len(requests) == (2 if case.native_n else 4)
    assert all(case.sent_temperature(request.body) == 0.2 for request in requests)
