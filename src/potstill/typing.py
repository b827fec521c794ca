"""Types shared across potstill (re-exported where the public API documents them)."""

from __future__ import annotations

from typing import Any, Dict, List

from typing_extensions import TypedDict


class ChatItem(TypedDict):
    """One message of a conversation in the OpenAI format."""

    role: str
    content: str


ChatType = List[ChatItem]
"""A conversation: a list of `{"role": ..., "content": ...}` messages."""

Row = Dict[str, Any]
"""One row of data flowing between steps."""
