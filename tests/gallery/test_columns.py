"""The instruction tasks' columns, fields, defaults and runtime parameters, by name, as in
distilabel (so a pipeline moves over with a one-word import change)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from tests.gallery.helpers import ScriptedLLM

from potstill.steps.tasks import (
    EvolComplexity,
    EvolComplexityGenerator,
    EvolInstruct,
    EvolInstructGenerator,
    EvolQuality,
    Genstruct,
    InstructionBacktranslation,
    Magpie,
    MagpieGenerator,
    SelfInstruct,
)

TASK_PARAMETERS = {
    "resources",
    "input_batch_size",
    "llm",
    "add_raw_output",
    "add_raw_input",
    "num_generations",
}
GENERATOR_PARAMETERS = {
    "resources",
    "batch_size",
    "llm",
    "add_raw_output",
    "add_raw_input",
    "num_generations",
}


def llm() -> ScriptedLLM:
    return ScriptedLLM(magpie_pre_query_template="qwen2")


def columns(spec: Any) -> dict[str, bool]:
    return dict(spec) if isinstance(spec, dict) else dict.fromkeys(spec, True)


@pytest.mark.parametrize(
    ("task", "inputs", "outputs"),
    [
        (SelfInstruct(llm=llm()), ["input"], ["instructions", "model_name"]),
        (Genstruct(llm=llm()), ["title", "content"], ["user", "assistant", "model_name"]),
        (
            InstructionBacktranslation(llm=llm()),
            ["instruction", "generation"],
            ["score", "reason", "model_name"],
        ),
        (
            EvolInstruct(llm=llm(), num_evolutions=1),
            ["instruction"],
            ["evolved_instruction", "model_name"],
        ),
        (
            EvolInstruct(llm=llm(), num_evolutions=1, generate_answers=True),
            ["instruction"],
            ["evolved_instruction", "model_name", "answer"],
        ),
        (
            EvolInstruct(llm=llm(), num_evolutions=1, store_evolutions=True, generate_answers=True),
            ["instruction"],
            ["evolved_instructions", "model_name", "answers"],
        ),
        (
            EvolComplexity(llm=llm(), num_evolutions=1, store_evolutions=True),
            ["instruction"],
            ["evolved_instructions", "model_name"],
        ),
        (
            EvolQuality(llm=llm(), num_evolutions=1),
            ["instruction", "response"],
            ["evolved_response", "model_name"],
        ),
        (
            EvolQuality(llm=llm(), num_evolutions=1, store_evolutions=True),
            ["instruction", "response"],
            ["evolved_responses", "model_name"],
        ),
        (Magpie(llm=llm()), {"system_prompt": False}, ["instruction", "response", "model_name"]),
        (
            Magpie(llm=llm(), only_instruction=True),
            {"system_prompt": False},
            ["instruction", "model_name"],
        ),
        (Magpie(llm=llm(), n_turns=2), {"system_prompt": False}, ["conversation", "model_name"]),
        (
            Magpie(llm=llm(), n_turns=3, system_prompt={"a": "A", "b": "B"}),
            {"system_prompt": False},
            ["conversation", "system_prompt_key", "model_name"],
        ),
        (EvolInstructGenerator(llm=llm(), num_instructions=1), [], ["instruction", "model_name"]),
        (
            EvolComplexityGenerator(llm=llm(), num_instructions=1, generate_answers=True),
            [],
            ["instruction", "model_name", "answer"],
        ),
        (MagpieGenerator(llm=llm(), n_turns=2), [], ["conversation", "model_name"]),
        (
            MagpieGenerator(llm=llm(), only_instruction=True),
            [],
            ["instruction", "model_name"],
        ),
    ],
    ids=lambda value: type(value).__name__ if hasattr(value, "llm") else None,
)
def test_inputs_and_outputs(task: Any, inputs: Any, outputs: list[str]) -> None:
    assert columns(task.inputs) == columns(inputs)
    assert list(task.outputs) == outputs


@pytest.mark.parametrize(
    ("task", "own"),
    [
        (SelfInstruct(llm=llm()), set()),
        (Genstruct(llm=llm()), set()),
        (InstructionBacktranslation(llm=llm()), set()),
        (EvolInstruct(llm=llm(), num_evolutions=1), {"seed"}),
        (EvolComplexity(llm=llm(), num_evolutions=1), {"seed"}),
        (EvolQuality(llm=llm(), num_evolutions=1), {"seed"}),
        (
            Magpie(llm=llm()),
            {
                "n_turns",
                "end_with_user",
                "include_system_prompt",
                "only_instruction",
                "system_prompt",
            },
        ),
    ],
    ids=lambda value: type(value).__name__ if hasattr(value, "llm") else None,
)
def test_runtime_parameters_of_tasks(task: Any, own: set[str]) -> None:
    names = task.runtime_parameters_names
    assert set(names) == TASK_PARAMETERS | own
    assert all(names[name] is True for name in own)  # all optional


@pytest.mark.parametrize(
    ("task", "own", "required"),
    [
        (
            EvolInstructGenerator(llm=llm(), num_instructions=1),
            {"min_length", "max_length", "seed"},
            set(),
        ),
        (
            EvolComplexityGenerator(llm=llm(), num_instructions=1),
            {"min_length", "max_length", "seed"},
            set(),
        ),
        (
            MagpieGenerator(llm=llm()),
            {
                "n_turns",
                "end_with_user",
                "include_system_prompt",
                "only_instruction",
                "system_prompt",
                "num_rows",
            },
            {"num_rows"},
        ),
    ],
    ids=lambda value: type(value).__name__ if hasattr(value, "llm") else None,
)
def test_runtime_parameters_of_generators(task: Any, own: set[str], required: set[str]) -> None:
    names = task.runtime_parameters_names
    assert set(names) == GENERATOR_PARAMETERS | own
    assert {name for name in own if names[name] is False} == required


def test_defaults_are_distilabels() -> None:
    self_instruct = SelfInstruct(llm=llm())
    assert (self_instruct.num_instructions, self_instruct.application_description) == (
        5,
        "AI assistant",
    )
    evol = EvolInstruct(llm=llm(), num_evolutions=2)
    assert (evol.store_evolutions, evol.generate_answers, evol.include_original_instruction) == (
        False,
        False,
        False,
    )
    assert evol.seed == 42
    assert evol.mutation_templates_names == [
        "CONSTRAINTS",
        "DEEPENING",
        "CONCRETIZING",
        "INCREASED_REASONING_STEPS",
        "BREADTH",
    ]
    assert "BREADTH" not in EvolComplexity(llm=llm(), num_evolutions=1).mutation_templates
    quality = EvolQuality(llm=llm(), num_evolutions=1)
    assert quality.include_original_response is False
    assert quality.mutation_templates_names == [
        "HELPFULNESS",
        "RELEVANCE",
        "DEEPENING",
        "CREATIVITY",
        "DETAILS",
    ]
    generator = EvolInstructGenerator(llm=llm(), num_instructions=3)
    assert (generator.min_length, generator.max_length, generator.seed) == (512, 1024, 42)
    assert generator.mutation_templates_names[0] == "FRESH_START"
    assert (
        "BREADTH" not in EvolComplexityGenerator(llm=llm(), num_instructions=1).mutation_templates
    )
    magpie = Magpie(llm=llm())
    assert (magpie.n_turns, magpie.end_with_user, magpie.include_system_prompt) == (1, False, False)
    assert (magpie.only_instruction, magpie.system_prompt) == (False, None)


@pytest.mark.parametrize("task_class", [EvolInstruct, EvolQuality])
def test_num_evolutions_is_required(task_class: type) -> None:
    with pytest.raises(ValidationError, match="num_evolutions"):
        task_class(llm=llm())


def test_a_generator_needs_a_fresh_start_template() -> None:
    with pytest.raises(ValueError, match="needs a 'FRESH_START' template"):
        EvolInstructGenerator(llm=llm(), num_instructions=1, mutation_templates={"A": "<PROMPT>"})


def test_the_tasks_import_from_the_distilabel_module_paths() -> None:
    from potstill.llms.mixins.magpie import MAGPIE_PRE_QUERY_TEMPLATES, MagpieChatTemplateMixin
    from potstill.steps.tasks.evol_complexity.base import EvolComplexity as Complexity
    from potstill.steps.tasks.evol_instruct.base import EvolInstruct as Instruct
    from potstill.steps.tasks.evol_instruct.generator import EvolInstructGenerator as Generator
    from potstill.steps.tasks.evol_quality.base import EvolQuality as Quality
    from potstill.steps.tasks.magpie.base import Magpie as MagpieTask
    from potstill.steps.tasks.magpie.generator import MagpieGenerator as MagpieGen

    assert (Complexity, Instruct, Generator, Quality) == (
        EvolComplexity,
        EvolInstruct,
        EvolInstructGenerator,
        EvolQuality,
    )
    assert (MagpieTask, MagpieGen) == (Magpie, MagpieGenerator)
    assert MAGPIE_PRE_QUERY_TEMPLATES["qwen2"] == "<|im_start|>user\n"
    assert issubclass(ScriptedLLM, MagpieChatTemplateMixin)
