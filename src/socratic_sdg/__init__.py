"""Socratic SDG: turn course PDFs into a Socratic-tutor fine-tuning dataset.

One package per pipeline stage (convert, chunk, generate, filtering, export), each with a small typed
options object and a ``run(...)`` function over paths. Nothing in the stages imports KFP: the
components and pipelines live above them (docs/code-organisation.md).

Importing this package puts its flows (socratic-single-turn, socratic-multi-turn) in sdg_hub's
``FlowRegistry``, so sdg_hub's own discovery finds them: ``FlowRegistry.get_flow_path(...)``,
``search_flows(tag="socratic-tutoring")``, ``Flow.from_yaml(...)``. sdg_hub is not imported for that:
the search path is added when sdg_hub's registry module is first imported (or at once if it was).
"""

import importlib.abc
import importlib.util
import os
import sys
import warnings
from pathlib import Path

__version__ = "0.1.0"

# Library noise a notebook shows as red boxes or dozens of panels (a terminal run shows it too):
# sdg_hub prints a Rich panel per block call at INFO (read from LOG_LEVEL when its modules are first
# imported, so set before that; LOG_LEVEL=INFO brings it back), docling_core warns for every layout box
# a PDF puts a hair outside its page (and clamps it itself), and tqdm warns in a kernel without ipywidgets.
os.environ.setdefault("LOG_LEVEL", "WARNING")
warnings.filterwarnings("ignore", message=r"Provenance bbox coordinate .* outside page bounds", category=UserWarning)
warnings.filterwarnings("ignore", message=r"IProgress not found")

FLOWS_DIR = Path(__file__).resolve().parent / "generate" / "flows"
_REGISTRY_MODULE = "sdg_hub.core.flow.registry"


def _add_search_path(registry_module) -> None:
    registry = registry_module.FlowRegistry
    if str(FLOWS_DIR) not in registry._search_paths:
        registry.register_search_path(str(FLOWS_DIR))
        if registry._entries:  # already scanned: scan again with ours
            registry._discover_flows(force_refresh=True)


class _RegisterFlowsOnImport(importlib.abc.MetaPathFinder):
    """Adds our flows' folder to sdg_hub's FlowRegistry right after its module is executed."""

    def find_spec(self, name, path, target=None):
        if name != _REGISTRY_MODULE:
            return None
        sys.meta_path.remove(self)  # once; the regular finders locate the module
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _add_search_path(module)

        spec.loader.exec_module = exec_module
        return spec


if _REGISTRY_MODULE in sys.modules:
    _add_search_path(sys.modules[_REGISTRY_MODULE])
elif not any(isinstance(finder, _RegisterFlowsOnImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterFlowsOnImport())
