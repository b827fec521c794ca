"""The mutation prompts of Evol-Quality (Deita, Liu et al., 2023).

Each asks the LLM to rewrite `<RESPONSE>`, an AI assistant's answer to `<PROMPT>`, so that it
is better in one respect: more helpful, more relevant, deeper, more creative or more detailed.
"""

from __future__ import annotations

REWRITE_RESPONSE_TEMPLATE = (
    "You are improving the answer an AI assistant gave to a prompt, by rewriting it.\n"
    "Keep everything in the prompt and the answer that is not plain text, such as tables or "
    "code.\n"
    "How to improve it: {method}\n"
    "Stay concise: the rewritten answer may add only 10 to 20 words to the given one.\n"
    "Do not refer to 'the given answer' or 'the rewritten answer' in your answer.\n\n"
    "Prompt:\n<PROMPT>\n\n"
    "Given answer:\n<RESPONSE>\n\n"
    "Rewritten answer:\n"
)
"""The response rewriting prompt; `{method}` says how to improve the answer."""

QUALITY_METHODS: dict[str, str] = {
    "HELPFULNESS": "make it more helpful to the user.",
    "RELEVANCE": "make it more relevant to the prompt.",
    "DEEPENING": "make it go deeper into the subject.",
    "CREATIVITY": "make it more creative.",
    "DETAILS": "give it more detail.",
}

MUTATION_TEMPLATES: dict[str, str] = {
    name: REWRITE_RESPONSE_TEMPLATE.format(method=method)
    for name, method in QUALITY_METHODS.items()
}
"""`EvolQuality`'s mutations."""
