"""Options declared once (socratic_sdg.options): the CLI is built from the fields, and every component
and pipeline parameter named after a field has the field's default and description (the dashboard's
helper text). Stages converted so far are listed in PARITY; the rest still declare options by hand."""

from __future__ import annotations

import argparse

import pytest

from socratic_sdg import chunk, export
from socratic_sdg.components.chunk_documents import chunk_documents
from socratic_sdg.components.export_dataset import export_dataset
from socratic_sdg.options import add_arguments, described, from_args, from_params, option, output_settings
from socratic_sdg.pipelines.socratic_sdg_pipeline import socratic_sdg_pipeline

# (options class, component, prefix of its pipeline parameters)
PARITY = [(chunk.ChunkOptions, chunk_documents, "chunk_"), (export.ExportOptions, export_dataset, "export_")]


def _kfp_default(value):
    return "" if value is None else value


@pytest.mark.parametrize("options_cls, component, prefix", PARITY, ids=lambda x: getattr(x, "__name__", str(x)))
def test_component_and_pipeline_parameters_match_the_options_fields(options_cls, component, prefix):
    fields = described(options_cls)
    component_inputs = component.component_spec.inputs
    pipeline_inputs = socratic_sdg_pipeline.component_spec.inputs
    checked = 0
    for name, field in fields.items():
        for where, inputs, key in (("component", component_inputs, name), ("pipeline", pipeline_inputs, prefix + name)):
            if key not in inputs:
                continue
            spec = inputs[key]
            assert spec.default == _kfp_default(field.default), f"{where} {key}: default {spec.default!r}, options say {field.default!r}"
            assert spec.description == field.metadata["help"], f"{where} {key}: description differs from the options field"
            checked += 1
    assert checked >= len(fields)  # every field reaches at least one KFP layer


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


def test_only_settings_that_change_the_output_are_fingerprinted():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Demo:
        seed: int = option(1, "Seed.")
        workers: int = option(4, "Workers.", changes_output=False)

    assert output_settings(Demo()) == {"seed": 1}
