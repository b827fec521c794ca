"""Azure OpenAI chat completions: ``POST /openai/deployments/{deployment}/chat/completions``.

Azure serves OpenAI's chat completions per *deployment*: the deployment name is in the
path, the ``api-version`` query parameter is required, and the key travels in the
``api-key`` header (or as a bearer token for Entra ID). The body and answer are OpenAI's.
"""

from __future__ import annotations

from aiohttp import web

from .common import bearer_key, chat_key_text, registration
from .context import get_context
from .openai_chat import error_body, openai_error, respond
from .registry import ProviderSpec

PROVIDER = "azure"
PATH = "/openai/deployments/{deployment}/chat/completions"


def api_key(request: web.Request) -> str | None:
    """Read the key from the ``api-key`` header, else from a bearer token.

    Args:
        request: The request.

    Returns:
        The key, or None.
    """
    return request.headers.get("api-key", "").strip() or bearer_key(request)


def missing_api_version(request: web.Request) -> web.Response | None:
    """Azure's answer to a request without the ``api-version`` query parameter (a 404).

    Args:
        request: The request.

    Returns:
        The error response, or None when the parameter is there.
    """
    if request.query.get("api-version"):
        return None
    return web.json_response(
        openai_error(
            404,
            "The api-version query parameter (?api-version=) is required for all requests.",
            code="MissingApiVersionParameter",
        ),
        status=404,
    )


async def handle_deployment_chat(request: web.Request) -> web.Response:
    """Answer a chat completion for the deployment named in the path.

    Args:
        request: The request (already vetted by the middleware).

    Returns:
        The ``chat.completion`` response (``model`` is the deployment), or a 400/404 error.
    """
    refused = missing_api_version(request)
    if refused is not None:
        return refused
    body = get_context(request).body
    if isinstance(body, dict):
        # Azure picks the model from the deployment; a `model` in the body is ignored.
        body = {**body, "model": request.match_info["deployment"]}
    return respond(
        request, body, extend=lambda completion: completion.update(prompt_filter_results=[])
    )


register = registration(
    ProviderSpec(PROVIDER, error_body, api_key=api_key, key_text=chat_key_text),
    {PATH: handle_deployment_chat},
)
