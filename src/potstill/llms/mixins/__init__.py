"""Mixins that LLM classes combine with `LLM` (import each from its own module)."""
