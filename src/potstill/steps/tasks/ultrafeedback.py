"""`UltraFeedback`: rates several answers to one instruction on one aspect, as in the
UltraFeedback paper (Cui et al., 2023, https://arxiv.org/abs/2310.01377).

The judge sees the instruction and every answer at once ("Text 1", "Text 2", ...) and writes,
per text, a `Rating` from 1 to 5 with a `Rationale`; for helpfulness and truthfulness it also
names a `Type` (informativeness or hallucination type, 1 to 3) with its own rationale. The
aspects and their scales follow the paper; `overall-rating` is Argilla's single-prompt
aspect that covers all four at once.

With `use_default_structured_output=True` (distilabel 1.4's name) the judge answers JSON
instead, one list per output column with one entry per text, and the LLM layer constrains
and checks it (see `potstill.llms.structured`): a small local model then writes a verdict
that parses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from potstill.llms.structured import StructuredInput
from potstill.steps.tasks._scoring import (
    JudgeTask,
    ParsedColumns,
    integer_in_range,
    list_length,
    required_text,
    required_texts,
)
from potstill.steps.typing import StepColumns
from potstill.typing import ChatType, Row

Aspect = Literal[
    "helpfulness", "honesty", "instruction-following", "truthfulness", "overall-rating"
]


@dataclass(frozen=True)
class _AspectPrompt:
    """What the judge is told about one aspect."""

    title: str
    guidance: str
    scale_intro: str
    scale: tuple[str, ...]  # ratings 1..5
    types_intro: Optional[str] = None
    types: tuple[str, ...] = ()  # types 1..3


_ASPECTS: dict[str, _AspectPrompt] = {
    "helpfulness": _AspectPrompt(
        title="Informativeness / Helpfulness Assessment",
        guidance=(
            "Judge whether each output achieves what the task asks for with content that is "
            "correct, of high quality and informative.\n\n"
            "Helpfulness is about **overall quality**, through correctness and "
            "informativeness.\n\n"
            "**Correctness**: computations, reasoning steps and results are accurate, with no "
            "misunderstanding and nothing made up."
        ),
        types_intro='Name each type of informativeness the output shows, by number (or "None"):',
        types=(
            "**Clarity and Relevance**: it answers the task, asking for clarification where "
            "needed.",
            "**Useful and Comprehensive Information**: it gives relevant background, reasoning "
            "steps or detailed descriptions.",
            "**Not Lengthy, No Repetition**: it is not verbose and does not repeat itself.",
        ),
        scale_intro=(
            "Rate the helpfulness from 1 to 5, weighing informativeness and correctness together"
        ),
        scale=(
            "**Severely Incorrect**: significant errors or made-up content, however much "
            "information it gives.",
            "**Partially Incorrect**: errors that may confuse the reader, though it is "
            "informative.",
            "**Correct**: accurate, and useful enough to meet the task's requirements.",
            "**Highly Informative**: accurate and extensive, with valuable insights and detail.",
            "**Outstandingly Helpful**: accurate and in-depth, with profound insights and "
            "comprehensive information.",
        ),
    ),
    "honesty": _AspectPrompt(
        title="Honesty and Uncertainty Expression Assessment",
        guidance=(
            "Judge how honest each output is and whether its confidence matches its "
            "correctness: a confident output should be right, and an unsure one should say "
            "so.\n\n"
            "Signs of uncertainty: weakening words (e.g. 'I guess', 'probably'), declining to "
            "answer, or a stated confidence score (0-20 low, 20-40 uncertain, 40-60 moderate, "
            "60-80 leaning confident, 80-100 high). An output with none of these counts as "
            "confident."
        ),
        scale_intro="Rate the honesty from 1 to 5",
        scale=(
            "**Confidently Incorrect**: sure of itself, and wrong.",
            "**Confident with Significant Mistakes / Unconfident Incorrect**: sure of itself "
            "with major errors, or unsure and wrong.",
            '**Uncertain / "I Don\'t Know" / Subtle Mistakes**: declines to answer, or makes '
            "small mistakes without flagging them.",
            "**Correct but Uncertain / Expressed Subtle Mistakes**: right but unsure, or points "
            "out its own small mistakes.",
            "**Correct and Confident / Precisely Express Uncertainty**: right and sure, and "
            "names exactly where it may be wrong.",
        ),
    ),
    "instruction-following": _AspectPrompt(
        title="Instruction Following Assessment",
        guidance=(
            "Judge how well each output matches the intent of the instruction, on two "
            "components:\n\n"
            "- **Task goal**: the outcome the instruction asks for.\n"
            "- **Restrictions**: the required style, format or method."
        ),
        scale_intro="Rate the instruction following from 1 to 5",
        scale=(
            "**Irrelevant**: no alignment at all.",
            "**Partial Focus**: addresses one component, and poorly.",
            "**Partial Compliance**: meets the goal or the restrictions but neglects the "
            "other, or acknowledges both with slight deviations.",
            "**Almost There**: close alignment with minor deviations.",
            "**Comprehensive Compliance**: fully aligned, every requirement met.",
        ),
    ),
    "truthfulness": _AspectPrompt(
        title="Truthfulness and Hallucination Assessment",
        guidance=(
            "Judge whether each output gives accurate information without inventing facts "
            "(hallucination). Use your own knowledge of the world to check it."
        ),
        types_intro='Name each type of hallucination the output contains, by number (or "None"):',
        types=(
            "**Contradictory with the World (Factual Error)**: entities, places, concepts or "
            "events that conflict with established knowledge.",
            "**Contradictory with Instruction and Input**: it departs from the instruction or "
            "its input, adding things that do not fit them.",
            "**Self-Contradictory / Logical Error**: it contradicts itself or reasons "
            "inconsistently.",
        ),
        scale_intro="Rate the truthfulness from 1 to 5 by the extent of hallucination",
        scale=(
            "**Completely Hallucinated**: not reliable at all.",
            "**Severe Hallucination**: almost half of it is made up, with severe departures "
            "from the main points.",
            "**Partial Hallucination / Misunderstanding**: mostly truthful, with some "
            "misunderstanding.",
            "**Insignificant Hallucination**: mostly truthful; small slips do not touch the "
            "main points.",
            "**No Hallucination**: nothing made up.",
        ),
    ),
    "overall-rating": _AspectPrompt(
        title="General Text Quality Assessment",
        guidance=(
            "Judge each output on all of these at once:\n\n"
            "1. **Correctness & Informativeness**: is the information accurate and helpful?\n"
            "2. **Honesty & Uncertainty**: is its confidence right, with uncertainty stated "
            "where due?\n"
            "3. **Truthfulness & Hallucination**: does it add misleading or invented details?\n"
            "4. **Instruction Following**: does it match the instruction and the user's "
            "intent?\n\n"
            "Give one holistic assessment that weighs all of them."
        ),
        scale_intro="Rate the overall quality from 1 to 5",
        scale=(
            "**Low Quality**: inaccurate, possibly entirely wrong, or severely hallucinated.",
            "**Moderate Quality**: covers part of the task, with errors or partial alignment.",
            "**Good**: generally accurate, with minor errors or slight deviations.",
            "**Very Good**: nearly perfect, with minor issues of alignment or confidence.",
            "**Excellent**: accurate, confident, aligned with the instruction, no hallucination.",
        ),
    ),
}

_SYSTEM_PROMPT = (
    "You judge the quality of texts against the criteria you are given.\n"
    'You will receive an instruction ("Instruction") and {count} texts written in answer to '
    'it ("Text").\n'
    "Read the instruction carefully so that you judge well.\n"
    "Annotate every text with a rating and a rationale.\n"
    "The {count} texts are independent: judge each one on its own.\n"
)

# "#### Output for Text 2", "Output for Text 2:", "**Text 2**": a line that opens a section.
_SECTION = re.compile(
    r"^[ \t#*_>]*(?:output[ \t]+for[ \t]+)?text[ \t]*(\d+)[ \t*_:.)\]]*$",
    re.IGNORECASE | re.MULTILINE,
)
# "Rating: 4", "**Rating:** 4", "- Rationale: ...": a labelled line.
_FIELD = re.compile(
    r"^[ \t#*_>-]*(types?|rationale|rating)[ \t*_]*:[ \t*_]*(.*)$", re.IGNORECASE | re.MULTILINE
)


class UltraFeedback(JudgeTask):
    """Rates the `generations` for an `instruction` on one aspect, the UltraFeedback way.

    Input columns: `instruction` (a string) and `generations` (a list of strings).
    Output columns: `ratings` (list of ints from 1 to 5) and `rationales` (list of strings),
    one per generation; for `helpfulness` and `truthfulness` also `types` (list of ints from 1
    to 3: the first informativeness or hallucination type the judge named, `None` when it
    named none) and `rationales-for-ratings`; and `model_name`.

    A value the judge did not give, or gave outside its scale, is `None`; the reason goes into
    `potstill_metadata["error_<task>"]` next to the raw answer.

    Attributes:
        aspect: what to rate: `helpfulness`, `honesty`, `instruction-following`,
            `truthfulness` (the paper's four) or `overall-rating` (all four in one prompt).
        use_default_structured_output: ask for the verdict as JSON that follows
            `get_structured_output` (one list per output column, one entry per text,
            ratings from 1 to 5, rationales of at most `RATIONALE_MAX_LENGTH` characters),
            which the LLM constrains where it can and potstill validates and repairs.
    """

    aspect: Aspect = "overall-rating"
    use_default_structured_output: bool = False

    @property
    def inputs(self) -> StepColumns:
        """`instruction` and `generations`."""
        return ["instruction", "generations"]

    @property
    def outputs(self) -> StepColumns:
        """`ratings`, `rationales` (plus `types` and `rationales-for-ratings` for the aspects
        that name types) and `model_name`."""
        if _ASPECTS[self.aspect].types:
            return ["types", "rationales", "ratings", "rationales-for-ratings", "model_name"]
        return ["ratings", "rationales", "model_name"]

    def format_input(self, input: Row) -> Union[ChatType, StructuredInput]:  # type: ignore[override]
        """Builds the system prompt and the aspect's annotation prompt for the row.

        Args:
            input: a row with `instruction` and `generations`.

        Returns:
            The conversation; with `use_default_structured_output`, paired with the
            structured output for the row's number of texts.
        """
        instruction = required_text(input.get("instruction"), "instruction", self)
        generations = required_texts(input.get("generations"), "generations", self)
        conversation: ChatType = [
            {"role": "system", "content": _SYSTEM_PROMPT.format(count=len(generations))},
            {"role": "user", "content": _annotation_prompt(self.aspect, instruction, generations)},
        ]
        if self.use_default_structured_output:
            return conversation, self.get_structured_output(len(generations))
        return conversation

    def get_structured_output(self, count: Optional[int] = None) -> dict[str, Any]:
        """The JSON verdict `use_default_structured_output` asks for.

        Args:
            count: the number of texts rated (each list then has exactly that many
                entries); `None` leaves the lengths open.

        Returns:
            `{"format": "json", "schema": <JSON schema>}`: one list per output column
            (`ratings` from 1 to 5, `rationales`; `types` from 1 to 3 or null and
            `rationales-for-ratings` for the aspects with types).
        """
        sizes = {} if count is None else {"minItems": count, "maxItems": count}
        text = {"type": "string", "maxLength": RATIONALE_MAX_LENGTH}
        items: dict[str, Any] = {"ratings": {"enum": [1, 2, 3, 4, 5]}, "rationales": text}
        if _ASPECTS[self.aspect].types:
            items = {
                "types": {"enum": [1, 2, 3, None]},
                "rationales": text,
                "ratings": items["ratings"],
                "rationales-for-ratings": text,
            }
        properties = {
            name: {"type": "array", "items": item, **sizes} for name, item in items.items()
        }
        schema = {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }
        return {"format": "json", "schema": schema}

    def format_output(self, output: Optional[str], input: Optional[Row] = None) -> Row:
        """Reads each text's rating, rationale (and type) from the judge's answer.

        Args:
            output: the judge's answer, or `None` when the generation failed.
            input: the row, for the number of generations.

        Returns:
            One list per output column, aligned with `generations`.
        """
        with_types = bool(_ASPECTS[self.aspect].types)
        names = self._own_output_columns()
        count = list_length((input or {}).get("generations"))
        if output is None:  # the generation failed (or the row could not be formatted)
            return ParsedColumns({n: None if count is None else [None] * count for n in names})
        if self.use_default_structured_output:
            return _structured_verdict(output, names, count)
        sections = _sections(output, "type" if with_types else "rating")
        count = count if count is not None else max(sections, default=0)
        if not sections:
            columns = {name: [None] * count for name in names}
            return ParsedColumns(columns, ["no assessment of any text found"])
        problems: list[str] = []
        per_text = [
            _assessment(sections.get(n), n, with_types, problems) for n in range(1, count + 1)
        ]
        return ParsedColumns({name: [a[name] for a in per_text] for name in names}, problems)


RATIONALE_MAX_LENGTH = 160
"""The longest rationale the default structured output asks for, in characters: a verdict
on a few texts then fits in a small model's token budget."""


def _structured_verdict(output: str, names: list[str], count: Optional[int]) -> ParsedColumns:
    """The output columns of a JSON verdict (checked against the schema by the LLM layer)."""
    try:
        verdict = json.loads(output)
    except json.JSONDecodeError:
        verdict = None
    if not isinstance(verdict, dict):
        size = count or 0
        return ParsedColumns({name: [None] * size for name in names}, ["the verdict is not JSON"])
    problems: list[str] = []
    columns: dict[str, Any] = {}
    for name in names:
        values = verdict.get(name)
        values = list(values) if isinstance(values, list) else []
        size = count if count is not None else len(values)
        if len(values) != size:
            problems.append(f"{len(values)} {name} for {size} texts")
        columns[name] = (values + [None] * size)[:size]
    return ParsedColumns(columns, problems)


def _annotation_prompt(aspect: str, instruction: str, generations: list[str]) -> str:
    spec = _ASPECTS[aspect]
    count = len(generations)
    parts = [f"# {spec.title}", spec.guidance]
    if spec.types:
        parts.append(_numbered(spec.types_intro or "", spec.types))
    parts.append(_numbered(f"**Scoring**: {spec.scale_intro}:", spec.scale))
    placeholders = "\n".join(f"<text {n}> [Text {n}]" for n in range(1, count + 1))
    expected = "\n\n".join(_output_template(n, bool(spec.types)) for n in range(1, count + 1))
    texts = "\n".join(f"<text {n}> {text}" for n, text in enumerate(generations, start=1))
    parts += [
        "---",
        "## Format",
        f"### Input\nInstruction: [The task's goal and restrictions]\n\nTexts:\n{placeholders}",
        f"### Output\n{expected}",
        "---",
        "## Annotation",
        f"### Input\nInstruction: {instruction}\n\nTexts:\n{texts}",
        "### Output\n",
    ]
    return "\n\n".join(parts)


def _numbered(intro: str, items: tuple[str, ...]) -> str:
    return intro + "\n" + "\n".join(f"{n}. {item}" for n, item in enumerate(items, start=1))


def _output_template(number: int, with_types: bool) -> str:
    lines = [f"#### Output for Text {number}"]
    if with_types:
        lines += [
            'Type: [The numbers of the types that apply, separated by commas, or "None"]',
            "Rationale: [Why these types, in short sentences]",
        ]
    lines += [
        f"Rating: [Rating for text {number}]",
        "Rationale: [Why this rating, in short sentences]",
    ]
    return "\n".join(lines)


def _sections(output: str, first_label: str) -> dict[int, str]:
    """Text number -> the part of the answer about it.

    Sections open at headings such as `#### Output for Text 2`; an answer without headings
    is cut where each text's first field (`Rating:`, or `Type:` for aspects with types)
    starts, in order.
    """
    headings = list(_SECTION.finditer(output))
    if headings:
        sections: dict[int, str] = {}
        for heading, following in zip(headings, [*headings[1:], None]):
            end = following.start() if following else len(output)
            sections.setdefault(int(heading.group(1)), output[heading.end() : end])
        return sections
    starts = [
        field.start()
        for field in _FIELD.finditer(output)
        if field.group(1).lower().rstrip("s") == first_label
    ]
    ends = [*starts[1:], len(output)]
    return {n: output[start:end] for n, (start, end) in enumerate(zip(starts, ends), start=1)}


def _fields(section: str) -> list[tuple[str, str]]:
    """The `(label, value)` pairs of a section, in order; a value runs until the next label."""
    found = list(_FIELD.finditer(section))
    pairs = []
    for field, following in zip(found, [*found[1:], None]):
        end = following.start() if following else len(section)
        rest = section[field.end() : end]
        value = (field.group(2) + rest).strip().strip("-").strip()
        pairs.append((field.group(1).lower().rstrip("s"), value))
    return pairs


def _assessment(
    section: Optional[str], number: int, with_types: bool, problems: list[str]
) -> dict[str, Optional[object]]:
    """The output columns for one text, from its section of the answer."""
    values: dict[str, Optional[str]] = {}  # label -> the first value given for it
    for label, value in _fields(section or ""):
        if label == "rationale" and with_types and "rating" in values:
            label = "rationale-for-rating"  # the rationale that follows the rating
        values.setdefault(label, value or None)
    if section is None:
        problems.append(f"no assessment of text {number}")
    elif "rating" not in values:
        problems.append(f"no rating for text {number}")
    result: dict[str, Optional[object]] = {
        "ratings": integer_in_range(
            values.get("rating"), 1, 5, f"rating of text {number}", problems
        )
        if "rating" in values
        else None,
        "rationales": values.get("rationale"),
    }
    if with_types:
        result["types"] = (
            integer_in_range(values["type"], 1, 3, f"type of text {number}", problems)
            if "type" in values
            else None
        )
        result["rationales-for-ratings"] = values.get("rationale-for-rating")
    return result
