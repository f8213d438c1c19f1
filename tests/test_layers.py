"""The layers point one way: pipelines -> components -> library. The library (every module under
src/socratic_sdg, subpackages included) never imports kfp, the pipelines or the components, so it runs
in a notebook or a plain container; only the CLI, the top of the stack, reaches the local runner and
submit. Every user error is one SocraticSdgError."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import socratic_sdg
from socratic_sdg.errors import SocraticSdgError

PACKAGE = Path(socratic_sdg.__file__).resolve().parent
FORBIDDEN = ("kfp", "kfp_kubernetes", "socratic_sdg.pipelines", "socratic_sdg.components", "socratic_sdg.deploy", "socratic_sdg.cli")
# The top of the stack: the command line, and deploy/ (the local run and submit import the pipelines).
TOP_LAYER = {"cli.py", "deploy"}


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-local imports too), relative ones resolved."""
    package = ".".join(("socratic_sdg",) + path.relative_to(PACKAGE).parent.parts)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _library_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in TOP_LAYER)


def test_the_walk_sees_subpackages_and_function_local_imports():
    files = _library_files()
    assert any(p.parent.name == "testing" for p in files)  # rglob, not glob
    assert "kfp.local" in _imports(PACKAGE / "deploy" / "local_run.py")


@pytest.mark.parametrize("path", _library_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_library_never_imports_kfp_the_pipelines_or_the_components(path):
    bad = sorted(name for name in _imports(path) if any(name == f or name.startswith(f + ".") for f in FORBIDDEN))
    assert bad == [], f"{path.relative_to(PACKAGE)} imports {bad}: the library must not depend on the KFP layers"


def test_every_stage_error_is_a_socratic_sdg_error():
    from socratic_sdg import chunk, convert, endpoint, evaluate, export, local_llm, records
    from socratic_sdg.filtering import judge as filter_judge
    from socratic_sdg.generate.errors import GenerateError
    from socratic_sdg.deploy.submit import SubmitError

    errors = [chunk.ChunkError, convert.ConvertError, convert.UnreadableDocument, endpoint.EndpointError, evaluate.EvaluateError, export.ExportError,
              filter_judge.JudgeError, local_llm.LocalModelError, records.JsonlError, records.InputMissingError,
              records.IncompleteSetError, GenerateError, SubmitError]
    assert [e.__name__ for e in errors if not issubclass(e, SocraticSdgError)] == []
    # and every error class the library defines for users is among them
    defined = {name for module in (chunk, convert, endpoint, evaluate, export, local_llm, records)
               for name, value in inspect.getmembers(module, inspect.isclass)
               if value.__module__ == module.__name__ and issubclass(value, Exception)}
    assert defined <= {e.__name__ for e in errors}


def test_artifact_file_names_are_written_once():
    from socratic_sdg import artifacts

    names = {v for k, v in vars(artifacts).items() if k.endswith("_FILE")}
    roots = [PACKAGE, PACKAGE.parents[1] / "components"]
    found = []
    for root in roots:
        for path in root.rglob("*.py"):
            if path.name == "artifacts.py" or "testing" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            found += [f"{path.name}: {name}" for name in names if f'"{name}"' in text]
    assert found == [], "file names belong in socratic_sdg.artifacts"


def test_every_stage_returns_a_stage_result_that_says_itself():
    """The CLI and the components print what a result says (summary_lines) and log its numbers
    (kfp_metrics); no stage leaves that to its callers."""
    import inspect

    from socratic_sdg import chunk, convert, export, filtering, generate
    from socratic_sdg.generate import estimate
    from socratic_sdg.results import StageResult

    for module, result_cls in ((convert, convert.ConvertResult), (chunk, chunk.ChunkResult), (generate, generate.GenerateResult),
                               (estimate, estimate.EstimateResult), (filtering, filtering.FilterResult), (export, export.ExportResult)):
        assert issubclass(result_cls, StageResult), result_cls
        assert result_cls.summary_lines is not StageResult.summary_lines and result_cls.metrics is not StageResult.metrics, result_cls
        assert inspect.signature(module.run).return_annotation in (result_cls.__name__, result_cls), module.__name__
