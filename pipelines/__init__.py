"""The pipelines, their compiled YAML (committed next to them) and the local runner."""

from pathlib import Path

PIPELINES_DIR = Path(__file__).resolve().parent
COMPONENT_SPECS_DIR = PIPELINES_DIR.parent / "components" / "specs"
PARAMETERS_DOC = PIPELINES_DIR.parent / "docs" / "parameters.md"


def parameters_reference(compiled_yaml: Path) -> str:
    """docs/parameters.md: the pipeline's run parameters in the dashboard's order, by form section, with
    the dashboard name and the short name of each."""
    import yaml

    from .form import PHASES, phase_prefix, short_name

    spec = next(yaml.safe_load_all(compiled_yaml.read_text()))
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    names = sorted(parameters)  # as the dashboard lists them
    lines = [
        "# Pipeline parameters",
        "",
        f"Generated from `pipelines/{compiled_yaml.name}` by `socratic-sdg compile` (a test fails when it is stale).",
        "The OpenShift AI dashboard shows these descriptions on the run form, sorted by name: the names",
        "`phase_NN_<stage>_<man|opt>_<setting>` put the form in pipeline order, in each stage the settings to set",
        "or check (`man`) before the options (`opt`). `socratic-sdg run --param`, `socratic-sdg submit` (`--param`,",
        "`--params-file`) and their Python options (`LocalRunOptions.parameters`, `SubmitOptions.params`) take the",
        "short name or the dashboard name.",
    ]
    titles = {"cluster": "Cluster wiring"}
    for phase in PHASES:
        lines += ["", f"## {titles.get(phase, phase.capitalize())}", "",
                  "| dashboard name | short name | type | default | description |", "|---|---|---|---|---|"]
        for name in (n for n in names if n.startswith(phase_prefix(phase))):
            p = parameters[name]
            default = p.get("defaultValue", "")
            description = p.get("description", "").replace("|", "/")
            lines.append(f"| `{name}` | `{short_name(name)}` | {p['parameterType'].lower()} | `{default!r}` | {description} |")
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
