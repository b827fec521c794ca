"""dump / save / from_dict / from_json / from_yaml / from_file for LLMs, steps, tasks and
pipelines; secrets never written; loading never imports modules on its own."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.core.fakes import EchoLLM, RecordingStep

from potstill.errors import UnsafeConfigError
from potstill.llms import LLM, OpenAILLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.base import _Step
from potstill.steps.tasks import ChatGeneration, TextGeneration

SECRET = "sk-do-not-write-me-1234"


def _openai(**kwargs: Any) -> OpenAILLM:
    return OpenAILLM(
        model="gpt-4",
        api_key=SECRET,
        base_url="http://127.0.0.1:1/v1",
        generation_kwargs={"temperature": 0.2, "max_new_tokens": 16},
        **kwargs,
    )


# -- LLMs ----------------------------------------------------------------------------------


def test_llm_dump_has_type_info_and_no_secret() -> None:
    dump = _openai(timeout=30).dump()

    assert dump["type_info"] == {"module": "potstill.llms.openai", "name": "OpenAILLM"}
    assert dump["model"] == "gpt-4"
    assert dump["timeout"] == 30
    assert dump["generation_kwargs"] == {"temperature": 0.2, "max_new_tokens": 16}
    assert "api_key" not in dump
    assert SECRET not in json.dumps(dump)


def test_llm_round_trip_from_dict() -> None:
    original = _openai(max_retries=2)

    loaded = LLM.from_dict(original.dump())

    assert type(loaded) is OpenAILLM
    assert loaded.dump() == original.dump()
    assert loaded.api_key is None  # the key is not in the dump; env is unset in tests


def test_llm_from_dict_reads_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")

    loaded = OpenAILLM.from_dict(_openai().dump())

    assert loaded.api_key is not None and loaded.api_key.get_secret_value() == "env-key"


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_llm_save_and_load_each_format(tmp_path: Path, fmt: str) -> None:
    original = _openai()

    path = original.save(tmp_path / f"llm.{fmt}", format=fmt)

    text = path.read_text()
    assert SECRET not in text
    assert "OpenAILLM" in text
    parsed = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    assert parsed == original.dump()
    loader = OpenAILLM.from_json if fmt == "json" else OpenAILLM.from_yaml
    assert loader(path).dump() == original.dump()
    assert LLM.from_file(path).dump() == original.dump()


def test_save_to_a_directory_uses_the_default_file_name(tmp_path: Path) -> None:
    path = _openai().save(tmp_path / "configs", format="yaml")

    assert path == tmp_path / "configs" / "potstill-file.yaml"
    assert OpenAILLM.from_file(path).model == "gpt-4"


def test_save_rejects_unknown_format_and_from_file_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'toml'"):
        _openai().save(tmp_path / "x.toml", format="toml")  # type: ignore[arg-type]
    (tmp_path / "x.txt").write_text("{}")
    with pytest.raises(ValueError, match=r"\.json, \.yaml or \.yml"):
        LLM.from_file(tmp_path / "x.txt")
    with pytest.raises(IsADirectoryError):
        LLM.from_json(tmp_path)


def test_custom_llm_in_an_imported_module_round_trips() -> None:
    llm = EchoLLM(model="echo-x", generation_kwargs={"suffix": "?"})

    loaded = LLM.from_dict(llm.dump())

    assert type(loaded) is EchoLLM
    assert loaded.model == "echo-x"
    assert loaded.generation_kwargs == {"suffix": "?"}


# -- steps and tasks -------------------------------------------------------------------------


def test_task_dump_nests_the_llm_with_its_type_info() -> None:
    task = TextGeneration(name="gen", llm=_openai(), input_batch_size=7, num_generations=2)

    dump = task.dump()

    assert dump["type_info"] == {
        "module": "potstill.steps.tasks.text_generation",
        "name": "TextGeneration",
    }
    assert dump["llm"]["type_info"]["name"] == "OpenAILLM"
    assert dump["input_batch_size"] == 7
    assert dump["num_generations"] == 2
    assert "pipeline" not in dump
    assert {i["name"] for i in dump["runtime_parameters_info"]} >= {"input_batch_size", "llm"}
    assert SECRET not in json.dumps(dump)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_task_round_trip(tmp_path: Path, fmt: str) -> None:
    task = TextGeneration(
        name="gen",
        llm=_openai(),
        input_mappings={"instruction": "prompt"},
        system_prompt="Be brief.",
        group_generations=True,
    )

    path = task.save(tmp_path / f"task.{fmt}", format=fmt)
    loaded = _Step.from_file(path)

    assert type(loaded) is TextGeneration
    assert loaded.name == "gen"
    assert loaded.input_mappings == {"instruction": "prompt"}
    assert loaded.system_prompt == "Be brief."
    assert loaded.group_generations is True
    assert type(loaded.llm) is OpenAILLM
    assert loaded.llm.generation_kwargs == {"temperature": 0.2, "max_new_tokens": 16}
    assert loaded.dump() == task.dump()
    assert SECRET not in path.read_text()


def test_step_round_trip() -> None:
    step = LoadDataFromDicts(name="load", data=[{"a": 1}, {"a": 2}], batch_size=1)

    loaded = LoadDataFromDicts.from_dict(step.dump())

    assert loaded.data == [{"a": 1}, {"a": 2}]
    assert loaded.batch_size == 1
    assert loaded.name == "load"


# -- pipelines -----------------------------------------------------------------------------------


def _pipeline() -> Pipeline:
    with Pipeline(name="serialize-me", description="A pipeline to save.") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "hi"}, {"instruction": "yo"}])
        generate = TextGeneration(llm=_openai())
        chat = ChatGeneration(llm=EchoLLM(), input_mappings={"messages": "instruction"})
        copy = RecordingStep()
        load >> [generate, copy]
        load >> chat
    return pipeline


def test_pipeline_dump_lists_steps_connections_and_type_info() -> None:
    dump = _pipeline().dump()

    body = dump["pipeline"]
    assert "version" in dump["potstill"]
    assert body["name"] == "serialize-me"
    assert body["description"] == "A pipeline to save."
    assert body["type_info"] == {"module": "potstill.pipeline.base", "name": "Pipeline"}
    assert [s["name"] for s in body["steps"]] == [
        "load_data_from_dicts_0",
        "text_generation_0",
        "chat_generation_0",
        "recording_step_0",
    ]
    assert {
        "from": "load_data_from_dicts_0",
        "to": ["text_generation_0", "recording_step_0", "chat_generation_0"],
    } in body["connections"]
    assert SECRET not in json.dumps(dump)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_pipeline_round_trip(tmp_path: Path, fmt: str) -> None:
    original = _pipeline()

    path = original.save(tmp_path / f"pipeline.{fmt}", format=fmt)
    loaded = Pipeline.from_file(path)

    assert SECRET not in path.read_text()
    assert loaded.name == "serialize-me"
    assert loaded.description == "A pipeline to save."
    assert list(loaded.dag.steps) == list(original.dag.steps)
    assert loaded.dag.connections() == original.dag.connections()
    for name, step in loaded.dag.steps.items():
        assert type(step) is type(original.dag.steps[name])
        assert step.pipeline is loaded
    assert loaded.dump() == original.dump()


def test_loaded_pipeline_runs(tmp_path: Path) -> None:
    with Pipeline(name="reload-and-run") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "a"}, {"instruction": "b"}])
        load >> TextGeneration(llm=EchoLLM())
    path = pipeline.save(tmp_path / "p.yaml", format="yaml")

    distiset = Pipeline.from_yaml(path).run(use_cache=False)

    assert distiset["default"]["train"]["generation"] == ["a #0", "b #0"]


# -- refusing to import ------------------------------------------------------------------------


@pytest.fixture
def untrusted_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A module on sys.path that leaves a marker file when it is imported."""
    name = "potstill_untrusted_plugin_xyz"
    marker = tmp_path / "imported.txt"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            Path({str(marker)!r}).write_text("imported")

            from potstill.llms import LLM

            class PluginLLM(LLM):
                @property
                def model_name(self):
                    return "plugin"

                def generate(self, inputs, num_generations=1, **kwargs):
                    return [["plugin"] * num_generations for _ in inputs]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    yield name, marker
    sys.modules.pop(name, None)


def _plugin_dump(module: str) -> dict[str, Any]:
    return {"generation_kwargs": {}, "type_info": {"module": module, "name": "PluginLLM"}}


def test_loading_refuses_a_module_that_is_not_imported_nor_allowed(
    untrusted_module: tuple[str, Path],
) -> None:
    module, marker = untrusted_module

    with pytest.raises(UnsafeConfigError) as info:
        LLM.from_dict(_plugin_dump(module))

    message = str(info.value)
    assert module in message
    assert "PluginLLM" in message
    assert f"allowed_modules=[{module!r}]" in message
    assert module not in sys.modules
    assert not marker.exists()


def test_loading_a_task_refuses_a_nested_llm_from_an_unknown_module(
    untrusted_module: tuple[str, Path],
) -> None:
    module, marker = untrusted_module
    dump = TextGeneration(name="gen", llm=EchoLLM()).dump()
    dump["llm"] = _plugin_dump(module)

    with pytest.raises(UnsafeConfigError, match=module):
        _Step.from_dict(dump)

    assert module not in sys.modules
    assert not marker.exists()


def test_loading_a_pipeline_file_refuses_unknown_modules(
    untrusted_module: tuple[str, Path], tmp_path: Path
) -> None:
    module, marker = untrusted_module
    pipeline = _pipeline()
    dump = pipeline.dump()
    dump["pipeline"]["steps"][1]["step"]["llm"] = _plugin_dump(module)
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump(dump))

    with pytest.raises(UnsafeConfigError, match=module):
        Pipeline.from_yaml(path)

    assert module not in sys.modules
    assert not marker.exists()


def test_loading_accepts_the_module_when_allowed(untrusted_module: tuple[str, Path]) -> None:
    module, marker = untrusted_module

    llm = LLM.from_dict(_plugin_dump(module), allowed_modules=[module])

    assert type(llm).__name__ == "PluginLLM"
    assert type(llm).__module__ == module
    assert marker.read_text() == "imported"
    # once imported by the program, it is known without being allowed again
    assert type(LLM.from_dict(_plugin_dump(module))).__name__ == "PluginLLM"


@pytest.mark.parametrize(
    "type_info",
    [
        {"module": "os", "name": "system"},
        {"module": "subprocess", "name": "Popen"},
        {"module": "potstill.errors", "name": "PotstillUserError"},
        {"module": "potstill.steps.generators.data", "name": "LoadDataFromDicts"},
    ],
)
def test_loading_refuses_classes_that_are_not_potstill_llms(type_info: dict[str, str]) -> None:
    with pytest.raises(UnsafeConfigError) as info:
        LLM.from_dict({"type_info": type_info})

    assert type_info["name"] in str(info.value)


def test_yaml_is_read_with_the_safe_loader(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("type_info: !!python/object/apply:os.getcwd []\n")

    with pytest.raises(yaml.YAMLError):
        LLM.from_yaml(path)


# -- classes only their own program can load ------------------------------------------------------


def test_refusals_never_name_private_classes() -> None:
    openai = {"module": "potstill.llms.openai", "name": "OpenAILLM"}
    with pytest.raises(UnsafeConfigError) as info:
        _Step.from_dict({"type_info": openai})

    assert "which is not a potstill step" in str(info.value)
    assert "_Step" not in str(info.value)


def test_a_class_missing_from_its_module_is_named_without_private_names() -> None:
    missing = {"module": "potstill.steps", "name": "NoSuchStep"}
    with pytest.raises(UnsafeConfigError) as info:
        _Step.from_dict({"type_info": missing})

    assert "'NoSuchStep'" in str(info.value) and "'potstill.steps'" in str(info.value)
    assert "_Step" not in str(info.value)


def test_saving_warns_about_a_class_defined_inside_a_function(tmp_path: Path) -> None:
    class LocalLLM(EchoLLM):
        pass

    with Pipeline(name="local-class") as pipeline:
        LoadDataFromDicts(data=[{"instruction": "hi"}]) >> TextGeneration(
            name="gen", llm=LocalLLM()
        )

    with pytest.warns(UserWarning) as caught:
        pipeline.save(tmp_path / "p.yaml", format="yaml")

    [warning] = [str(w.message) for w in caught]
    assert "Step 'gen' uses class LocalLLM, defined inside a function" in warning
    assert "test_saving_warns_about_a_class_defined_inside_a_function" in warning
    assert "--allow-module my_steps" in warning
    # Another program, which has no such class, is told the same.
    gone = {"module": __name__, "name": "make_steps.<locals>.Gone"}
    with pytest.raises(UnsafeConfigError) as info:
        LLM.from_dict({"type_info": gone}, allowed_modules=[__name__])
    assert f"defined inside a function (`{__name__}.make_steps`)" in str(info.value)
    assert "--allow-module my_steps" in str(info.value)


def test_saving_a_pipeline_of_importable_classes_does_not_warn(tmp_path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _pipeline().save(tmp_path / "p.json")
