"""notebooks/quickstart.ipynb: committed without outputs, and executed end to end (nbclient) against
the embedded local model, as a data scientist runs it in a workbench."""

import json
import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def test_the_notebook_is_committed_without_outputs():
    notebook = json.loads(NOTEBOOK.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, "clear the outputs before committing the notebook"


@pytest.mark.e2e
def test_the_quickstart_runs_end_to_end_against_the_embedded_model(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    for key in ("LLM_API_BASE", "LLM_MODEL", "LLM_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("QUICKSTART_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("QUICKSTART_ROWS", "2")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    started = time.monotonic()
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    print(f"quickstart notebook: {time.monotonic() - started:.0f} s")
    text = "\n".join(json.dumps(cell.get("outputs", [])) for cell in notebook.cells)
    assert "Traceback" not in text
    # No library noise between the steps: sdg_hub's per-block panels, docling's bbox clamps, tqdm's widget warning
    assert "Processing Input Data" not in text and "UserWarning" not in text and "TqdmWarning" not in text
    assert "socratic-single-turn" in text and "socratic-multi-turn" in text  # found through sdg_hub's registry
    assert "workshop_filter" in text and "drop_reasons" in text  # the side-by-side table
    assert "compiled:" in text and "nothing submitted" in text  # outside a cluster, it says so
    assert (tmp_path / "work" / "dataset" / "train.jsonl").is_file()
    assert os.environ.get("LLM_API_BASE") is None  # the embedded server was stopped
