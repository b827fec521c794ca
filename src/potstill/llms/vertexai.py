"""`VertexAILLM`: Gemini models on Google Cloud Vertex AI, through the `google-genai` SDK."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Dict, List, Optional, Union

from pydantic import Field, PositiveFloat, PositiveInt, PrivateAttr, validate_call

from potstill.errors import PotstillUserError
from potstill.llms.base import AsyncLLM
from potstill.llms.hosted import passed_kwargs, timeout_field
from potstill.llms.structured import StructuredOutput
from potstill.llms.typing import GenerateOutput, Generations
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType
from potstill.utils.fields import ExecutionOnly

_PROJECT_ENV_VAR = "GOOGLE_CLOUD_PROJECT"
_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
_ROLES = {"user": "user", "assistant": "model", "model": "model"}

SafetySettings = Union[Dict[str, str], List[Dict[str, Any]]]


class VertexAILLM(AsyncLLM):
    """A Gemini model served by Google Cloud Vertex AI.

    It uses `google-genai` (`genai.Client(vertexai=True)`), Google's current SDK; the
    `vertexai.generative_models` module that distilabel used is deprecated. Messages may
    use the roles `system`, `user` and `assistant` (or Gemini's `model`): `system`
    messages become the `system_instruction`, `assistant` becomes `model`. Each request
    asks for one candidate, so `num_generations` sends that many requests in parallel. A
    blocked or empty candidate is `None`, with the reason kept. Token usage comes from
    the response's `usage_metadata`.

    Credentials are Google Application Default Credentials (`gcloud auth
    application-default login`, `$GOOGLE_APPLICATION_CREDENTIALS`, or the attached
    service account), resolved once in `load()`, unless `credentials` is given.

    Attributes:
        model: the model name, e.g. `gemini-2.5-flash`.
        project: the Google Cloud project; defaults to `$GOOGLE_CLOUD_PROJECT`, else
            the project of the default credentials.
        location: the Vertex AI region, e.g. `us-central1`; defaults to
            `$GOOGLE_CLOUD_LOCATION`, else `global`.
        base_url: a custom endpoint (a private endpoint or a proxy); `None` for Google's.
        timeout: seconds to wait for a response before giving up on a request.
        credentials: a `google.auth.credentials.Credentials` to use instead of the
            default credentials (never serialized).

    Examples:
        ```python
        from potstill.llms import VertexAILLM

        llm = VertexAILLM(model="gemini-2.5-flash", project="my-project")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    model: str
    project: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv(_PROJECT_ENV_VAR),
        description="The Google Cloud project to bill and authorize the requests with.",
    )
    location: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv("GOOGLE_CLOUD_LOCATION"),
        description="The Vertex AI location (region), e.g. `us-central1`.",
    )
    base_url: Optional[RuntimeParameter[str]] = Field(
        default=None, description="A custom Vertex AI endpoint; `None` uses Google's."
    )
    timeout: ExecutionOnly[RuntimeParameter[PositiveFloat]] = timeout_field()
    credentials: Optional[Any] = Field(default=None, exclude=True, repr=False)

    structured_output_formats: ClassVar[tuple[str, ...]] = ("json",)
    sdk_module: ClassVar[Optional[str]] = "google.genai"
    sdk_extra: ClassVar[Optional[str]] = "vertexai"

    _credentials: Any = PrivateAttr(default=None)
    _project: Optional[str] = PrivateAttr(default=None)

    @property
    def model_name(self) -> str:
        """The `model` field."""
        return self.model

    def describe_endpoint(self) -> Optional[str]:
        """The `base_url` field, named in error messages.

        Returns:
            The custom endpoint, or `None` for Google's.
        """
        return self.base_url

    def load(self) -> None:
        """Checks the SDK and resolves the credentials and the project once."""
        super().load()
        credentials, project = self.credentials, self.project
        if credentials is None:
            credentials, default_project = _default_credentials()
            project = project or default_project
        if not project and not self.base_url:
            raise PotstillUserError(
                "To use `VertexAILLM` a Google Cloud project must be provided via the "
                "`project` attribute or runtime parameter, or set the environment variable "
                f"`{_PROJECT_ENV_VAR}`."
            )
        self._credentials, self._project = credentials, project

    def _create_client(self) -> Any:
        from google import genai
        from google.genai import types

        return genai.Client(
            vertexai=True,
            credentials=self._credentials,
            project=self._project,
            location=self.location or "global",
            http_options=types.HttpOptions(
                base_url=self.base_url,
                timeout=round(self.timeout * 1000) if self.timeout else None,  # milliseconds
                # One attempt: AsyncLLM retries, honouring Retry-After.
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    async def _aclose_client(self, client: Any) -> None:
        await client.aio.aclose()
        client.close()

    @validate_call
    async def agenerate(
        self,
        input: ChatType,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[float] = None,
        max_output_tokens: Optional[PositiveInt] = None,
        stop_sequences: Optional[List[str]] = None,
        safety_settings: Optional[SafetySettings] = None,
        tools: Optional[List[Dict[str, Any]]] = None,
        structured_output: Optional[StructuredOutput] = None,
    ) -> GenerateOutput:
        """Generates one candidate for one conversation.

        Every kwarg left to `None` is not sent, so the model's default applies.

        Args:
            input: the conversation (`system`, `user` and `assistant`/`model` messages).
            temperature: the sampling temperature (0 to 2).
            top_p: the nucleus sampling probability mass.
            top_k: sample only from the `top_k` most likely tokens.
            max_output_tokens: the maximum number of tokens to generate.
            stop_sequences: up to 5 sequences where the model stops generating.
            safety_settings: harm category -> block threshold, e.g.
                `{"HARM_CATEGORY_HATE_SPEECH": "BLOCK_ONLY_HIGH"}`, or a list of
                `{"category": ..., "threshold": ...}` dicts.
            tools: tool declarations as dicts, e.g.
                `[{"function_declarations": [{"name": ..., "parameters": {...}}]}]`.
            structured_output: the request's structured output (set by potstill): JSON
                output (`response_mime_type="application/json"`) constrained by its JSON
                schema (`response_json_schema`, the JSON Schema form of `response_schema`).

        Returns:
            The generated text (`None` when blocked), with the request's token usage.
        """
        request = build_request(self.model, input, **passed_kwargs(locals()))
        return parse_response(await self.client.aio.models.generate_content(**request))


def build_request(model: str, input: ChatType, **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments of a `models.generate_content` call asking for one candidate.

    Args:
        model: the model name.
        input: the conversation: `system` messages, joined, become the
            `system_instruction`; `assistant` becomes Gemini's `model` role.
        **kwargs: `VertexAILLM.agenerate`'s generation kwargs, sent in the `config`;
            `safety_settings` as a mapping becomes a list; those that are `None` are left
            out, so the model's defaults apply. A `structured_output` asks for JSON
            (`response_mime_type`) that follows its schema (`response_json_schema`).

    Returns:
        The arguments.

    Raises:
        ValueError: for a message whose role Gemini does not have.
    """
    system, contents = _to_contents(input)
    settings = {**kwargs, "safety_settings": _safety_settings(kwargs.get("safety_settings"))}
    structured = settings.pop("structured_output", None)
    if structured is not None:
        settings["response_mime_type"] = "application/json"
        settings["response_json_schema"] = structured.schema
    config = {"system_instruction": system, "candidate_count": 1, **settings}
    return {
        "model": model,
        "contents": contents,
        "config": {name: value for name, value in config.items() if value is not None},
    }


def parse_response(response: Any) -> Generations:
    """The generation of a `GenerateContentResponse`: the first candidate's text (thoughts
    left out), `None` when blocked or empty, with the reason kept.

    Args:
        response: the SDK's response.

    Returns:
        The generation, with the token usage from `usage_metadata`.
    """
    candidate = (response.candidates or [None])[0]
    parts = (candidate.content.parts or []) if candidate and candidate.content else []
    text = "".join(part.text for part in parts if part.text and not part.thought)
    usage = response.usage_metadata
    generations = Generations.from_request(
        [text or None],
        input_tokens=usage.prompt_token_count if usage else None,
        output_tokens=usage.candidates_token_count if usage else None,
    )
    if not text:
        generations.errors[0] = _why_empty(response, candidate)
    return generations


def _default_credentials() -> tuple[Any, Optional[str]]:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        return google.auth.default(scopes=_SCOPES)
    except DefaultCredentialsError as error:
        raise PotstillUserError(
            "`VertexAILLM` found no Google Cloud credentials: run `gcloud auth "
            "application-default login`, set the environment variable "
            "`GOOGLE_APPLICATION_CREDENTIALS` to a service account key file, or pass "
            f"`credentials=`. ({error})"
        ) from None


def _to_contents(input: ChatType) -> tuple[Optional[str], list[dict[str, Any]]]:
    """Maps OpenAI-style messages to Gemini contents without touching `input`."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    for index, message in enumerate(input):
        role = message["role"]
        if role == "system":
            system.append(message["content"])
            continue
        if role not in _ROLES:
            raise ValueError(
                f"Message {index} has role {role!r}; VertexAILLM accepts 'system', 'user', "
                "'assistant' and 'model'."
            )
        contents.append({"role": _ROLES[role], "parts": [{"text": message["content"]}]})
    return ("\n\n".join(system) if system else None), contents


def _safety_settings(value: Optional[SafetySettings]) -> Optional[list[dict[str, Any]]]:
    if value is None or isinstance(value, list):
        return value
    return [{"category": category, "threshold": threshold} for category, threshold in value.items()]


def _why_empty(response: Any, candidate: Any) -> str:
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        return f"prompt blocked (block_reason={_name(feedback.block_reason)})"
    if candidate is None:
        return "no candidate returned"
    return f"no text in the candidate (finish_reason={_name(candidate.finish_reason)})"


def _name(value: Any) -> str:
    return str(getattr(value, "value", value))
