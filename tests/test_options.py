"""Options declared once (socratic_sdg.options): the CLI is built from the fields, and every component
and pipeline parameter named after a field has the field's default and description (the dashboard's
helper text); every field meant for KFP is a parameter of each component that takes its options."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from socratic_sdg import chunk, convert, export, filtering, generate
from socratic_sdg.components.chunk_documents import chunk_documents
from socratic_sdg.components.convert_documents import convert_documents, merge_converted_shards
from socratic_sdg.components.estimate_generation import estimate_generation
from socratic_sdg.components.export_dataset import export_dataset
from socratic_sdg.components.filter_conversations import filter_conversations
from socratic_sdg.components.generate_conversations import generate_conversations
from socratic_sdg.generate.estimate import EstimateOptions
from socratic_sdg.options import add_arguments, from_args, from_params, group, option, output_settings, parameters
from socratic_sdg.pipelines.form import short_name
from socratic_sdg.pipelines.socratic_sdg_pipeline import socratic_sdg_pipeline

# The run-scope settings of a generation that an estimate does not take (its target_examples is its own).
NOT_ESTIMATED = {"target_examples", "checkpoint_dir", "save_freq", "max_requests", "shard_index", "num_shards"}

# component -> the options classes whose parameters it takes (first class wins a shared name), and the names it leaves out
COMPONENTS = [
    (convert_documents, [convert.ConvertOptions], {"max_failure_ratio"}),  # applied to the whole run by the merge
    (chunk_documents, [chunk.ChunkOptions], set()),
    (export_dataset, [export.ExportOptions], set()),
    (generate_conversations, [generate.GenerateOptions], set()),
    (estimate_generation, [EstimateOptions, generate.GenerateOptions], NOT_ESTIMATED - {"target_examples"}),
    (filter_conversations, [filtering.FilterOptions], set()),
]
# components that take some settings of another stage (the filter the generation target is counted with)
SOME_SETTINGS = [(generate_conversations, filtering.FilterOptions), (estimate_generation, filtering.FilterOptions),
                 (merge_converted_shards, convert.ConvertOptions)]
# pipeline parameter prefix -> options class
PIPELINE = [("convert_", convert.ConvertOptions), ("chunk_", chunk.ChunkOptions), ("export_", export.ExportOptions), ("generate_", generate.GenerateOptions),
            ("filter_", filtering.FilterOptions)]


def _expected(classes, skip):
    out = {}
    for cls in classes:
        for name, parameter in parameters(cls).items():
            if name not in skip and parameter.metadata.get("kfp", True):
                out.setdefault(name, parameter)
    return out


def _kfp_default(value):
    return "" if value is None else value


@pytest.mark.parametrize("component, classes, skip", COMPONENTS, ids=lambda x: getattr(x, "name", None) or str(x))
def test_every_component_takes_its_options_with_their_defaults_and_descriptions(component, classes, skip):
    inputs = component.component_spec.inputs
    for name, parameter in _expected(classes, skip).items():
        assert name in inputs, f"{component.name} has no parameter {name} (options field of {[c.__name__ for c in classes]})"
        spec = inputs[name]
        assert spec.default == _kfp_default(parameter.default), f"{component.name} {name}: default {spec.default!r}, options say {parameter.default!r}"
        assert spec.description == parameter.help, f"{component.name} {name}: description differs from the options field"


@pytest.mark.parametrize("component, options_cls", SOME_SETTINGS, ids=lambda x: getattr(x, "name", None) or x.__name__)
def test_settings_of_another_stage_keep_that_stage_s_defaults_and_descriptions(component, options_cls):
    inputs = component.component_spec.inputs
    shared = {name: parameter for name, parameter in _expected([options_cls], ()).items() if name in inputs}
    assert shared, f"{component.name} takes no setting of {options_cls.__name__}"
    for name, parameter in shared.items():
        assert inputs[name].default == _kfp_default(parameter.default) and inputs[name].description == parameter.help, f"{component.name} {name}"


@pytest.mark.parametrize("prefix, options_cls", PIPELINE, ids=lambda x: getattr(x, "__name__", str(x)))
def test_pipeline_parameters_named_after_a_field_have_its_default_and_description(prefix, options_cls):
    inputs = {short_name(name): spec for name, spec in socratic_sdg_pipeline.component_spec.inputs.items()}  # the form's names are dashboard names
    checked = 0
    for name, parameter in _expected([options_cls], ()).items():
        spec = inputs.get(prefix + name)
        if spec is None:
            continue
        default = parameter.metadata.get("pipeline_default")
        default = parameter.default if default is None else default  # a cluster may want another default (said in the field)
        assert spec.default == _kfp_default(default), f"pipeline {prefix + name}: default {spec.default!r}, options say {default!r}"
        assert spec.description == parameter.help, f"pipeline {prefix + name}: description differs from the options field"
        checked += 1
    assert checked, f"no pipeline parameter {prefix}*"  # the dashboard shows a curated subset of each stage


def test_the_cli_is_built_from_the_fields():
    parser = argparse.ArgumentParser()
    add_arguments(parser, export.ExportOptions)
    args = parser.parse_args(["--seed", "7", "--format", "prompt_completion", "--strip-metadata"])
    options = from_args(export.ExportOptions, args)
    assert options == export.ExportOptions(seed=7, format="prompt_completion", strip_metadata=True)
    assert from_args(export.ExportOptions, parser.parse_args([])) == export.ExportOptions()
    with pytest.raises(SystemExit):
        parser.parse_args(["--format", "csv"])  # choices come from the field


def test_kfp_parameters_map_onto_the_options():
    options = from_params(export.ExportOptions, {"system_prompt": "", "seed": 3, "license": "ignored"})
    assert options.system_prompt is None and options.seed == 3  # KFP has no None: "" stands for it
    nested = from_params(generate.GenerateOptions, {"max_concurrency": 3, "num_shards": 2, "shard_index": 1, "columns": '{"rubric": "r"}'})
    assert nested.requests.max_concurrency == 3 and nested.shard == generate.Shard(1, 2) and nested.columns == {"rubric": "r"}


def test_only_settings_that_change_the_output_are_fingerprinted():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Demo:
        seed: int = option(1, "Seed.")
        workers: int = option(4, "Workers.", changes_output=False)

    assert output_settings(Demo()) == {"seed": 1}


def test_nested_groups_are_flat_parameters_and_optional_groups_follow_their_switch():
    @dataclasses.dataclass(frozen=True)
    class Inner:
        model: str | None = option(None, "Model.")
        tries: int = option(3, "Tries.", changes_output=False)

    @dataclasses.dataclass(frozen=True)
    class Outer:
        seed: int = option(1, "Seed.")
        judge: Inner | None = group(Inner, "The judge.", prefix="judge_", switch="judge", enabled=False, implied_by=("model",))

    assert list(parameters(Outer)) == ["seed", "judge", "judge_model", "judge_tries"]
    assert from_params(Outer, {"judge": False, "judge_model": ""}).judge is None
    assert from_params(Outer, {"judge": True, "judge_tries": 5}).judge == Inner(tries=5)
    assert from_params(Outer, {"judge": False, "judge_model": "m"}).judge == Inner(model="m")  # a model switches the judge on
    parser = argparse.ArgumentParser()
    add_arguments(parser, Outer)
    assert from_args(Outer, parser.parse_args([])) == Outer()
    assert from_args(Outer, parser.parse_args(["--judge", "--judge-tries", "2"])).judge == Inner(tries=2)
    assert output_settings(Outer(judge=Inner(model="m"))) == {"seed": 1, "judge": True, "judge_model": "m"}


def test_the_checkpoint_manifest_leaves_out_settings_that_only_choose_rows():
    options = generate.GenerateOptions(max_chunks=5, seed=7, shard=generate.Shard(1, 2), requests=generate.RequestPolicy(max_concurrency=64))
    everything, content = output_settings(options), output_settings(options, rows=False)
    assert everything["max_chunks"] == 5 and everything["num_shards"] == 2 and "max_concurrency" not in everything
    assert content["seed"] == 7 and not {"max_chunks", "shard_index", "num_shards", "conversations_per_chunk"} & set(content)
