"""The pipelines, their compiled YAML (committed next to them) and the local runner."""

from pathlib import Path

PIPELINES_DIR = Path(__file__).resolve().parent
COMPONENT_SPECS_DIR = PIPELINES_DIR.parent / "components" / "specs"


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
    specs_dir.mkdir(parents=True, exist_ok=True)
    for name in components.__all__:
        component = getattr(components, name)
        if hasattr(component, "component_spec"):
            path = specs_dir / f"{name}.yaml"
            compiler.Compiler().compile(component, package_path=str(path))
            written.append(path)
    return written
