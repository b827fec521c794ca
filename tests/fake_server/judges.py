"""Scripted judge answers: the server plays the judge for potstill's judge tasks.

When the last user message is the prompt of one of the judge tasks (UltraFeedback, Prometheus
2, Deita's quality or complexity scorer), the answer is a well-formed verdict in that task's
format instead of the echo, so tests and documentation examples can show parsed ratings:

* a text is *right* when it contains the last word of the server's canned answer to the
  instruction (see :data:`answers.CANNED_ANSWERS`: "What's the capital of Spain?" -> any
  text mentioning "Madrid"). UltraFeedback rates a right text 5 and another 2; Prometheus
  scores 5 or 2 (absolute) or picks the right response, A when both or neither are
  (relative); Deita's quality scorer gives a right response N (the top of its 1..N+1 scale,
  N responses) and another 1;
* Deita's complexity scorer ranks questions by length: 1 for the shortest, N for the longest.

An instruction the server has no canned answer for gets no verdict: the echo, which no judge
task can parse (the way to test the unparseable path end to end).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .answers import CANNED_ANSWERS
from .markers import MARKER_PATTERN

_SECTION_END = r"(?=\n\n###|\Z)"


def judge_answer(text: str) -> str | None:
    """The verdict for a judge task's prompt, or None when `text` is no such prompt (or its
    instruction is one the server does not know).

    Args:
        text: The last user message, markers included.

    Returns:
        The judge's answer text, or None.
    """
    text = MARKER_PATTERN.sub("", text)
    for judge in _JUDGES:
        verdict = judge(text)
        if verdict is not None:
            return verdict
    return None


def _key_word(instruction: str) -> str | None:
    """The word a right answer to `instruction` must contain, or None for an unknown one."""
    canned = CANNED_ANSWERS.get(" ".join(instruction.split()).casefold())
    return canned.split()[-1].strip(".!?,") if canned else None


def _is_right(text: str, key: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(key)}(?!\w)", text, re.IGNORECASE) is not None


def _numbered_items(block: str) -> list[str]:
    """`[1] a`, `<text 1> a`, ... -> the items (an item may span lines)."""
    parts = re.split(r"(?:^|\n)(?:\[\d+\]|<text \d+>) ?", block)
    return [part.strip() for part in parts[1:]]


def _ultrafeedback(text: str) -> str | None:
    if "## Annotation" not in text or "#### Output for Text 1" not in text:
        return None
    annotation = text.rsplit("## Annotation", 1)[1]
    found = re.search(r"Instruction: (.*?)\n\nTexts:\n(.*?)\n\n### Output", annotation, re.DOTALL)
    key = _key_word(found.group(1)) if found else None
    if found is None or key is None:
        return None
    with_types = "\nType: [" in text
    hallucination = "hallucination" in text.casefold()
    sections = []
    for number, generation in enumerate(_numbered_items(found.group(2)), start=1):
        right = _is_right(generation, key)
        lines = [f"#### Output for Text {number}"]
        if with_types:
            if hallucination:
                lines.append("Type: None" if right else "Type: 1")
            else:
                lines.append("Type: 1, 3" if right else "Type: 1")
            lines.append(
                f"Rationale: Text {number} {'stays' if right else 'does not stay'} on topic."
            )
        lines.append(f"Rating: {5 if right else 2}")
        lines.append(f"Rationale: {_says(f'Text {number}', right, key)}")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def _prometheus(text: str) -> str | None:
    if "###Task Description:" not in text or "[RESULT]" not in text:
        return None
    instruction = _section(text, "###The instruction to evaluate:") or _section(
        text, "###Instruction:"
    )
    key = _key_word(instruction) if instruction else None
    if key is None:
        return None
    response = _section(text, "###Response to evaluate:")
    if response is not None:
        right = _is_right(response, key)
        return f"Feedback: {_says('The response', right, key)} [RESULT] {5 if right else 2}"
    first, second = _section(text, "###Response A:"), _section(text, "###Response B:")
    if first is None or second is None:
        return None
    a_right, b_right = _is_right(first, key), _is_right(second, key)
    choice = "B" if b_right and not a_right else "A"
    feedback = f"{_says('Response A', a_right, key)} {_says('Response B', b_right, key)}"
    return f"Feedback: {feedback} [RESULT] {choice}"


def _deita_quality(text: str) -> str | None:
    found = re.search(r"#Question#: (.*?)\n#Response List#:\n(.*)", text, re.DOTALL)
    key = _key_word(found.group(1)) if found else None
    if found is None or key is None:
        return None
    responses = _numbered_items(found.group(2))
    top = len(responses)
    return "\n".join(
        f"[{i}] Score: {top if _is_right(response, key) else 1}"
        for i, response in enumerate(responses, start=1)
    )


def _deita_complexity(text: str) -> str | None:
    if "[1] Score: 1\n" not in text or "#Question#:" in text:
        return None
    questions = _numbered_items(text.split("\n...\n", 1)[-1])
    if not questions:
        return None
    order = sorted(range(len(questions)), key=lambda i: len(questions[i].split()))
    ranks = {index: rank for rank, index in enumerate(order, start=1)}
    return "\n".join(f"[{i + 1}] Score: {ranks[i]}" for i in range(len(questions)))


def _section(text: str, header: str) -> str | None:
    found = re.search(re.escape(header) + r"\n(.*?)" + _SECTION_END, text, re.DOTALL)
    return found.group(1).strip() if found else None


def _says(subject: str, right: bool, key: str) -> str:
    return f"{subject} {'gives' if right else 'does not give'} the right answer ({key})."


_JUDGES: tuple[Callable[[str], str | None], ...] = (
    _ultrafeedback,
    _prometheus,
    _deita_quality,
    _deita_complexity,
)
