"""Conversation types used by tasks (OpenAI chat format)."""

from potstill.typing import ChatItem, ChatType

__all__ = ["ChatItem", "ChatType"]
