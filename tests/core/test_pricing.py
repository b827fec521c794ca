"""`potstill.llms.pricing`: token costs from genai-prices' bundled table, or the user's price."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import genai_prices
import pydantic
import pytest
from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import DataSnapshot, set_custom_snapshot

from potstill.llms import pricing
from potstill.llms.pricing import (
    Price,
    TablePrice,
    batch_price_listed,
    llm_provider,
    resolve_price,
    token_cost,
)

SRC = Path(__file__).resolve().parents[2] / "src"


def table(model: str, provider_id: str | None, **kwargs: Any) -> float:
    """The bundled table's total for 1000 prompt and 500 generated tokens."""
    usage = Usage(input_tokens=1000, output_tokens=500)
    return float(calc_price(usage, model, provider_id=provider_id, **kwargs).total_price)


def cost(model: str, provider: str | None, **kwargs: Any) -> float | None:
    return token_cost(model, provider, input_tokens=1000, output_tokens=500, **kwargs)


def test_a_known_model_costs_the_tables_price() -> None:
    assert cost("gpt-4o-mini", "openai") == table("gpt-4o-mini", "openai") > 0


@pytest.mark.parametrize(
    ("provider", "model", "provider_id"),
    [
        ("OpenAILLM", "gpt-4o-mini", "openai"),
        ("AzureOpenAILLM", "gpt-4o-mini", "azure"),
        ("anthropic", "claude-haiku-4-5", "anthropic"),
        ("groq", "llama-3.1-8b-instant", "groq"),
        ("MistralLLM", "mistral-large-latest", "mistral"),
        ("mistralai", "mistral-large-latest", "mistral"),
        ("CohereLLM", "command-r", "cohere"),
        ("VertexAILLM", "gemini-2.5-flash", "google"),
        ("TogetherLLM", "Gryphe/MythoMax-L2-13b", "together"),
        ("LiteLLM", "openai/gpt-4o-mini", "litellm"),
        ("deepseek", "deepseek-chat", "deepseek"),  # a genai-prices provider id, as it is
    ],
)
def test_provider_names_map_to_the_tables_providers(
    provider: str, model: str, provider_id: str
) -> None:
    assert cost(model, provider) == table(model, provider_id) > 0


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("no-such-model-x1", "openai"),
        ("no-such-model-x1", None),
        ("gpt-4o-mini", "no-such-provider"),
        ("gpt-4o-mini", "ollama"),  # no per-token prices for these, whatever the model
        ("gpt-4o-mini", "AnyscaleLLM"),
        ("gpt-4o-mini", "InferenceEndpointsLLM"),
        ("", "openai"),
    ],
)
def test_no_price_is_none_never_a_guess(model: str, provider: str | None) -> None:
    assert cost(model, provider) is None


@pytest.mark.parametrize("provider", ["LlamaCppLLM", "TransformersLLM", "vLLM", "llama_cpp"])
def test_models_run_in_process_cost_nothing(provider: str) -> None:
    assert cost("HuggingFaceTB/SmolLM2-135M-Instruct", provider) == 0.0


def test_the_users_price_wins() -> None:
    price = Price.per_million(input=1.0, output=2.0)

    expected = 1000 * 1e-6 + 500 * 2e-6
    assert cost("gpt-4o-mini", "openai", price=price) == pytest.approx(expected)
    assert cost("no-such-model-x1", "openai", price=price) == pytest.approx(expected)
    assert cost("x", "LlamaCppLLM", price=price) == pytest.approx(expected)
    as_dict = {"input_per_token": 1e-6, "output_per_token": 2e-6}
    assert cost("gpt-4o-mini", None, price=as_dict) == pytest.approx(expected)
    assert price.cost(input_tokens=10, output_tokens=0) == pytest.approx(1e-5)


def test_zero_tokens_cost_zero_but_an_unknown_model_still_has_no_price() -> None:
    assert token_cost("gpt-4o-mini", "openai", input_tokens=0, output_tokens=0) == 0.0
    assert token_cost("no-such-model-x1", "openai", input_tokens=0, output_tokens=0) is None


@pytest.mark.parametrize(
    ("field", "value"), [("input_tokens", -1), ("output_tokens", 2.5), ("input_tokens", True)]
)
def test_bad_token_counts_are_refused_by_name(field: str, value: Any) -> None:
    counts = {"input_tokens": 1, "output_tokens": 1, field: value}
    with pytest.raises(ValueError, match=f"{field}={value!r} is not a token count"):
        token_cost("gpt-4o-mini", "openai", **counts)
    with pytest.raises(ValueError, match=field):
        Price.per_million(input=1, output=1).cost(**counts)


def test_a_price_is_checked_and_frozen() -> None:
    with pytest.raises(pydantic.ValidationError, match="input_per_token"):
        Price(input_per_token=-1.0, output_per_token=0.0)
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Price.model_validate({"input_per_token": 0, "output_per_token": 0, "cache": 1})
    price = Price(input_per_token=0.0, output_per_token=0.0)
    with pytest.raises(pydantic.ValidationError):
        price.input_per_token = 1.0  # type: ignore[misc]


def test_a_known_providers_base_url_picks_its_prices() -> None:
    deepseek = "https://api.deepseek.com/v1"

    assert cost("deepseek-chat", "openai", base_url=deepseek) == table("deepseek-chat", "deepseek")
    assert cost("gpt-4o-mini", "openai", base_url=deepseek) is None  # not sold there
    loopback = "http://127.0.0.1:8000/v1"  # a proxy or test server keeps the provider's prices
    assert cost("gpt-4o-mini", "openai", base_url=loopback) == table("gpt-4o-mini", "openai")


def test_batch_jobs_use_the_tables_batch_price_where_it_lists_one() -> None:
    online = cost("gpt-4o-mini", "openai")
    batched = cost("gpt-4o-mini", "openai", batch=True)

    assert batched == table("gpt-4o-mini", "openai", price_context={"processing": "batch"})
    assert batched is not None and online is not None and batched < online
    assert batch_price_listed("gpt-4o-mini", "openai") is True
    # no batch price in the table: the online price, an upper bound
    assert cost("claude-3-5-haiku-latest", "anthropic", batch=True) == cost(
        "claude-3-5-haiku-latest", "anthropic"
    )
    assert batch_price_listed("claude-3-5-haiku-latest", "anthropic") is False
    assert batch_price_listed("no-such-model-x1", "openai") is False
    assert batch_price_listed("x", "LlamaCppLLM") is False


@pytest.fixture
def updated_prices() -> Iterator[None]:
    """What genai-prices' own price updater leaves behind: a downloaded table in use."""
    set_custom_snapshot(DataSnapshot(providers=[], from_auto_update=True))
    pricing._bundled_table.cache_clear()  # found again with the updated table in place
    yield
    set_custom_snapshot(None)
    pricing._bundled_table.cache_clear()


def test_only_the_bundled_table_is_read(updated_prices: None) -> None:
    with pytest.raises(LookupError):
        genai_prices.calc_price(Usage(input_tokens=1), "gpt-4o-mini", provider_id="openai")

    assert cost("gpt-4o-mini", "openai") is not None


def _probe(code: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_genai_prices_is_imported_on_the_first_lookup_only() -> None:
    found = _probe(
        "import json, sys\n"
        "import potstill, potstill.llms\n"
        "from potstill.llms.pricing import Price, token_cost\n"
        "Price.per_million(input=1, output=1)\n"
        "before = 'genai_prices' in sys.modules\n"
        "token_cost('gpt-4o-mini', 'openai', input_tokens=1, output_tokens=1)\n"
        "print(json.dumps({'before': before, 'after': 'genai_prices' in sys.modules}))\n"
    )
    assert found == {"before": False, "after": True}


def test_a_missing_genai_prices_says_what_to_install() -> None:
    found = _probe(
        "import json, sys\n"
        "sys.modules['genai_prices'] = None\n"
        "from potstill.llms.pricing import Price, token_cost\n"
        "user = token_cost('m', 'openai', input_tokens=1, output_tokens=1,\n"
        "                  price=Price(input_per_token=1, output_per_token=0))\n"
        "try:\n"
        "    token_cost('gpt-4o-mini', 'openai', input_tokens=1, output_tokens=1)\n"
        "except ImportError as error:\n"
        "    print(json.dumps({'user': user, 'error': str(error)}))\n"
    )
    assert found["user"] == 1.0
    assert "pip install 'potstill[cost]'" in found["error"]


# -- prices looked up once (`resolve_price`, `TablePrice`) -----------------------------------------


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o-mini", "openai"),
        ("gemini-2.5-pro", "google"),  # tiered: every token costs more past 200k prompt tokens
        ("claude-sonnet-4-5", "anthropic"),  # tiered too
        ("openai/gpt-4o-mini", "litellm"),
    ],
)
@pytest.mark.parametrize("batch", [False, True])
def test_a_looked_up_price_costs_what_the_table_says(
    model: str, provider: str, batch: bool
) -> None:
    price = resolve_price(model, provider, batch=batch)

    assert isinstance(price, TablePrice)
    for prompt, generated in [(0, 0), (1, 0), (0, 1), (1234, 567), (200_000, 10), (200_001, 10)]:
        expected = token_cost(
            model, provider, input_tokens=prompt, output_tokens=generated, batch=batch
        )
        assert price.cost(prompt, generated) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_a_tiered_price_gives_its_highest_rates_as_per_token_prices() -> None:
    price = resolve_price("gemini-2.5-pro", "google")

    assert isinstance(price, TablePrice)
    long_prompt = token_cost("gemini-2.5-pro", "google", input_tokens=300_000, output_tokens=0)
    assert price.input_per_token == pytest.approx(long_prompt / 300_000)
    assert price.input_per_token > (price.cost(1000, 0) / 1000)


def test_resolve_price_follows_token_costs_rules() -> None:
    user = Price.per_million(input=1.0, output=2.0)

    assert resolve_price("gpt-4o-mini", "openai", price=user) is user
    assert resolve_price("x", "LlamaCppLLM") == Price(input_per_token=0.0, output_per_token=0.0)
    assert resolve_price("no-such-model-x1", "openai") is None
    assert resolve_price("gpt-4o-mini", "ollama") is None
    assert resolve_price("", "openai") is None


def test_a_price_is_given_per_million_tokens_too() -> None:
    given = Price.model_validate({"input_per_million": 0.15, "output_per_million": "0.6"})

    assert given == Price.per_million(input=0.15, output=0.6)
    with pytest.raises(pydantic.ValidationError, match="input_per_token or input_per_million"):
        Price.model_validate(
            {"input_per_million": 1, "input_per_token": 1e-6, "output_per_token": 0}
        )
    with pytest.raises(pydantic.ValidationError, match="output_per_token"):
        Price.model_validate({"input_per_million": 1, "output_per_million": "lots"})


def test_an_llm_class_is_priced_by_its_first_known_provider() -> None:
    from potstill.llms import LlamaCppLLM, OpenAILLM

    class ProxiedOpenAI(OpenAILLM):
        pass

    assert llm_provider(OpenAILLM) == "openai"
    assert llm_provider(ProxiedOpenAI) == "openai"
    assert llm_provider(LlamaCppLLM) == "llamacpp"
    assert llm_provider(Price) is None


def test_without_genai_prices_table_prices_are_no_price_and_a_budget_says_what_to_install() -> None:
    found = _probe(
        "import json, logging, sys\n"
        "sys.modules['genai_prices'] = None\n"
        "records = []\n"
        "logging.getLogger('potstill.pricing').addHandler(\n"
        "    type('H', (logging.Handler,), {'emit': lambda self, r: records.append(r)})())\n"
        "from potstill.llms import OpenAILLM\n"
        "from potstill.llms.budget import no_price_message\n"
        "from potstill.llms.pricing import Price\n"
        "llm = OpenAILLM(model='gpt-4o-mini')\n"
        "prices = [llm.token_price(), OpenAILLM(model='gpt-4o').token_price()]\n"
        "user = OpenAILLM(model='gpt-4o-mini', price=Price(input_per_token=1, output_per_token=0))\n"
        "print(json.dumps({'prices': prices, 'user': user.token_price().cost(2, 5),\n"
        "                  'warnings': [r.getMessage() for r in records],\n"
        "                  'refusal': no_price_message(llm)}))\n"
    )
    assert found["prices"] == [None, None]
    assert found["user"] == 2.0
    [warning] = found["warnings"]  # once, not per model or per batch
    assert "Costs are not known (no price table)" in warning
    assert "pip install 'potstill[cost]'" in warning
    assert "the price table is not installed: pip install 'potstill[cost]'" in found["refusal"]
