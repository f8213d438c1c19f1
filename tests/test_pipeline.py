"""The compiled pipeline: fresh, documented, wired to the PVC and the Secret, thin over the library."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from socratic_sdg.components import RUNTIME_IMAGE
from socratic_sdg.pipelines import socratic_sdg_pipeline as pipeline_module

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "pipelines" / "socratic_sdg_pipeline.yaml"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("compiled") / "pipeline.yaml"
    env = {k: v for k, v in os.environ.items() if k != "SOCRATIC_SDG_IMAGE"}  # the committed YAML uses the default image
    subprocess.run([sys.executable, "-m", "socratic_sdg.cli", "compile", "--output", str(out)], check=True, cwd=ROOT, env=env)
    return out, list(yaml.safe_load_all(out.read_text()))


def test_committed_yaml_is_what_compile_produces(compiled):
    out, _ = compiled
    assert out.read_bytes() == COMMITTED.read_bytes(), "pipelines/socratic_sdg_pipeline.yaml is stale: run `make compile` and commit it"


def test_every_root_parameter_has_a_description_and_a_stage_prefix(compiled):
    spec = compiled[1][0]
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert len(parameters) >= 15
    shared = {"pvc_name", "llm_secret_name"}
    for name, definition in parameters.items():
        assert definition.get("description", "").strip(), f"{name} has no description"
        assert name in shared or name.split("_")[0] in {"convert", "chunk", "generate", "filter", "export"}, name
        assert "defaultValue" in definition, f"{name} has no default"
    assert not any("key" in name.lower() or "token" in name.lower() for name in parameters), "secrets must not be parameters"


def test_platform_section_mounts_the_pvc_and_injects_the_secret_by_parameter(compiled):
    pipeline_spec, platform = compiled[1]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    convert = executors["exec-convert-documents"]
    assert convert["pvcMount"][0]["pvcNameParameter"]["componentInputParameter"] == "pvc_name"
    assert convert["pvcMount"][0]["mountPath"] == pipeline_module.DATA_MOUNT_PATH
    secrets = executors["exec-generate-conversations"]["secretAsEnv"]
    assert all(s["secretNameParameter"]["componentInputParameter"] == "llm_secret_name" for s in secrets)
    required = next(s for s in secrets if not s["optional"])
    assert {k["envVar"] for k in required["keyToEnv"]} == {"LLM_API_BASE", "LLM_API_KEY"}
    optional = next(s for s in secrets if s["optional"])
    assert {k["envVar"] for k in optional["keyToEnv"]} == {"LLM_MODEL"}
    assert pipeline_spec["root"]["inputDefinitions"]["parameters"]["convert_input_dir"]["defaultValue"].startswith(pipeline_module.DATA_MOUNT_PATH + "/")


def test_every_task_runs_the_project_image_without_pip_installs(compiled):
    executors = compiled[1][0]["deploymentSpec"]["executors"]
    assert len(executors) == 5
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == RUNTIME_IMAGE, name
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
