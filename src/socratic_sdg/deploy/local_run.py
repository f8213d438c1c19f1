"""Run the compiled pipeline definition on this machine with the KFP local runner.

The SubprocessRunner runs every task in the current Python environment (no image, no pip): the
same component code as on the cluster, with PVC mounts and Secrets ignored. The model endpoint is
taken from the environment the tasks inherit; when none is configured, an embedded llama.cpp
server with a small model is started for the duration of the run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from socratic_sdg.export import summary as run_summary


@dataclass
class LocalRunOptions:
    input_dir: str
    output_dir: str = "output"
    parameters: dict = field(default_factory=dict)  # pipeline parameters (convert_*, generate_*, ...)
    local_model_path: str | None = None


@dataclass
class LocalRunResult:
    dataset_dir: Path
    summary: dict
    seconds: float


def run_locally(options: LocalRunOptions, progress: Callable[[str], None] = print) -> LocalRunResult:
    from kfp import local

    from socratic_sdg.pipelines.socratic_sdg_pipeline import socratic_sdg_pipeline

    from .submit import check_parameter_names

    check_parameter_names(options.parameters, socratic_sdg_pipeline.component_spec.inputs)  # before any work
    started = time.monotonic()
    input_dir = Path(options.input_dir).resolve()
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder {input_dir} does not exist; pass --input with the folder holding the PDFs")
    output_root = Path(options.output_dir).resolve()
    output_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(output_root / "runs"))

    server = None
    if not os.environ.get("LLM_API_BASE"):
        from socratic_sdg.local_llm import MODEL_NAME, LocalModelServer

        progress("LLM_API_BASE is not set: starting the embedded local model server (llama.cpp + SmolLM2-135M)")
        server = LocalModelServer(options.local_model_path).start()
        # The tasks run as subprocesses and inherit this environment: it stands in for the Secret.
        os.environ["LLM_API_BASE"] = server.api_base
        os.environ["LLM_MODEL"] = MODEL_NAME
        os.environ.setdefault("LLM_API_KEY", "EMPTY")
        progress(f"local model server ready at {server.api_base}")
    try:
        parameters = {
            "convert_input_dir": str(input_dir),
            # No layout models on a laptop unless the user has them: read the PDFs' text layer.
            "convert_pipeline": "standard" if os.environ.get("DOCLING_ARTIFACTS_PATH") else "native",
            "convert_cache_dir": str(output_root / "cache" / "convert"),
            "generate_checkpoint_dir": str(output_root / "checkpoints" / "generate"),
            # A CPU model is slow: the local run estimates from counts; `socratic-sdg estimate` probes.
            "generate_estimate_probe_rows": 0,
            **options.parameters,
        }
        task = socratic_sdg_pipeline(**parameters)
    finally:
        if server is not None:
            server.stop()
            for key in ("LLM_API_BASE", "LLM_MODEL"):
                os.environ.pop(key, None)
    dataset_dir = Path(task.outputs["Output"].path)
    summary = run_summary.read(dataset_dir)
    latest = output_root / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(dataset_dir)
    return LocalRunResult(dataset_dir=dataset_dir, summary=summary, seconds=time.monotonic() - started)
