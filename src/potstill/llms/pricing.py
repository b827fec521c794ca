"""What tokens cost: the dollar cost of a request, from the price table of the `genai-prices`
package (`pip install 'potstill[cost]'`) or from a price the user gives.

`token_cost` answers `None`, "no price", for a model the table does not list (or a provider
it has no prices for): it never guesses. A `Price` given by the user always wins. Models run
on the user's own machine (llama.cpp, transformers, offline vLLM) cost nothing.

Only the table bundled with the installed `genai-prices` is read: potstill never downloads
price updates, so a cost is reproducible for a given `genai-prices` version. Upgrade the
package to get newer prices.

Batch jobs: with `batch=True` the table's batch price is used where it lists one (OpenAI,
Anthropic, Google, Mistral, Groq and x-ai list theirs, usually half the online price);
for a model without one the online price is used, an upper bound of what the job costs
(`batch_price_listed` tells which case applies). A user's `Price` applies as given to
online and batch requests alike.

An LLM finds its own price with `LLM.token_price()` (`resolve_price` here): looked up once per
model and kept, so pricing every request costs a multiplication, not a table search. Without
`genai-prices` installed, every table price is "no price" (one warning says so); a user's
`Price` and in-process models still cost what they cost.

`genai-prices` is imported on the first lookup, never when potstill is imported.
"""

from __future__ import annotations

import logging
import sys
from bisect import bisect_left
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from potstill.errors import NoPriceError
from potstill.utils.imports import require

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import PriceCalculation

logger = logging.getLogger("potstill.pricing")

# potstill's provider names (`OpenAILLM` -> "openai", ...) -> the `genai-prices` provider
# that prices their models, or None where the table has no per-token prices (Anyscale
# Endpoints is gone; Ollama, TGI/Inference Endpoints and a vLLM server bill by the hour or
# not at all). A name not listed here is taken as a `genai-prices` provider id
# ("deepseek", "openrouter", "x-ai"...). "litellm" lets `genai-prices` read the provider
# from a `provider/model` name.
PROVIDER_IDS: dict[str, Optional[str]] = {
    "openai": "openai",
    "azure": "azure",
    "azureopenai": "azure",
    "anthropic": "anthropic",
    "groq": "groq",
    "mistral": "mistral",
    "mistralai": "mistral",
    "cohere": "cohere",
    "google": "google",
    "gemini": "google",
    "vertexai": "google",
    "together": "together",
    "togetherai": "together",
    "litellm": "litellm",
    "anyscale": None,
    "ollama": None,
    "inferenceendpoints": None,
    "hfinferenceendpoints": None,
    "huggingface": None,
    "clientvllm": None,
}

# Engines that run the model in the user's process: no bill per token.
LOCAL_PROVIDERS: frozenset[str] = frozenset({"llamacpp", "transformers", "vllm"})

BATCH_CONTEXT = {"processing": "batch"}
TOKENS_PER_MILLION = 1_000_000


class Price(BaseModel):
    """A price per token, in dollars, that overrides the price table.

    Attributes:
        input_per_token: dollars per prompt token.
        output_per_token: dollars per generated token.

    Examples:
        ```python
        from potstill.llms.pricing import Price

        price = Price.per_million(input=0.15, output=0.60)
        assert price.cost(input_tokens=1_000_000, output_tokens=0) == 0.15
        # the same from a config file or `--param`: dollars per million tokens
        assert Price.model_validate({"input_per_million": 0.15, "output_per_million": 0.60}) == price
        ```
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_token: float = Field(ge=0, description="Dollars per prompt token.")
    output_per_token: float = Field(ge=0, description="Dollars per generated token.")

    @model_validator(mode="before")
    @classmethod
    def _from_per_million(cls, data: Any) -> Any:
        """Accepts `{"input_per_million": ..., "output_per_million": ...}`, the unit price
        lists use, as well as the per-token fields."""
        if isinstance(data, dict) and {"input_per_million", "output_per_million"} & set(data):
            data = dict(data)
            for unit in ("input", "output"):
                if f"{unit}_per_million" not in data:
                    continue
                if f"{unit}_per_token" in data:
                    raise ValueError(f"give {unit}_per_token or {unit}_per_million, not both")
                per_million = data.pop(f"{unit}_per_million")
                try:
                    data[f"{unit}_per_token"] = float(per_million) / TOKENS_PER_MILLION
                except (TypeError, ValueError):
                    data[f"{unit}_per_token"] = per_million  # refused below, by name
        return data

    @classmethod
    def per_million(cls, input: float, output: float) -> Price:
        """Builds a price from dollars per million tokens, the unit price lists use.

        Args:
            input: dollars per million prompt tokens.
            output: dollars per million generated tokens.

        Returns:
            The price per token.
        """
        return cls(
            input_per_token=input / TOKENS_PER_MILLION,
            output_per_token=output / TOKENS_PER_MILLION,
        )

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The dollar cost of some tokens at this price.

        Args:
            input_tokens: prompt tokens.
            output_tokens: generated tokens.

        Returns:
            The cost in dollars.
        """
        _check_tokens(input_tokens=input_tokens, output_tokens=output_tokens)
        return input_tokens * self.input_per_token + output_tokens * self.output_per_token


def _check_tokens(**counts: Any) -> None:
    """Refuses token counts that are not whole numbers >= 0.

    Args:
        **counts: the counts, by argument name.

    Raises:
        ValueError: naming the argument, its value and what it must be.
    """
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(
                f"{name}={value!r} is not a token count: pass the whole number of tokens "
                "(>= 0) the provider reported."
            )


def provider_key(provider: str) -> str:
    """Normalises a provider hint: `"OpenAILLM"`, `"openai"` and `"Azure_OpenAI"` all work.

    Args:
        provider: a provider name or an LLM class name.

    Returns:
        The key of `PROVIDER_IDS`/`LOCAL_PROVIDERS` it stands for, else the hint lower-cased.
    """
    compact = "".join(c for c in provider.lower() if c.isalnum())
    if compact in PROVIDER_IDS or compact in LOCAL_PROVIDERS:
        return compact
    if compact.endswith("llm") and (
        compact[:-3] in PROVIDER_IDS or compact[:-3] in LOCAL_PROVIDERS
    ):
        return compact[:-3]
    return provider.strip().lower()


@lru_cache(maxsize=1)
def _bundled_table() -> DataSnapshot:
    """The price table shipped with the installed `genai-prices` (never an update).

    Returns:
        The table.

    Raises:
        ImportError: when `genai-prices` is not installed, saying how to install it.
    """
    if sys.version_info < (3, 11):
        raise ImportError(
            "Prices come from `genai-prices`, which needs Python 3.11 or newer; on this "
            "Python give your own price with `Price(input_per_token=..., output_per_token=...)`."
        )
    snapshots = require("genai_prices.data_snapshot", "cost")
    data = require("genai_prices.data", "cost")
    return snapshots.DataSnapshot(providers=data.providers, from_auto_update=False)


def _table_price(
    model: str, provider: Optional[str], base_url: Optional[str], usage: Any, batch: bool
) -> PriceCalculation:
    """Looks a model up in the table and prices some usage.

    Args:
        model: the model name sent to the provider.
        provider: the provider hint, or None to let the table match the model name.
        base_url: the API's base URL, or None.
        usage: a `genai_prices.Usage`.
        batch: price as a batch job.

    Returns:
        The table's calculation.

    Raises:
        NoPriceError: when the table does not price this model here.
    """
    table = _bundled_table()
    provider_id: Optional[str] = None
    if base_url:
        try:
            provider_id = table.find_provider(None, None, base_url).id
        except LookupError:
            provider_id = None  # a proxy or a test server: fall back on the hint
    if provider_id is None and provider is not None:
        provider_id = PROVIDER_IDS.get(provider, provider)
        if provider_id is None:
            raise NoPriceError
    try:
        return table.calc(usage, model, provider_id, None, None, BATCH_CONTEXT if batch else None)
    except LookupError as error:
        raise NoPriceError from error


def token_cost(
    model: str,
    provider: Optional[str] = None,
    *,
    input_tokens: int,
    output_tokens: int,
    base_url: Optional[str] = None,
    batch: bool = False,
    price: Union[Price, dict, None] = None,
) -> Optional[float]:
    """The dollar cost of a request's tokens.

    Args:
        model: the model name sent to the provider, e.g. `gpt-4o-mini`.
        provider: the provider: potstill's name for it (`"openai"`, `"anthropic"`,
            `"groq"`, `"mistral"`, `"cohere"`, `"vertexai"`...), the LLM class name
            (`"OpenAILLM"`) or a `genai-prices` provider id (`"deepseek"`). None lets the
            table find the provider from the model name.
        input_tokens: prompt tokens the provider reported.
        output_tokens: generated tokens the provider reported.
        base_url: the API's base URL; when it is a known provider's (an `OpenAILLM` sent
            to `https://api.deepseek.com`), that provider's prices apply; an unknown URL
            (a proxy, a local server) keeps the `provider`'s.
        batch: price the tokens as part of a batch job (see the module docstring).
        price: the user's own price, which wins over the table.

    Returns:
        The cost in dollars, or None when there is no price for this model.

    Raises:
        ValueError: when a token count is not a whole number >= 0.
        ImportError: when the table is needed and `genai-prices` is not installed.
    """
    _check_tokens(input_tokens=input_tokens, output_tokens=output_tokens)
    key = provider_key(provider) if provider is not None else None
    fixed = _price_without_table(key, price)
    if fixed is not None:
        return fixed.cost(input_tokens, output_tokens)
    if not model:
        return None
    usage = require("genai_prices", "cost").Usage(
        input_tokens=input_tokens, output_tokens=output_tokens
    )
    try:
        calculation = _table_price(model, key, base_url, usage, batch)
    except NoPriceError:
        return None
    return float(calculation.total_price)


def batch_price_listed(
    model: str, provider: Optional[str] = None, *, base_url: Optional[str] = None
) -> bool:
    """Tells whether the table lists a batch price for a model, so that
    `token_cost(..., batch=True)` is the discounted batch price rather than the online one.

    Args:
        model: the model name sent to the provider.
        provider: the provider, as for `token_cost`.
        base_url: the API's base URL, as for `token_cost`.

    Returns:
        True when the table has a batch price for this model; False when it has only the
        online price, or no price at all.
    """
    key = provider_key(provider) if provider is not None else None
    if key in LOCAL_PROVIDERS or not model:
        return False
    usage = require("genai_prices", "cost").Usage(
        input_tokens=TOKENS_PER_MILLION, output_tokens=TOKENS_PER_MILLION
    )
    try:
        online = _table_price(model, key, base_url, usage, batch=False)
        batched = _table_price(model, key, base_url, usage, batch=True)
    except NoPriceError:
        return False
    return batched.model_price != online.model_price


FREE = Price(input_per_token=0.0, output_per_token=0.0)
"""The price of a model run on the user's own machine."""


class TablePrice:
    """A model's price from the table, looked up once, so that each `cost` is arithmetic.

    A price with tiers (Gemini's and Claude's rise past 200k prompt tokens, for every token
    of the request) is kept as one pair of rates per tier, each computed by the table.

    Attributes:
        input_per_token: dollars per prompt token; with tiers, the highest tier's rate (an
            upper bound, as a budget wants).
        output_per_token: dollars per generated token (the same way).
        per_request: dollars per request, whatever its tokens (0 for most models).
    """

    __slots__ = ("_rates", "_starts", "input_per_token", "output_per_token", "per_request")

    def __init__(
        self, model: str, provider: Optional[str], base_url: Optional[str], batch: bool
    ) -> None:
        """Looks the model up.

        Args:
            model: the model name sent to the provider.
            provider: the `PROVIDER_IDS` key, or None.
            base_url: the API's base URL, or None.
            batch: price as a batch job.

        Raises:
            NoPriceError: when the table does not price this model here.
        """
        usage_type = require("genai_prices", "cost").Usage
        tiers = require("genai_prices.types", "cost").TieredPrices

        def total(input_tokens: int, output_tokens: int) -> Any:
            usage = usage_type(input_tokens=input_tokens, output_tokens=output_tokens)
            return _table_price(model, provider, base_url, usage, batch)

        zero = total(0, 0)
        self.per_request = float(zero.total_price)
        # A tier applies to every token of a request whose prompt is longer than its start.
        self._starts = sorted(
            {
                tier.start
                for value in vars(zero.model_price).values()
                if isinstance(value, tiers)
                for tier in value.tiers
            }
        )
        self._rates: list[tuple[float, float]] = []
        for prompt in [1, *(start + 1 for start in self._starts)]:
            inputs = total(prompt, 0).total_price
            both = total(prompt, TOKENS_PER_MILLION).total_price
            self._rates.append(
                (
                    float((inputs - zero.total_price) / prompt),
                    float((both - inputs) / TOKENS_PER_MILLION),
                )
            )
        self.input_per_token = max(rate for rate, _ in self._rates)
        self.output_per_token = max(rate for _, rate in self._rates)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The dollar cost of one request's tokens.

        Args:
            input_tokens: its prompt tokens.
            output_tokens: its generated tokens.

        Returns:
            The cost in dollars.
        """
        starts = self._starts
        per_input, per_output = self._rates[bisect_left(starts, input_tokens) if starts else 0]
        return self.per_request + input_tokens * per_input + output_tokens * per_output


TokenPrice = Union[Price, TablePrice]
"""A price with `cost(input_tokens, output_tokens)`, `input_per_token` and `output_per_token`."""


def resolve_price(
    model: str,
    provider: Optional[str] = None,
    *,
    base_url: Optional[str] = None,
    batch: bool = False,
    price: Union[Price, dict, None] = None,
) -> Optional[TokenPrice]:
    """The price of a model's tokens, to price many requests with (see `token_cost` for
    the arguments): the user's `price`, nothing for a model run in-process, else the
    table's, looked up once per model and kept.

    Returns:
        The price, or None when there is no price for this model.
    """
    key = provider_key(provider) if provider is not None else None
    fixed = _price_without_table(key, price)
    if fixed is not None:
        return fixed
    if not model:
        return None
    return _looked_up(model, key, base_url or None, batch)


@lru_cache(maxsize=256)
def _looked_up(
    model: str, provider: Optional[str], base_url: Optional[str], batch: bool
) -> Optional[TablePrice]:
    try:
        return TablePrice(model, provider, base_url, batch)
    except NoPriceError:
        return None
    except ImportError as error:  # no `genai-prices`: every table price is "no price"
        _say_no_table(str(error))
        return None


@cache
def _say_no_table(reason: str) -> None:
    """Warns once that costs are unknown without the price table."""
    logger.warning("Costs are not known (no price table): %s", reason)


def price_table_available() -> bool:
    """Whether the price table can be read (`genai-prices` is installed, Python 3.11+)."""
    try:
        _bundled_table()
    except ImportError:
        return False
    return True


def _price_without_table(
    provider: Optional[str], price: Union[Price, dict, None]
) -> Optional[Price]:
    """The price that needs no table: the user's, or nothing for a model run in-process.

    Args:
        provider: the normalised provider key, or None.
        price: the user's price, or None.

    Returns:
        That price, or None when the table decides.
    """
    if price is not None:
        return Price.model_validate(price)
    if provider in LOCAL_PROVIDERS:
        return FREE
    return None


@cache
def llm_provider(llm_class: type) -> Optional[str]:
    """The provider whose prices apply to an LLM class: the first class of its hierarchy
    that names a known provider (a subclass of `OpenAILLM` is priced as OpenAI).

    Args:
        llm_class: the LLM's class.

    Returns:
        The `PROVIDER_IDS`/`LOCAL_PROVIDERS` key, or None for an LLM of no known provider
        (a custom or test LLM), which has no price unless the user gives one: its model
        name alone (`"gpt-4"`) says nothing about who serves it.
    """
    for klass in llm_class.__mro__:
        key = provider_key(klass.__name__)
        if key in PROVIDER_IDS or key in LOCAL_PROVIDERS:
            return key
    return None
