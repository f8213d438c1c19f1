"""Stage 3, generate: chunks -> Socratic tutoring conversations through an sdg_hub flow (the run, its result and outputs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


from ..options import output_settings
from ..results import PathLike, Progress, StageResult
from ..endpoint import EndpointConfig, check_model
from ..endpoint import redact
from .catalog import flow_fingerprint, load_diversity, load_flow, resolve_flow
from .checkpoint import Checkpoint
from .errors import EndpointUnavailable, GenerateError, NothingGenerated
from ..records import AtomicFileSet, dumps, read_jsonl
from .. import artifacts
from .gateway import TERMINAL_ROW_KINDS, LLMGateway, StopRun
from .options import GenerateOptions
from .runner import FlowRunner, build_steps, run_rows
from .candidates import CandidateChooser, candidate_counts, check_flow_has_tutor_steps
from .rows import _check_columns, _check_max_tokens, _diversity_columns, _row_entry, check_chunks_file, chunk_problem, iter_chunk_rows, to_conversation


TEMP_CHECKPOINT = ".generate-checkpoint"  # in output_dir when no checkpoint_dir is given; removed when done
SET_KIND = "generate"
PRODUCER = "generation (socratic-sdg generate, the pipeline's generate step)"
# Row outcomes that are not errors, whatever their number: a flow's filter dropping a row, the budget.
_NOT_ERRORS = frozenset({"filtered", "request_budget"})
@dataclass
class GenerateResult(StageResult):
    """Rows in (chunk x sample), conversations out, rows failed; ``stats`` holds the request accounting."""

    input_rows: int
    output_rows: int
    failed_rows: int
    execution_time_seconds: float
    flow_id: str
    model: str
    stats: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        return {
            "input_rows": self.input_rows,
            "output_rows": self.output_rows,
            "failed_rows": self.failed_rows,
            "execution_time_seconds": round(self.execution_time_seconds, 3),
            "flow_id": self.flow_id,
            "model": self.model,
            **self.stats,
        }

    @classmethod
    def from_metrics(cls, metrics: dict) -> GenerateResult:
        """The result back from ``generate_metrics.json``."""
        stats = dict(metrics)
        return cls(
            input_rows=stats.pop("input_rows"),
            output_rows=stats.pop("output_rows"),
            failed_rows=stats.pop("failed_rows"),
            execution_time_seconds=stats.pop("execution_time_seconds"),
            flow_id=stats.pop("flow_id"),
            model=stats.pop("model"),
            stats=stats,
        )

    def summary_lines(self) -> list[str]:
        """A short human summary for the CLI."""
        s = self.metrics()
        lines = [
            f"conversations      {s['output_rows']} from {s['input_rows']} rows ({s['failed_rows']} failed"
            + (f", {s.get('rows_resumed', 0)} resumed from the checkpoint" if s.get("rows_resumed") else "")
            + ")",
            f"requests           {s.get('requests', 0)} ({s.get('retries', 0)} retries, {s.get('requests_failed', 0)} failed)"
            + (f"  failures: {', '.join(f'{k} {v}' for k, v in s.get('failures_by_kind', {}).items())}" if s.get("failures_by_kind") else ""),
            f"tokens             {s.get('prompt_tokens', 0)} prompt + {s.get('completion_tokens', 0)} completion",
            f"throughput         {s.get('requests_per_second', 0):.2f} requests/s, {s.get('mean_in_flight', 0):.1f} of {s.get('max_concurrency', 0)} in "
            "flight on average",
            f"wall time          {s['execution_time_seconds']:.1f}s",
        ]
        if s.get("rows_failed_by_kind"):
            lines.append("failed rows        " + ", ".join(f"{k} {v}" for k, v in s["rows_failed_by_kind"].items()))
        if s.get("stopped_early") == "same_failure":
            lines.append(f"stopped early      the first rows all failed the same way: {s.get('rows_not_started', 0)} rows not started or cancelled")
        elif s.get("stopped_early"):
            lines.append(
                f"stopped early      {s['stopped_early']} reached: {s.get('rows_not_started', 0)} rows not started "
                f"({s.get('prefilter_accepted', 0)} conversations pass the filter's deterministic layers)"
            )
        return lines


def resolve_flow_path(options: GenerateOptions) -> Path:
    return resolve_flow(options.flow_id, options.flow_yaml_path)


def _load_flow(path: Path, endpoint: EndpointConfig, options: GenerateOptions):
    flow = load_flow(path)  # prompts checked and rendered in Jinja's sandbox
    if flow.is_model_config_required():
        flow.set_model_config(
            model=endpoint.litellm_model,
            api_base=endpoint.api_base,
            api_key=endpoint.api_key,
            num_retries=0,  # the engine retries (bounded, jittered, Retry-After-aware)
            timeout=options.requests.request_timeout,
        )
    return flow


# --- the run ----------------------------------------------------------------------------------


def _run_coroutine(coroutine_factory):
    """asyncio.run, also when called from a thread that already runs an event loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine_factory())
    box: dict = {}

    def target():
        try:
            box["result"] = asyncio.run(coroutine_factory())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="socratic-sdg-generate")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


@contextlib.contextmanager
def _terminate_gracefully():
    """SIGTERM (a pod being stopped) ends the run like Ctrl-C, so finished rows still reach the checkpoint."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _sdg_hub_at_log_level():
    """sdg_hub's loggers no more verbose than LOG_LEVEL (WARNING unless set) while the run calls its blocks:
    each block call prints a Rich panel at INFO, and a notebook that imported sdg_hub before this package
    has them at INFO."""
    level = logging.getLevelName(os.environ.get("LOG_LEVEL", "WARNING").upper())
    level = level if isinstance(level, int) else logging.WARNING
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict) if name.startswith("sdg_hub")]
    saved = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        if logger.level < level:
            logger.setLevel(level)
    try:
        yield
    finally:
        for logger, previous in saved:
            logger.setLevel(previous)


def _seconds(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") + "s" if value < 10 else f"{value:.0f}s"


def _transport(options: GenerateOptions, endpoint: EndpointConfig):
    from .transport import DirectTransport, LitellmTransport

    if options.requests.transport == "direct":
        return DirectTransport(endpoint.api_base, endpoint.api_key, endpoint.model)
    if options.requests.transport == "litellm":
        return LitellmTransport()
    raise AssertionError(options.requests.transport)  # RequestPolicy checks the choice


def _refuse_unusable_input(path: Path, options: GenerateOptions) -> None:
    """Raise (as ``estimate`` does) when the chunks this run may use (``max_chunks``, all shards) hold no
    usable chunk; return when other shards have some (this shard's share is just empty)."""
    records = 0
    first: str | None = None
    for position, chunk in enumerate(read_jsonl(path)):
        if options.max_chunks and position >= options.max_chunks:
            break
        records += 1
        problem = chunk_problem(chunk, options.max_chunk_chars)
        if problem is None:
            return
        first = first or f"record {position + 1}: {problem[1]}"
    if not records:
        raise GenerateError(f"chunks file {path} holds no chunks; make it with `socratic-sdg chunk` (is the conversion output empty?)")
    raise GenerateError(
        f"chunks file {path} holds no usable chunk: all {records} were rejected (first, {first}); "
        "is it a chunks.jsonl from `socratic-sdg chunk`?"
    )


class GenerationRun:
    """One generation run, in three steps: :meth:`plan` (flow, input rows, checks, checkpoint; no request
    yet), :meth:`start` (rows through the engine, each finished row appended to the checkpoint) and
    :meth:`finish` (outputs and metrics written from the checkpoint, one row at a time)."""

    def __init__(self, input_path: str | os.PathLike[str], output_dir: str | os.PathLike[str], options: GenerateOptions,
                 endpoint: EndpointConfig | None = None, progress: Callable[[str], None] | None = None):
        self.started = time.monotonic()
        self.input_path = check_chunks_file(input_path)
        self.out = Path(output_dir)
        self.options = options
        self.endpoint = endpoint or EndpointConfig.from_env()
        self.progress = progress or (lambda message: None)
        self.counts: Counter = Counter()  # finished rows this run: done / failed, and conversations
        self.gateway = None
        self.tracker = None  # counts conversations that pass the filter, with target_examples
        self.stop_reason: str | None = None
        self.last_report = self.started
        # The first rows (input order) this run starts, and how each ended ("running", "ok" or the failure):
        # all failed alike, and no row succeeded anywhere, means every row would fail alike.
        self.first_rows: dict[str, object] = {}
        self.same_failure: str | None = None

    def rows(self) -> Iterator[dict]:
        return iter_chunk_rows(read_jsonl(self.input_path), self.options, self.diversity, self.required)

    def finished(self, row: dict) -> bool:
        entry = self.entries.get(row["row_id"])
        if entry is None:
            return False
        return entry["status"] == "done" or entry.get("kind") in TERMINAL_ROW_KINDS or not self.options.retry_failed

    # --- plan ---------------------------------------------------------------------------------

    def plan(self) -> None:
        """Everything that can be checked before the first request; opens (locks) the checkpoint."""
        options = self.options
        self.flow_path = resolve_flow_path(options)
        self.flow = _load_flow(self.flow_path, self.endpoint, options)
        self.flow_id = self.flow.metadata.id or options.flow_id
        self.diversity = load_diversity(self.flow_path)
        self.required = list(getattr(self.flow.metadata.dataset_requirements, "required_columns", None) or [])
        first_usable = next((row for row in self.rows() if "rejected" not in row), None)
        if first_usable is None:
            _refuse_unusable_input(self.input_path, options)
        _check_columns(self.flow, [first_usable] if first_usable else [], self.required)
        self.diversity_columns = _diversity_columns(self.diversity)
        self.steps = build_steps(self.flow, options.runtime_params)
        if options.tutor_candidates > 1:
            tutor_steps = check_flow_has_tutor_steps(self.steps, self.flow_id, options.tutor_candidates)
            for step in self.steps:
                if step.name in tutor_steps:
                    step.candidates = options.tutor_candidates
        self.transport = _transport(options, self.endpoint)
        if options.check_endpoint:
            _check_max_tokens(self.steps, check_model(self.endpoint))
        self.out.mkdir(parents=True, exist_ok=True)
        self.temporary = not options.checkpoint_dir
        self.checkpoint = Checkpoint(
            options.checkpoint_dir or self.out / TEMP_CHECKPOINT,
            # what each row's conversations depend on: a resumed run must have the same (it may take more rows)
            manifest={"flow_sha": flow_fingerprint(self.flow_path), "model": self.endpoint.model, **output_settings(options, rows=False)},
            save_freq=options.save_freq,
            discard_mismatch=self.temporary,
        )
        self.entries = self.checkpoint.open()

    def _count_rows(self) -> None:
        self.total_rows = self.todo_rows = self.rejected_rows = 0
        for row in self.rows():
            self.total_rows += 1
            if "rejected" in row:
                self.rejected_rows += 1
                continue
            self.todo_rows += not self.finished(row)
        self.resumed = self.total_rows - self.rejected_rows - self.todo_rows
        if self.resumed:
            self.progress(f"[generate] resuming from {self.checkpoint.directory}: {self.resumed} of {self.total_rows} rows already done")
        if self.rejected_rows:
            self.progress(f"[generate] {self.rejected_rows} of {self.total_rows} rows come from chunks that cannot be sent (wrong field types or too "
                          f"long): recorded in {artifacts.GENERATE_FAILED_FILE}")
        if self.options.target_examples:
            from .target import AcceptanceTracker

            self.tracker = AcceptanceTracker(self.options.target_filter)
            for entry in self.checkpoint.iter_entries():  # what a resumed run already has counts
                if entry.get("status") == "done":
                    self.tracker.add(entry["conversations"])

    # --- start --------------------------------------------------------------------------------

    def start(self):
        """Run the rows not finished yet through the engine; returns its report (None when stopped)."""
        self._count_rows()
        self.llm_steps = sum(s.candidates for s in self.steps if s.mode == "llm")  # requests a row may need
        self.expected_requests = max(1, self.todo_rows * self.llm_steps)
        try:
            with _terminate_gracefully(), _sdg_hub_at_log_level():
                return _run_coroutine(self._engine)
        except EndpointUnavailable as exc:
            self.checkpoint.flush()
            where = "" if self.temporary else f" (progress saved in {self.checkpoint.directory})"
            raise EndpointUnavailable(f"{exc}{where}") from None
        finally:
            self.checkpoint.flush()

    async def _engine(self):
        options = self.options
        self.gateway = LLMGateway(options.requests, self.transport, api_base=self.endpoint.api_base, on_pause=self._on_pause,
                                  expected_requests=self.expected_requests, seed=options.seed)
        chooser = None
        if options.tutor_candidates > 1:
            def partial_conversation(record: dict) -> dict | None:
                return to_conversation(record, self.flow_id, self.endpoint.model, 0, self.diversity_columns)

            chooser = CandidateChooser(partial_conversation, options.target_filter)
        self.runner = FlowRunner(self.steps, self.gateway, seed=options.seed, max_group=options.batch_size, chooser=chooser)
        runner = self.runner
        return await run_rows(runner, self._todo(), self._on_row_done, max_active_rows=max(16, 4 * options.requests.max_concurrency),
                              should_start=self._should_start)

    def _todo(self) -> Iterator[dict]:
        for row in self.rows():
            if "rejected" not in row and not self.finished(row):
                if len(self.first_rows) < self.options.stop_after_same_failures:
                    self.first_rows.setdefault(row["row_id"], "running")
                yield row

    def _should_start(self, active_rows: int) -> bool:
        options = self.options
        if self.tracker is not None and self.tracker.expected(active_rows) >= options.target_examples:
            self.stop_reason = "target_examples"
            return False
        # a new row may need llm_steps requests, and so may each row still in the flow
        max_requests = options.requests.max_requests
        if max_requests and self.gateway.stats.requests + (active_rows + 1) * self.llm_steps > max_requests:
            self.stop_reason = "max_requests"
            return False
        return True

    def _on_pause(self, asked: float, paused: float) -> None:
        capped = f", more than --max-retry-after {_seconds(self.options.requests.max_retry_after)}" if asked > paused else ""
        self.progress(f"[generate] the endpoint asked to wait {_seconds(asked)} (Retry-After{capped}): no request is sent for {_seconds(paused)}")

    async def _on_row_done(self, row: dict, result) -> None:
        entry = _row_entry(row, result.outputs, result.failure, result.truncated, self.flow_id, self.endpoint.model, self.diversity_columns)
        self.checkpoint.add(entry)
        self.counts[entry["status"]] += 1
        self.counts["conversations"] += len(entry.get("conversations", []))
        if self.tracker is not None and entry["status"] == "done":
            self.tracker.add(entry["conversations"])
        if self.checkpoint.due():
            await asyncio.to_thread(self.checkpoint.write, self.checkpoint.take_pending())
        now = time.monotonic()
        if now - self.last_report >= 5.0:
            self.last_report = now
            self._report_progress(now - self.started)
        self._check_same_failure(entry)

    def _report_progress(self, elapsed: float) -> None:
        gateway, counts = self.gateway, self.counts
        target = f", {self.tracker.accepted}/{self.options.target_examples} pass the filter" if self.tracker else ""
        paused = gateway.paused_for()
        pause = f", paused {_seconds(paused)} more (the endpoint asked to wait {_seconds(gateway.retry_after_asked)})" if paused > 0 else ""
        done = counts["done"] + counts["failed"]
        left = self.todo_rows - done
        if self.options.requests.max_requests:  # the request budget may end the run first
            left = min(left, max(0, self.options.requests.max_requests - gateway.stats.requests) // max(1, self.llm_steps))
        eta = f", at most about {_seconds(elapsed / done * left)} left" if done else ""
        self.progress(
            f"[generate {done}/{self.todo_rows}] {counts['conversations']} conversations{target}, "
            f"{counts['failed']} failed, {gateway.stats.requests / max(elapsed, 1e-9):.1f} req/s, "
            f"{gateway.limiter.active} in flight{pause}, {elapsed:.0f}s{eta}"
        )

    def _check_same_failure(self, entry: dict) -> None:
        limit = self.options.stop_after_same_failures
        if not limit or entry["row_id"] not in self.first_rows or self.same_failure:
            return
        failed = entry["status"] == "failed" and entry["kind"] not in _NOT_ERRORS | {"context_length"}  # row-specific by nature
        # the same way: the same kind and message, numbers aside (lengths, counts, ids vary by row)
        self.first_rows[entry["row_id"]] = (entry["kind"], re.sub(r"\d+", "#", entry["reason"])) if failed else "ok"
        outcomes = list(self.first_rows.values())
        if len(outcomes) < limit or self.counts["done"] or not all(isinstance(o, tuple) for o in outcomes) or len(set(outcomes)) != 1:
            return
        self.same_failure = f"the first {limit} rows all failed the same way ({entry['kind']}: {entry['reason']})"
        self.stop_reason = "same_failure"
        self.progress(f"[generate] stopped: {self.same_failure}; no other row is started, since each would fail alike")
        raise StopRun(self.same_failure)

    # --- finish -------------------------------------------------------------------------------

    def finish(self, report) -> GenerateResult:
        """Write conversations.jsonl, failed.jsonl and generate_metrics.json (one set) from the checkpoint."""
        stopped_early = self.stop_reason if report and report.stopped_early and self.stop_reason else None
        output_rows = failed_rows = not_started = 0
        seen_ids: set[str] = set()
        rows_failed_by_kind: Counter = Counter()
        self.candidates = Counter()
        with AtomicFileSet(self.out, artifacts.GENERATE_OUTPUTS, kind=SET_KIND, producer=PRODUCER) as files:
            conversations_out, failed_out = files[artifacts.CONVERSATIONS_FILE], files[artifacts.GENERATE_FAILED_FILE]
            for row in self.rows():
                if "rejected" in row:  # never sent
                    entry = {"status": "failed", **row["rejected"], "block": ""}
                else:
                    entry = self.entries.get(row["row_id"])
                if entry is None and stopped_early:
                    not_started += 1  # never started (or cancelled): the run stopped first
                    continue
                if entry is None:  # cannot happen after a complete run; never lose a row silently
                    entry = {"status": "failed", "kind": "not_run", "reason": "the row was not processed", "block": ""}
                if entry["status"] == "done":
                    for conversation in self.checkpoint.read_entry(row["row_id"])["conversations"]:
                        if conversation["id"] not in seen_ids:
                            seen_ids.add(conversation["id"])
                            conversations_out.write(dumps(conversation) + "\n")
                            output_rows += 1
                            self.candidates.update(candidate_counts(conversation))
                else:
                    failed_rows += 1
                    rows_failed_by_kind[entry["kind"]] += 1
                    failed = {"row_id": row["row_id"], "chunk_id": row["chunk_id"], "sample_index": row["sample_index"], "kind": entry["kind"],
                              "reason": redact(entry["reason"]), "block": entry.get("block", "")}
                    failed_out.write(dumps(failed) + "\n")
            result = self._result(report, output_rows, failed_rows, not_started, stopped_early, rows_failed_by_kind)
            _write_metrics(files[artifacts.GENERATE_METRICS_FILE], result.metrics())
        self._report_end(result, stopped_early, not_started)
        self.nothing_generated = self._nothing_generated(output_rows, failed_rows, rows_failed_by_kind)
        return result

    def _result(self, report, output_rows: int, failed_rows: int, not_started: int, stopped_early: str | None,
                rows_failed_by_kind: Counter) -> GenerateResult:
        options = self.options
        request_stats = self.gateway.stats.as_dict() if self.gateway else {}
        wall = time.monotonic() - self.started
        engine_seconds = report.wall_seconds if report else 0.0
        stats = {
            "rows_done": self.total_rows - failed_rows - not_started,
            "rows_resumed": self.resumed,
            "rows_generated_this_run": self.counts["done"] + self.counts["failed"],
            "rows_failed_by_kind": dict(sorted(rows_failed_by_kind.items())),
            "rows_rejected": self.rejected_rows,
            "rows_not_started": not_started,
            "stopped_early": stopped_early,
            "target_examples": options.target_examples,
            "max_requests": options.requests.max_requests,
            "prefilter_accepted": self.tracker.accepted if self.tracker else None,
            **request_stats,
            "max_concurrency": options.requests.max_concurrency,
            "num_shards": options.shard.num_shards,
            "rows_per_block_call": round(report.rows_per_block_call, 2) if report else 0.0,
            "generation_seconds": round(engine_seconds, 3),
            "requests_per_second": round(request_stats.get("requests", 0) / engine_seconds, 3) if engine_seconds > 0 else 0.0,
            "mean_in_flight": round(report.mean_in_flight, 3) if report else 0.0,
            "max_in_flight": report.max_in_flight if report else 0,
            "wall_time_seconds": round(wall, 3),
            "checkpoint_dir": None if self.temporary else str(self.checkpoint.directory),
        }
        if options.tutor_candidates > 1:
            runner = getattr(self, "runner", None)
            stats["tutor_candidates"] = {"per_turn": options.tutor_candidates, **{k: self.candidates[k] for k in sorted(self.candidates)},
                                         "n_supported": runner.n_supported if runner else None}
        return GenerateResult(input_rows=self.total_rows, output_rows=output_rows, failed_rows=failed_rows, execution_time_seconds=wall,
                              flow_id=self.flow_id, model=self.endpoint.model, stats=stats)

    def _report_end(self, result: GenerateResult, stopped_early: str | None, not_started: int) -> None:
        total = self.total_rows
        self.progress(
            f"[generate {total}/{total}] {result.output_rows} conversations, {result.failed_rows} failed, "
            + (f"{not_started} not started ({stopped_early} reached), " if stopped_early and stopped_early != "same_failure" else "")
            + (f"{not_started} not started or cancelled (stopped: the first rows all failed alike), " if stopped_early == "same_failure" else "")
            + f"{result.stats['requests_per_second']:.1f} req/s, {result.execution_time_seconds:.0f}s"
        )

    def _nothing_generated(self, output_rows: int, failed_rows: int, rows_failed_by_kind: Counter) -> str | None:
        """Why the run made nothing (rows failed and none gave a conversation), or None."""
        error_rows = sum(n for kind, n in rows_failed_by_kind.items() if kind not in _NOT_ERRORS)
        if output_rows or not error_rows:
            return None
        where = self.out / artifacts.GENERATE_FAILED_FILE
        if self.same_failure:
            return f"no conversation from {self.input_path}: {self.same_failure}, so the run stopped; fix that (the rows are in {where}) and run again"
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(rows_failed_by_kind.items()))
        return f"no conversation from {self.input_path}: all {failed_rows} rows failed ({kinds}); fix the cause given in {where} and run again"

    def execute(self) -> GenerateResult:
        self.plan()
        try:
            result = self.finish(self.start())
        except BaseException:
            self.checkpoint.close()
            raise
        if self.temporary:
            self.checkpoint.remove()
        else:
            self.checkpoint.close()
        if self.nothing_generated:
            raise NothingGenerated(self.nothing_generated, result)
        return result


def run(input_path: PathLike, output_dir: PathLike,
        options: GenerateOptions = GenerateOptions(), endpoint: EndpointConfig | None = None, progress: Progress | None = None) -> GenerateResult:
    """Generate conversations for the chunks in ``input_path`` (chunks.jsonl) into ``output_dir``.

    Streams: the chunks are read as rows are started, finished rows go to the checkpoint on disk,
    and the outputs are written from it one row at a time, so memory does not grow with the input.
    Raises :class:`NothingGenerated` (after writing the outputs) when rows failed and none produced
    a conversation.
    """
    return GenerationRun(input_path, output_dir, options, endpoint, progress).execute()


def _write_metrics(handle, metrics: dict) -> None:
    """generate_metrics.json as records.write_json writes JSON."""
    json.dump(metrics, handle, ensure_ascii=False, indent=2, sort_keys=True)
    handle.write("\n")


def write_nothing_generated(output_dir: str | os.PathLike[str], reason: str) -> GenerateResult:
    """Empty outputs for a run that sends no request (the pipeline's estimate-only mode), saying why."""
    result = GenerateResult(0, 0, 0, 0.0, flow_id="", model="", stats={"skipped": reason})
    with AtomicFileSet(output_dir, artifacts.GENERATE_OUTPUTS, kind=SET_KIND, producer=PRODUCER) as files:
        _write_metrics(files[artifacts.GENERATE_METRICS_FILE], result.metrics())
    return result
