"""Scripted answers: the server follows the prompts of potstill's built-in tasks.

A task that parses its LLM's answer (a numbered list, a rewrite, a "Score: N" line) needs an
answer in that format, so the server recognises those prompts and answers as an obedient
model would, deterministically, from what the prompt contains:

* Self-Instruct: the numbered queries it asks for (after a preamble line);
* Evol-Instruct/Evol-Complexity: the prompt rewritten (a sentence added per method), a rarer
  prompt (in-breadth), or a question from seed words (the generators' fresh start);
* Evol-Quality: the answer rewritten (a sentence added per method);
* Genstruct: a question, `[[[Assistant]]]`, then the content's first sentence;
* instruction backtranslation: a reason and "Score: N" (longer answers score higher);
* Magpie (raw prompts ending with a user turn, see `openai_completions`): a user question.

Any prompt containing `UNPARSEABLE` gets `Sorry, I can't help with that.`, an answer no task
can parse. Other prompts get the usual answers (see `answers.plain_answer`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from .markers import strip_markers

UNPARSEABLE = "UNPARSEABLE"
REFUSAL = "Sorry, I can't help with that."

_QUERY_FORMS = (
    'What is the main idea of "{topic}"?',
    'Summarize "{topic}" in one sentence.',
    'Why does "{topic}" matter?',
    'Describe an everyday example of "{topic}".',
    'List two questions a student could ask about "{topic}".',
)

# How each mutation method changes the text, by a phrase of the method's description.
_ADDITIONS = (
    ("constraint", "Answer in at most three sentences."),
    ("depth and breadth", "Also explain why it matters."),
    ("more specific", "Use a concrete example."),
    ("several steps", "Reason step by step."),
    ("more helpful", "It also suggests a next step."),
    ("more relevant", "It stays on the question asked."),
    ("deeper", "It also explains the cause."),
    ("more creative", "It adds a vivid comparison."),
    ("more detail", "It adds one precise figure."),
)

USER_QUESTIONS = (
    "How do I keep fresh herbs from wilting?",
    "What is the difference between weather and climate?",
    "Can you explain how compound interest works?",
    "What should I pack for a two-day hike?",
    "How does a refrigerator keep food cold?",
    "Why do cats purr?",
    "What are good habits for learning a new language?",
    "How can I make my code easier to test?",
)
"""What the server writes as the user's turn of a Magpie prompt."""


def _topic(text: str, words: int = 8) -> str:
    return " ".join(strip_markers(text).split()[:words])


def _addition(prompt: str) -> str:
    for phrase, addition in _ADDITIONS:
        if phrase in prompt:
            return addition
    return "Be precise."


def _queries(match: re.Match[str], prompt: str) -> str:
    count = int(match.group("count"))
    topic = _topic(match.group("context"))
    lines = [
        f"{i + 1}. " + _QUERY_FORMS[i % len(_QUERY_FORMS)].format(topic=topic) for i in range(count)
    ]
    return "Here are the queries:\n" + "\n".join(lines)


def _rewrite(match: re.Match[str], prompt: str) -> str:
    return f"{strip_markers(match.group('text'))} {_addition(prompt)}"


def _breadth(match: re.Match[str], prompt: str) -> str:
    return f"In a less common setting: {strip_markers(match.group('text'))}"


def _fresh_start(match: re.Match[str], prompt: str) -> str:
    return f"How are {match.group('words').strip()} connected in everyday life?"


def _genstruct(match: re.Match[str], prompt: str) -> str:
    title = strip_markers(match.group("title"))
    first_sentence = strip_markers(match.group("content")).split(". ")[0].rstrip(".") + "."
    return f'What does the text "{title}" say? [[[Assistant]]] {first_sentence}'


def _rating(match: re.Match[str], prompt: str) -> str:
    words = len(match.group("answer").split())
    score = 5 if words >= 12 else 4 if words >= 6 else 3 if words >= 3 else 2
    return f"The answer has {words} words and addresses the instruction directly.\nScore: {score}"


_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str], str], str]], ...] = (
    (
        re.compile(
            r"write (?P<count>\d+) different queries about it\..*?Context:\n(?P<context>.*?)\n\n"
            r"Reply with",
            re.S,
        ),
        _queries,
    ),
    (re.compile(r"Original prompt:\n(?P<text>.*)\n\nRewritten prompt:\s*$", re.S), _rewrite),
    (re.compile(r"Given prompt:\n(?P<text>.*)\n\nNew prompt:\s*$", re.S), _breadth),
    (
        re.compile(
            r"^Write one question or request that uses one or more of these words: (?P<words>.+)$"
        ),
        _fresh_start,
    ),
    (re.compile(r"Given answer:\n(?P<text>.*)\n\nRewritten answer:\s*$", re.S), _rewrite),
    (
        re.compile(
            r"\[\[\[Title\]\]\] (?P<title>.*?)\n\[\[\[Content\]\]\] (?P<content>.*?)\n\n.*"
            r"\[\[\[User\]\]\] $",
            re.S,
        ),
        _genstruct,
    ),
    (
        re.compile(
            r"Rate how well the answer.*\nAnswer:\n(?P<answer>.*)\n\nExplain your rating", re.S
        ),
        _rating,
    ),
)


def scripted_answer(prompt: str) -> str | None:
    """The answer to a built-in task's prompt, if `prompt` is one.

    Args:
        prompt: the last user message, markers included.

    Returns:
        The scripted answer, or None for any other prompt.
    """
    if UNPARSEABLE in prompt:
        return REFUSAL
    for pattern, answer in _RULES:
        match = pattern.search(prompt)
        if match:
            return answer(match, prompt)
    return None


def user_question(prompt: str, choice_index: int = 0) -> str:
    """A user's question for a Magpie prompt, picked from `USER_QUESTIONS` by its text
    (one the prompt does not already hold).

    Args:
        prompt: the raw prompt.
        choice_index: the choice being written (several choices differ).

    Returns:
        The question.
    """
    digest = hashlib.sha256(f"{choice_index}\x00{prompt}".encode()).digest()
    start = int.from_bytes(digest[:4], "big")
    # A follow-up question is not one the conversation already asked.
    for step in range(len(USER_QUESTIONS)):
        question = USER_QUESTIONS[(start + step) % len(USER_QUESTIONS)]
        if question not in prompt:
            return question
    return USER_QUESTIONS[start % len(USER_QUESTIONS)]
