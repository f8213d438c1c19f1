"""The pipelines, their compiled YAML (committed next to them) and the local runner."""

from pathlib import Path

PIPELINES_DIR = Path(__file__).resolve().parent
COMPONENT_SPECS_DIR = PIPELINES_DIR.parent / "components" / "specs"
PARAMETERS_DOC = PIPELINES_DIR.parent / "docs" / "parameters.md"
STAGES = ("convert", "chunk", "generate", "filter", "export")


def parameters_reference(compiled_yaml: Path) -> str:
    """docs/parameters.md: the pipeline's run parameters, as the dashboard shows them, by stage."""
    import yaml

    spec = next(yaml.safe_load_all(compiled_yaml.read_text()))
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    lines = [
        "# Pipeline parameters",
        "",
        f"Generated from `pipelines/{compiled_yaml.name}` by `socratic-sdg compile` (a test fails when it is stale).",
        "The OpenShift AI dashboard shows these descriptions on the run form.",
    ]
    groups = [("Cluster wiring", [n for n in parameters if n.split("_")[0] not in STAGES])]
    groups += [(stage.capitalize(), [n for n in parameters if n.split("_")[0] == stage]) for stage in STAGES]
    for title, names in groups:
        lines += ["", f"## {title}", "", "| parameter | type | default | description |", "|---|---|---|---|"]
        for name in names:
            p = parameters[name]
            default = p.get("defaultValue", "")
            lines.append(f"| `{name}` | {p['parameterType'].lower()} | `{default!r}` | {p.get('description', '').replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def compile_all(pipelines_dir: Path = PIPELINES_DIR, specs_dir: Path = COMPONENT_SPECS_DIR) -> list[Path]:
    """Compile every pipeline and every component spec (by default, to the committed paths)."""
    from kfp import compiler

    from socratic_sdg import components

    from . import example_training_pipeline, socratic_sdg_pipeline

    pipelines_dir.mkdir(parents=True, exist_ok=True)
    written = [
        socratic_sdg_pipeline.compile_pipeline(pipelines_dir / socratic_sdg_pipeline.COMPILED_PATH.name),
        example_training_pipeline.compile_pipeline(pipelines_dir / example_training_pipeline.COMPILED_PATH.name),
    ]
    if pipelines_dir == PIPELINES_DIR:
        PARAMETERS_DOC.parent.mkdir(exist_ok=True)
        PARAMETERS_DOC.write_text(parameters_reference(written[0]))
        written.append(PARAMETERS_DOC)
    specs_dir.mkdir(parents=True, exist_ok=True)
    for name in components.__all__:
        component = getattr(components, name)
        if hasattr(component, "component_spec"):
            path = specs_dir / f"{name}.yaml"
            compiler.Compiler().compile(component, package_path=str(path))
            written.append(path)
    return written
