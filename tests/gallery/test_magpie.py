"""Magpie: pre-query templates on LLMs, and the conversations the Magpie task writes."""

from __future__ import annotations

from typing import Optional

import pytest
from pydantic import ValidationError
from tests.core.fakes import EchoLLM
from tests.fake_server import FakeServer
from tests.gallery.helpers import ScriptedLLM, loopback_llm, scripted

from potstill.errors import PotstillUserError
from potstill.llms.mixins.magpie import MagpieChatTemplateMixin
from potstill.steps.tasks import Magpie, MagpieGenerator
from potstill.steps.tasks.magpie.base import MAGPIE_MULTI_TURN_SYSTEM_PROMPT
from potstill.typing import ChatType

SYSTEM: ChatType = [{"role": "system", "content": "Be brief."}]
USER: ChatType = [{"role": "user", "content": "Hi"}]


class Template(MagpieChatTemplateMixin):
    """The mixin alone."""


def render(conversation: ChatType, add_generation_prompt: bool) -> str:
    """A toy chat template: `[role] content` per message, `[assistant]` to generate."""
    text = "".join(f"[{m['role']}] {m['content']}\n" for m in conversation)
    return text + ("[assistant]" if add_generation_prompt else "")


# -- the mixin ---------------------------------------------------------------------------------


def test_named_templates_resolve_and_custom_ones_stay() -> None:
    assert Template(magpie_pre_query_template="qwen2").magpie_pre_query_template == (
        "<|im_start|>user\n"
    )
    llama3 = Template(magpie_pre_query_template="llama3").magpie_pre_query_template
    assert llama3 == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    assert Template(magpie_pre_query_template="[user] ").magpie_pre_query_template == "[user] "


def test_use_without_a_template_and_an_empty_template_are_clear_errors() -> None:
    with pytest.raises(ValidationError, match="use_magpie_template=True but no magpie_pre_query"):
        Template(use_magpie_template=True)
    with pytest.raises(ValidationError, match="magpie_pre_query_template is empty"):
        Template(magpie_pre_query_template="  ")


def test_the_template_ends_prompts_that_do_not_end_with_a_user_message() -> None:
    llm = Template(use_magpie_template=True, magpie_pre_query_template="[user] ")
    assert llm.magpie_prompt([], render) == "[user] "
    assert llm.magpie_prompt(SYSTEM, render) == "[system] Be brief.\n[user] "
    assert llm.magpie_prompt(SYSTEM + USER, render) == "[system] Be brief.\n[user] Hi\n[assistant]"
    off = Template(magpie_pre_query_template="[user] ")
    assert off.magpie_prompt(SYSTEM, render) == "[system] Be brief.\n[assistant]"


def test_raw_prompts_in_chatml_and_llama3_without_a_second_begin_of_text() -> None:
    chatml = Template(use_magpie_template=True, magpie_pre_query_template="qwen2")
    assert chatml.render_raw_prompt(SYSTEM) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"
    )
    llama3 = Template(use_magpie_template=True, magpie_pre_query_template="llama3")
    assert llama3.render_raw_prompt(SYSTEM) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n"
    )
    assert llama3.render_raw_prompt([]) == llama3.magpie_pre_query_template
    unknown = Template(use_magpie_template=True, magpie_pre_query_template="<s>[INST]")
    with pytest.raises(PotstillUserError, match="neither"):
        unknown.render_raw_prompt(SYSTEM)


def test_openai_sends_magpie_prompts_to_the_completions_endpoint(fake_server: FakeServer) -> None:
    llm = loopback_llm(fake_server, magpie_pre_query_template="qwen2", use_magpie_template=True)
    llm.load()
    (question,), (answer,) = llm.generate(inputs=[SYSTEM, SYSTEM + USER], max_new_tokens=50)
    assert question.endswith("?")
    assert answer == "Echo: Hi"  # a chat answer, as usual
    by_path = {r.path: r.body for r in fake_server.requests}
    assert by_path["/v1/completions"]["prompt"] == chatml_system_prompt()
    assert by_path["/v1/completions"]["max_tokens"] == 50
    assert "messages" not in by_path["/v1/completions"]
    assert by_path["/v1/chat/completions"]["messages"] == SYSTEM + USER


def chatml_system_prompt() -> str:
    return "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"


# -- the task ----------------------------------------------------------------------------------


def roles_reply(conversation: ChatType) -> Optional[str]:
    """Writes `user N` or `assistant N` (N: the messages so far), by whose turn it is."""
    turns = len([m for m in conversation if m["role"] != "system"])
    role = "assistant" if conversation and conversation[-1]["role"] == "user" else "user"
    return f"{role} {turns}"


def magpie_llm() -> ScriptedLLM:
    return scripted(ScriptedLLM, roles_reply, magpie_pre_query_template="qwen2")


def test_magpie_needs_an_llm_with_pre_query_templates() -> None:
    # (pydantic wraps the error raised while the step is built in a ValidationError)
    with pytest.raises(ValueError, match="EchoLLM cannot"):
        Magpie(llm=EchoLLM())
    with pytest.raises(ValueError, match="needs the LLM's `magpie_pre_query_template`"):
        MagpieGenerator(llm=ScriptedLLM())
    llm = ScriptedLLM(magpie_pre_query_template="qwen2")
    Magpie(llm=llm)
    assert llm.use_magpie_template is True


def test_one_turn_gives_an_instruction_and_its_response() -> None:
    llm = magpie_llm()
    (row,) = next(Magpie(llm=llm, system_prompt="Be kind.").process([{}]))
    assert (row["instruction"], row["response"]) == ("user 0", "assistant 1")
    first, second = llm.conversations
    assert first == [{"role": "system", "content": "Be kind."}]  # the LLM adds the template
    assert second == [*first, {"role": "user", "content": "user 0"}]


def test_several_turns_give_a_conversation() -> None:
    task = Magpie(llm=magpie_llm(), n_turns=2)
    (row,) = next(task.process([{}]))
    assert [m["content"] for m in row["conversation"]] == [
        "user 0",
        "assistant 1",
        "user 2",
        "assistant 3",
    ]
    with_system = Magpie(
        llm=magpie_llm(), n_turns=2, include_system_prompt=True, end_with_user=True
    )
    (row,) = next(with_system.process([{}]))
    assert row["conversation"][0] == {"role": "system", "content": MAGPIE_MULTI_TURN_SYSTEM_PROMPT}
    assert [m["role"] for m in row["conversation"][1:]] == ["user", "assistant", "user"]


def test_only_instruction_and_a_row_system_prompt() -> None:
    llm = magpie_llm()
    task = Magpie(llm=llm, only_instruction=True, system_prompt="Ignored.")
    rows = next(task.process([{"system_prompt": "From the row."}, {}]))
    assert [row["instruction"] for row in rows] == ["user 0", "user 0"]
    assert "response" not in rows[0]
    assert [c[0]["content"] for c in llm.conversations] == ["From the row.", "Ignored."]


def test_system_prompts_picked_from_a_dict_are_named() -> None:
    task = Magpie(llm=magpie_llm(), only_instruction=True, system_prompt={"a": "A.", "b": "B."})
    rows = next(task.process([{} for _ in range(10)]))
    assert {row["system_prompt_key"] for row in rows} == {"a", "b"}


@pytest.mark.parametrize(
    ("system_prompt", "error"),
    [
        ({"a": ("A.", 0.5), "b": ("B.", 0.4)}, "add up to 0.9"),
        ({"a": ("A.", 0.5), "b": "B."}, "system_prompt.dict"),  # pydantic's type error
        ([], "empty"),
    ],
)
def test_bad_system_prompt_choices_are_refused(system_prompt: object, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        Magpie(llm=magpie_llm(), system_prompt=system_prompt)


def test_a_failed_turn_gives_none_and_keeps_the_other_rows() -> None:
    def fail_second_turn(conversation: ChatType) -> Optional[str]:
        reply = roles_reply(conversation)
        bad = any("bad" in m["content"] for m in conversation)
        return None if bad and reply == "user 2" else reply

    llm = scripted(ScriptedLLM, fail_second_turn, magpie_pre_query_template="qwen2")
    good, bad = next(
        Magpie(llm=llm, n_turns=2).process([{"system_prompt": "ok"}, {"system_prompt": "bad"}])
    )
    assert len(good["conversation"]) == 4
    assert bad["conversation"] is None
    metadata = bad["potstill_metadata"]["error_magpie_0"]
    assert metadata == "scripted failure"
    assert bad["potstill_metadata"]["raw_output_magpie_0"] == ["user 0", "assistant 1", None]
