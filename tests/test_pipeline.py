"""The compiled pipeline: fresh, documented, wired to the PVC and the Secret, thin over the library."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from socratic_sdg.components import CONVERT_IMAGE, RUNTIME_IMAGE
from socratic_sdg.pipelines import form
from socratic_sdg.pipelines import socratic_sdg_pipeline as pipeline_module

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "pipelines" / "socratic_sdg_pipeline.yaml"
DASHBOARD = {f.name: f.dashboard_name for f in pipeline_module.FORM}  # short name -> root parameter


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("compiled") / "pipeline.yaml"
    env = {k: v for k, v in os.environ.items() if k != "SOCRATIC_SDG_IMAGE"}  # the committed YAML uses the default image
    subprocess.run([sys.executable, "-m", "socratic_sdg.cli", "compile", "--output", str(out)], check=True, cwd=ROOT, env=env)
    return out, list(yaml.safe_load_all(out.read_text()))


def test_committed_yaml_is_what_compile_produces(compiled):
    out, _ = compiled
    assert out.read_bytes() == COMMITTED.read_bytes(), "pipelines/socratic_sdg_pipeline.yaml is stale: run `make compile` and commit it"


def test_every_committed_pipeline_and_component_spec_is_fresh(tmp_path, monkeypatch):
    from socratic_sdg.pipelines import COMPONENT_SPECS_DIR, PIPELINES_DIR, compile_all

    monkeypatch.delenv("SOCRATIC_SDG_IMAGE", raising=False)
    written = compile_all(tmp_path / "pipelines", tmp_path / "specs")
    assert len(written) >= 10
    for path in written:
        committed = (PIPELINES_DIR if path.parent.name == "pipelines" else COMPONENT_SPECS_DIR) / path.name
        assert committed.is_file(), f"{committed} is not committed: run `make compile`"
        assert path.read_bytes() == committed.read_bytes(), f"{committed} is stale: run `make compile` and commit it"


def test_parameters_reference_is_current():
    from socratic_sdg.pipelines import PARAMETERS_DOC, parameters_reference

    assert PARAMETERS_DOC.read_text() == parameters_reference(COMMITTED), "docs/parameters.md is stale: run `make compile`"
    text = PARAMETERS_DOC.read_text()
    for name in ("pvc_name", "convert_num_shards", "generate_max_concurrency", "export_pvc_path"):
        assert f"| `{DASHBOARD[name]}` | `{name}` |" in text
    sections = [line.removeprefix("## ") for line in text.splitlines() if line.startswith("## ")]
    assert sections == ["Cluster wiring", "Convert", "Chunk", "Generate", "Filter", "Export"]


def test_component_specs_load_for_reuse_without_our_python_code():
    from kfp import components

    from socratic_sdg.pipelines import COMPONENT_SPECS_DIR

    generate = components.load_component_from_file(str(COMPONENT_SPECS_DIR / "generate_conversations.yaml"))
    assert {"chunks", "flow_id", "max_concurrency"} <= set(generate.component_spec.inputs)


def test_every_root_parameter_has_a_description_and_a_stage_prefix(compiled):
    spec = compiled[1][0]
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert len(parameters) >= 15
    shared = {"pvc_name", "llm_secret_name"}
    for name, definition in parameters.items():
        assert definition.get("description", "").strip(), f"{name} has no description"
        short = form.short_name(name)
        assert short in shared or short.split("_")[0] in {"convert", "chunk", "generate", "filter", "export"}, name
        assert "defaultValue" in definition, f"{name} has no default"
    secret_like = re.compile(r"api_key|password|(^|_)token($|_)")
    assert not [n for n in parameters if secret_like.search(n)], "secrets must come from a Secret, never a parameter"


def test_the_dashboard_form_reads_in_pipeline_order(compiled):
    """KFP keeps root parameters in a map and the dashboard lists them sorted by name: sorted, the
    compiled names are FORM's order, the PVC and the Secret first, then the stages in pipeline order,
    in each stage the ones to set before the options."""
    names = sorted(compiled[1][0]["root"]["inputDefinitions"]["parameters"])
    assert names == [f.dashboard_name for f in pipeline_module.FORM]
    assert [form.short_name(n) for n in names] == [f.name for f in pipeline_module.FORM]
    assert {form.short_name(n) for n in names[:2]} == {"pvc_name", "llm_secret_name"}
    phases = [n.split("_")[2] for n in names]
    assert list(dict.fromkeys(phases)) == list(form.PHASES)  # each stage once, in pipeline order
    for phase in form.PHASES:
        kinds = [n.split("_")[3] for n in names if n.split("_")[2] == phase]
        assert kinds == sorted(kinds), f"{phase}: a must-set parameter after an option"
    assert "phase_03_generate_opt_model" in names and "phase_01_convert_man_input_dir" in names


def test_dashboard_names_map_back_to_short_names_and_the_form_must_be_declared_in_their_order():
    for field in pipeline_module.FORM:
        assert form.short_name(field.dashboard_name) == field.name
    assert form.short_name("generate_max_chunks") == "generate_max_chunks"  # a pipeline compiled before the scheme
    late = form.parameter("convert_input_dir", "/data/pdfs", "Folder.", must_set=True)
    with pytest.raises(ValueError, match="phase_01_convert_opt_pipeline is declared before phase_01_convert_man_input_dir"):
        form.pipeline_of_form([*form.options("convert_", pipeline_module.ConvertOptions, "pipeline"), late], "Summary.", returns=int)
    assert pipeline_module.arguments(pvc_name="mine", generate_max_chunks=2) == {"phase_00_cluster_man_pvc_name": "mine",
                                                                                  "phase_03_generate_opt_max_chunks": 2}
    with pytest.raises(TypeError, match="no parameter max_chunks on the form"):
        pipeline_module.arguments(max_chunks=2)


def test_every_parameter_on_the_form_reaches_a_task(compiled):
    """The form is data and tasks take their values by name (form.given): a parameter no task reads
    (a typo, a renamed component input) would sit on the dashboard and do nothing."""
    text = compiled[0].read_text()
    spec = compiled[1][0]
    for name in spec["root"]["inputDefinitions"]["parameters"]:
        assert f"componentInputParameter: {name}\n" in text, f"no task reads the pipeline parameter {name}"


def _root_parameter(spec: dict, name: str) -> str:
    """The root parameter a task input resolves to (through ParallelFor's pipelinechannel inputs)."""
    if not name.startswith("pipelinechannel--"):
        return name
    for task in spec["root"]["dag"]["tasks"].values():
        source = task.get("inputs", {}).get("parameters", {}).get(name)
        if source and "componentInputParameter" in source:
            return source["componentInputParameter"]
    raise AssertionError(f"{name} is not passed from a root parameter")


def test_platform_section_mounts_the_pvc_and_injects_the_secret_by_parameter(compiled):
    pipeline_spec, platform = compiled[1]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for executor in ("exec-convert-documents", "exec-generate-conversations", "exec-filter-conversations"):
        mount = executors[executor]["pvcMount"][0]
        assert _root_parameter(pipeline_spec, mount["pvcNameParameter"]["componentInputParameter"]) == DASHBOARD["pvc_name"], executor
        assert mount["mountPath"] == pipeline_module.DATA_MOUNT_PATH
    secrets = executors["exec-generate-conversations"]["secretAsEnv"]
    assert all(_root_parameter(pipeline_spec, s["secretNameParameter"]["componentInputParameter"]) == DASHBOARD["llm_secret_name"] for s in secrets)
    required = next(s for s in secrets if not s["optional"])
    assert {k["envVar"] for k in required["keyToEnv"]} == {"LLM_API_BASE", "LLM_API_KEY"}
    optional = next(s for s in secrets if s["optional"])
    assert {k["envVar"] for k in optional["keyToEnv"]} == {"LLM_MODEL"}
    input_dir = pipeline_spec["root"]["inputDefinitions"]["parameters"][DASHBOARD["convert_input_dir"]]
    assert input_dir["defaultValue"].startswith(pipeline_module.DATA_MOUNT_PATH + "/")


def test_conversion_fans_out_over_shards_and_is_collected(compiled):
    spec = compiled[1][0]
    loop = spec["root"]["dag"]["tasks"]["for-loop-1"]
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("plan-shards-Output")
    merge = spec["root"]["dag"]["tasks"]["merge-converted-shards"]
    assert merge["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]["producerTask"] == "for-loop-1"
    chunk = spec["root"]["dag"]["tasks"]["chunk-documents"]
    assert chunk["inputs"]["artifacts"]["converted"]["taskOutputArtifact"]["producerTask"] == "merge-converted-shards"


def test_generation_fans_out_over_shards_and_is_merged_before_the_filter(compiled):
    spec = compiled[1][0]
    tasks = spec["root"]["dag"]["tasks"]
    loop = next(
        name
        for name, task in tasks.items()
        if name.startswith("for-loop") and "generate-conversations" in spec["components"][task["componentRef"]["name"]]["dag"]["tasks"]
    )
    assert tasks[loop]["parameterIterator"]["items"]["inputParameter"].endswith("plan-shards-2-Output")
    generate = spec["components"][tasks[loop]["componentRef"]["name"]]["dag"]["tasks"]["generate-conversations"]
    parameters = generate["inputs"]["parameters"]
    assert parameters["num_shards"]["componentInputParameter"] == "pipelinechannel--" + DASHBOARD["generate_num_shards"]
    # the total, shared in the task
    assert parameters["max_concurrency"]["componentInputParameter"] == "pipelinechannel--" + DASHBOARD["generate_max_concurrency"]
    assert parameters["target_examples"]["componentInputParameter"] == "pipelinechannel--" + DASHBOARD["generate_target_examples"]
    merge = tasks["merge-generated-shards"]
    assert merge["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]["producerTask"] == loop
    for consumer in ("filter-conversations", "export-dataset"):
        assert tasks[consumer]["inputs"]["artifacts"]["conversations"]["taskOutputArtifact"]["producerTask"] == "merge-generated-shards"


def test_every_task_runs_the_project_image_without_pip_installs(compiled):
    executors = compiled[1][0]["deploymentSpec"]["executors"]
    assert len(executors) == 10
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == (CONVERT_IMAGE if name == "exec-convert-documents" else RUNTIME_IMAGE), name
        script = " ".join(container["command"] + container.get("args", []))
        assert "pip install" not in script, f"{name} installs packages at run time"
        assert container["resources"]["cpuLimit"] and container["resources"]["memoryLimit"], name


def test_the_library_does_not_import_kfp():
    library = ROOT / "src" / "socratic_sdg"
    for path in library.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert "kfp" not in imported, f"{path.name} imports kfp: the library must stay KFP-free"
