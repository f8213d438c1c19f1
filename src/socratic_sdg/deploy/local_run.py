"""Run the compiled pipeline definition on this machine with the KFP local runner.

The SubprocessRunner runs every task in the current Python environment (no image, no pip): the
same component code as on the cluster, with PVC mounts and Secrets ignored. The model endpoint is
taken from the environment the tasks inherit; when none is configured, an embedded llama.cpp
server with a small model is started for the duration of the run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from socratic_sdg.errors import SocraticSdgError
from socratic_sdg.export import summary as run_summary


class LocalRunError(SocraticSdgError, RuntimeError):
    """A task of the local run failed; the message is that stage's own sentence (and where the log is)."""


@dataclass
class LocalRunOptions:
    input_dir: str
    output_dir: str = "output"
    parameters: dict = field(default_factory=dict)  # pipeline parameters by short or dashboard name (generate_max_chunks, ...)
    local_model_path: str | None = None
    verbose: bool = False  # the KFP runner's own logs on the terminal too (they always go to the run's log file)


@dataclass
class LocalRunResult:
    dataset_dir: Path
    summary: dict
    seconds: float
    log_path: Path | None = None


# The local run against the embedded model (see run_locally).
EMBEDDED_TARGET_EXAMPLES = 3
EMBEDDED_MAX_REQUESTS = 60  # 20 rows of the single-turn flow: ~3-4 minutes of SmolLM2 on 2 cores
# Best of 3 tutor replies: llama.cpp answers the chat API's n, so the same requests bring three replies to
# choose from. Measured with `make run` (4 sample PDFs, 2 cores, ~4 minutes either way): 1 accepted of 20
# rows and the 60-request budget spent with 1 reply; the target of 3 reached after 15 rows and 45
# requests with 3, and 3 preference pairs.
EMBEDDED_TUTOR_CANDIDATES = 3

# Lines the stages print as they go ("[generate 3/8] ..."): the progress a user sees of a quiet run.
_PROGRESS = re.compile(r"^\s*\[(convert|chunk|generate|estimate|filter|export)\b")
_TASK_START = re.compile(r"Executing task '?([\w-]+)")
_ANSI = re.compile(r"\x1b\[[\d;]*m")
# The last line of a Python traceback: "socratic_sdg.convert.stage.ConvertError: no documents found in ..."
_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception|Generated|Unavailable)): (.+)$")


class _RunLog(io.TextIOBase):
    """Where the local runner's output goes while it runs: every line into the log file; on the terminal
    only the stages' progress lines and the start of each task (everything with ``verbose``). Keeps the
    last error line a task printed, so a failed run can end with that stage's sentence."""

    def __init__(self, path: Path, terminal, verbose: bool):
        self.file = path.open("w", encoding="utf-8")
        self.terminal = terminal
        self.verbose = verbose
        self.pending = ""
        self.last_error: str | None = None
        self.tasks = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.file.write(text)
        if self.verbose:
            self.terminal.write(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self._line(_ANSI.sub("", line))
        return len(text)

    def _line(self, line: str) -> None:
        error = _ERROR_LINE.match(line)
        if error and not line.lstrip().startswith(("File ", "raise ")):
            self.last_error = error.group(2).strip()
        if self.verbose:
            return
        started = _TASK_START.search(line)
        if started:
            self.tasks += 1
            self.terminal.write(f"- {started.group(1)}\n")
        elif _PROGRESS.match(line):
            self.terminal.write("  " + line.strip() + "\n")
        self.terminal.flush()

    def flush(self) -> None:
        self.file.flush()
        self.terminal.flush()

    def close(self) -> None:
        self.file.close()


@contextlib.contextmanager
def _quiet(log_path: Path, verbose: bool) -> Iterator[_RunLog]:
    log = _RunLog(log_path, sys.stdout, verbose)
    real = sys.stdout
    root = logging.getLogger()
    level = root.level
    if not verbose:
        root.setLevel(logging.WARNING)  # the runner's INFO lines outside its own logging context (workspace clean-up)
    sys.stdout = log  # the runner's logging handler and the tasks' streamed output both write here
    try:
        with warnings.catch_warnings():  # the runner warns per task that limits do not apply locally: the log's business
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: log.write(
                warnings.formatwarning(message, category, filename, lineno, line))
            yield log
    finally:
        sys.stdout = real
        root.setLevel(level)
        log.close()


def check_before_running(input_dir: Path, parameters: dict) -> None:
    """What can be checked before any work, each failure one sentence: documents in the input folder,
    the endpoint answering with the model (when one is configured), the flow loading."""
    from socratic_sdg.convert import ConvertError, SUPPORTED_SUFFIXES, find_inputs
    from socratic_sdg.generate import catalog

    if not input_dir.is_dir():
        raise ConvertError(f"input folder {input_dir} does not exist; pass --input with the folder holding the PDFs")
    if not find_inputs(input_dir):
        raise ConvertError(f"no documents found in {input_dir} (looked for {', '.join(SUPPORTED_SUFFIXES)} recursively); "
                           "copy the PDFs there or pass --input with another folder")
    if os.environ.get("LLM_API_BASE"):
        from socratic_sdg.endpoint import EndpointConfig, check_model

        check_model(EndpointConfig.from_env(model=parameters.get("generate_model") or None))
    flow_path = catalog.resolve_flow(parameters.get("generate_flow_id") or "socratic-single-turn", parameters.get("generate_flow_yaml_path") or None)
    catalog.load_flow(flow_path)  # prompts checked against the columns their blocks pass


def run_locally(options: LocalRunOptions, progress: Callable[[str], None] = print) -> LocalRunResult:
    from kfp import local

    from socratic_sdg.pipelines.form import short_name
    from socratic_sdg.pipelines.socratic_sdg_pipeline import arguments, socratic_sdg_pipeline

    from .submit import by_pipeline_name

    # Checked before any work; by short name from here on (the pipeline function takes dashboard names).
    given = {short_name(name): value for name, value in by_pipeline_name(options.parameters, socratic_sdg_pipeline.component_spec.inputs).items()}
    started = time.monotonic()
    input_dir = Path(options.input_dir).resolve()
    check_before_running(input_dir, given)
    output_root = Path(options.output_dir).resolve()
    output_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(output_root / "runs"))
    log_path = output_root / "runs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    server = None
    embedded: dict = {}
    if not os.environ.get("LLM_API_BASE"):
        from socratic_sdg.local_llm import MODEL_NAME, REQUEST_TIMEOUT_SECONDS, LocalModelServer

        progress("LLM_API_BASE is not set: starting the embedded local model server (llama.cpp + SmolLM2-135M)")
        server = LocalModelServer(options.local_model_path).start()
        # The tasks run as subprocesses and inherit this environment: it stands in for the Secret.
        os.environ["LLM_API_BASE"] = server.api_base
        os.environ["LLM_MODEL"] = MODEL_NAME
        os.environ.setdefault("LLM_API_KEY", "EMPTY")
        progress(f"local model server ready at {server.api_base}")
        # The embedded model is small and slow, and it has `parallel` slots: no more requests than that
        # at once, a timeout a busy 2-core machine meets, and a demo that generates until a handful of
        # conversations pass the filter (or its request budget is spent), not a fixed few that may all fail.
        embedded = {"generate_max_concurrency": server.parallel, "generate_request_timeout": REQUEST_TIMEOUT_SECONDS,
                    "generate_target_examples": EMBEDDED_TARGET_EXAMPLES, "generate_max_requests": EMBEDDED_MAX_REQUESTS,
                    "generate_tutor_candidates": EMBEDDED_TUTOR_CANDIDATES}
    progress(f"running the pipeline with the KFP local runner (its log: {log_path})")
    try:
        parameters = {
            "convert_input_dir": str(input_dir),
            # No layout models on a laptop unless the user has them: read the PDFs' text layer.
            "convert_pipeline": "standard" if os.environ.get("DOCLING_ARTIFACTS_PATH") else "native",
            "convert_cache_dir": str(output_root / "cache" / "convert"),
            "generate_checkpoint_dir": str(output_root / "checkpoints" / "generate"),
            # A CPU model is slow: the local run estimates from counts; `socratic-sdg estimate` probes.
            "generate_estimate_probe_rows": 0,
            **embedded,
            **given,
        }
        with _quiet(log_path, options.verbose) as log:
            try:
                task = socratic_sdg_pipeline(**arguments(**parameters))
            except RuntimeError as failure:  # the runner's "Pipeline ... finished with status FAILURE"
                failed = re.search(r"Inner task failed: \W*([\w-]+)", _ANSI.sub("", str(failure)))
                where = f"the {failed.group(1)} task" if failed else "a task"
                reason = log.last_error or _ANSI.sub("", str(failure))
                raise LocalRunError(f"{where} failed: {reason} (the whole log: {log_path})") from None
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
    return LocalRunResult(dataset_dir=dataset_dir, summary=summary, seconds=time.monotonic() - started, log_path=log_path)
