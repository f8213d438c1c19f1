"""Stage 3, generate: chunks -> Socratic tutoring conversations through an sdg_hub flow.

The flow (one of this package's, by id, or any sdg_hub flow by registry id or YAML path) runs on the
generation engine (``generation_engine``): every row streams through the flow's blocks on its own,
with ``max_concurrency`` requests in flight for the whole run, bounded Retry-After-aware retries,
and a request that still fails failing only its row. Every finished row is appended durably to a
checkpoint (``generation_checkpoint``); a restarted run with the same checkpoint folder skips what
is done and never writes a record twice. Input rows are (chunk, sample) pairs; the chunk fills the
flow's required columns, and the flow's ``diversity.yaml`` (student persona, request type) is
sampled per row with the seed.

Outputs in ``output_dir``, in input order, written as one set (``records.AtomicFileSet``: readers such
as the filter refuse a folder whose writer was killed while replacing them):

* ``conversations.jsonl``: ``{"id", "messages", "metadata"}`` per conversation; ids are derived from
  the flow id, the chunk id and text, and the sample index (stable across runs and resumes);
* ``failed.jsonl``: one line per input row (chunk x sample) that produced no conversation, with
  ``kind`` and ``reason``; every input row is in exactly one of the two files (unless the run
  stopped early: rows never started are counted, not listed);
* ``generate_metrics.json``: rows, requests, retries, failures by kind, tokens, wall time, req/s.

Before the first request: the chunks file must exist and hold a usable chunk (the same refusal as
``estimate``); the flow's prompts are checked against the columns their blocks pass and rendered in
Jinja's sandbox (``flow_catalog.load_flow``). A chunk whose fields have the wrong type (``text`` null
or an object, ``headings`` a string...) or whose text is longer than ``max_chunk_chars`` is not sent:
its rows are recorded in ``failed.jsonl`` (``invalid_chunk`` / ``chunk_too_large``). When the first
``stop_after_same_failures`` rows of a run all fail the same way (kind and reason), the run stops
instead of failing every row; when rows failed and none produced a conversation, the outputs are
written and :class:`NothingGenerated` is raised (the CLI exits non-zero). Error texts never hold the
API key: whatever an endpoint or proxy echoes is redacted (``endpoint.redact``) before it is stored
or printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm fetches a cost map at import otherwise
# sdg_hub logs every block at INFO with large tables; this stage prints its own progress.
# Set LOG_LEVEL=INFO to see sdg_hub's logs again.
os.environ.setdefault("LOG_LEVEL", "WARNING")

from .endpoint import EndpointConfig, check_model  # noqa: E402
from .filter import FilterOptions  # noqa: E402
from .endpoint import redact  # noqa: E402
from .flow_catalog import flow_fingerprint, icl_defaults, load_diversity, load_flow, resolve_flow  # noqa: E402
from .flow_catalog import package_flows as package_flows  # noqa: E402,F401  (re-exported)
from .generation_checkpoint import Checkpoint  # noqa: E402
from .generation_errors import EndpointUnavailable, GenerateError, NothingGenerated  # noqa: E402,F401  (re-exported)
from .records import AtomicFileSet, check_complete, content_id, dumps, read_json, read_jsonl  # noqa: E402
from . import artifacts

log = logging.getLogger(__name__)

DEFAULT_FLOW_ID = "socratic-single-turn"
TEMP_CHECKPOINT = ".generate-checkpoint"  # in output_dir when no checkpoint_dir is given; removed when done
CONVERSATIONS_FILE = artifacts.CONVERSATIONS_FILE
FAILED_FILE = artifacts.GENERATE_FAILED_FILE
METRICS_FILE = artifacts.GENERATE_METRICS_FILE
OUTPUT_FILES = (CONVERSATIONS_FILE, FAILED_FILE, METRICS_FILE)  # written as one set (records.AtomicFileSet)
SET_KIND = "generate"
PRODUCER = "generation (socratic-sdg generate, the pipeline's generate step)"
DEFAULT_MAX_CHUNK_CHARS = 20_000  # ~5,000 tokens: far above what `socratic-sdg chunk` makes (512 tokens by default)
DEFAULT_MAX_RETRY_AFTER = 60.0
# Row failure kinds of chunks that are not sent at all (their rows are recorded, never generated).
REJECTED_KINDS = ("invalid_chunk", "chunk_too_large")
# Row outcomes that are not errors, whatever their number: a flow's filter dropping a row, the budget.
_NOT_ERRORS = frozenset({"filtered", "request_budget"})


@dataclass(frozen=True)
class GenerateOptions:
    flow_id: str = DEFAULT_FLOW_ID
    flow_yaml_path: str | None = None  # wins over flow_id (e.g. a flow mounted from a ConfigMap)
    max_concurrency: int = 8  # LLM requests in flight at once, for the whole run
    conversations_per_chunk: int = 1
    max_chunks: int = 0  # 0 = all chunks; a small number makes a quick trial run
    batch_size: int = 0  # most rows per call of a non-LLM block (rows ready at once are coalesced); 0 = no limit
    domain: str = "mathematics"
    num_retries: int = 3  # retries per request after the first attempt (backoff with jitter)
    request_timeout: float = 120.0  # seconds per request
    check_endpoint: bool = True
    checkpoint_dir: str | None = None  # progress folder (a PVC path on a cluster); same folder = resume
    save_freq: int = 16  # finished rows between checkpoint writes (also written at least every second)
    seed: int = 42  # persona / request-type sampling and per-request sampling seeds
    runtime_params: dict | None = None  # per-block overrides, e.g. {"generate_tutor_reply": {"max_tokens": 120}}
    columns: dict | None = None  # constant values for input columns a flow requires (override defaults)
    retry_backoff: float = 1.0  # seconds before the first retry (doubles, jittered, capped at 30 s)
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER  # cap on a server's Retry-After (pauses every request); 0 = no pause
    max_chunk_chars: int = DEFAULT_MAX_CHUNK_CHARS  # a chunk with longer text is not sent (its rows fail as chunk_too_large); 0 = no limit
    stop_after_same_failures: int = 5  # the first N rows of a run all failing the same way stop it; 0 = never
    max_total_retries: int = 0  # retries for the whole run; 0 = automatic (a quarter of the requests, at least 50)
    max_consecutive_failures: int = 0  # endpoint failures in a row that stop the run; 0 = automatic
    retry_failed: bool = True  # on resume, retry rows that failed for a transient reason
    transport: str = "direct"  # "direct": HTTP to the OpenAI-compatible endpoint (10x less CPU); "litellm": as sdg_hub does
    # Stop early: no new row starts once target_examples conversations passed the filter's deterministic
    # layers and dedup (judged with target_filter, None = the filter's defaults), or once max_requests
    # requests were sent (also a hard cap: a request beyond it is not sent). 0 = no limit.
    target_examples: int = 0
    max_requests: int = 0
    target_filter: FilterOptions | None = None
    # Fan-out: this run generates from chunks at positions shard_index, shard_index + num_shards, ...
    shard_index: int = 0
    num_shards: int = 1

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise GenerateError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise GenerateError(f"shard_index must be in 0..num_shards-1, got shard {self.shard_index} of {self.num_shards}")
        if self.target_examples < 0 or self.max_requests < 0:
            raise GenerateError("target_examples and max_requests must be 0 (no limit) or positive")
        if self.max_chunk_chars < 0:
            raise GenerateError(f"max_chunk_chars must be 0 (no limit) or positive, got {self.max_chunk_chars}")
        if not self.max_retry_after >= 0:
            raise GenerateError(f"max_retry_after must be 0 or more seconds, got {self.max_retry_after}")
        if self.stop_after_same_failures < 0:
            raise GenerateError(f"stop_after_same_failures must be 0 (never) or positive, got {self.stop_after_same_failures}")

    def for_shard(self, shard_index: int, num_shards: int) -> GenerateOptions:
        """The options of one of ``num_shards`` generation tasks: its share of the run-wide budgets.

        ``max_concurrency``, ``target_examples`` and ``max_requests`` are totals for the endpoint and
        the dataset; each shard gets an even share (the remainder to the first shards), so the shards
        together never send more requests at once than the endpoint is sized for.
        """
        def share(total: int, floor: int = 0) -> int:
            if not total:
                return 0
            return max(floor, total // num_shards + (1 if shard_index < total % num_shards else 0))

        return replace(
            self,
            shard_index=shard_index,
            num_shards=num_shards,
            max_concurrency=share(self.max_concurrency, floor=1),
            target_examples=share(self.target_examples, floor=1),
            max_requests=share(self.max_requests, floor=1),
        )


@dataclass
class GenerateResult:
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

    def kfp_metrics(self) -> dict[str, float]:
        """The numeric metrics, flat (``metrics.log_metric(name, value)`` for each in a KFP component)."""
        flat: dict[str, float] = {}
        for key, value in self.metrics().items():
            if isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                flat[key] = value
            elif isinstance(value, dict):
                flat.update({f"{key}_{k}": v for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        return flat

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


def load_runtime_params(value: str | dict | None) -> dict | None:
    """runtime_params from a CLI flag or pipeline parameter: a dict, JSON text, or a JSON/YAML file path.

    Shape: ``{block_name: {param: value}}``, e.g. ``{"generate_tutor_reply": {"max_tokens": 120}}``.
    """
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        text = value.strip()
        path = Path(text)
        if not text.startswith("{") and path.suffix in (".json", ".yaml", ".yml"):
            if not path.is_file():
                raise GenerateError(f"runtime params file {path} not found")
            text = path.read_text(encoding="utf-8")
        try:
            import yaml

            value = yaml.safe_load(text)  # JSON is YAML
        except Exception as exc:
            raise GenerateError(f"runtime params are not valid JSON/YAML ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items()):
        raise GenerateError('runtime params must map block names to parameters, e.g. {"generate_tutor_reply": {"max_tokens": 120}}')
    return value


def parse_columns(pairs: list[str] | dict | str | None) -> dict | None:
    """Constant input columns from ``NAME=VALUE`` strings (CLI ``--column``), a dict or a JSON object
    text (pipeline parameter, e.g. ``{"rubric": "..."}``)."""
    if not pairs:
        return None
    if isinstance(pairs, str):
        try:
            pairs = json.loads(pairs)
        except json.JSONDecodeError:
            raise GenerateError(f"columns {pairs[:80]!r} are not a JSON object like {{\"NAME\": \"VALUE\"}}") from None
        if not isinstance(pairs, dict):
            raise GenerateError('columns must be a JSON object like {"NAME": "VALUE"}')
    if isinstance(pairs, dict):
        return {str(k): str(v) for k, v in pairs.items()} or None
    columns = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise GenerateError(f"--column {pair!r} is not NAME=VALUE")
        columns[name.strip()] = value
    return columns


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
            timeout=options.request_timeout,
        )
    return flow


# --- input rows -------------------------------------------------------------------------------


def _sample_diversity(axes: dict[str, list], seed: int, chunk_id: str, sample: int) -> dict[str, str]:
    """The diversity columns of one conversation: for each axis, a seeded permutation of its options
    per chunk, indexed by the sample, so the conversations of one chunk differ as long as options last."""
    columns: dict[str, str] = {}
    for axis, options in axes.items():
        order = list(range(len(options)))
        random.Random(content_id(seed, chunk_id, axis)).shuffle(order)
        option = options[order[sample % len(order)]]
        if isinstance(option, dict):
            columns.update({str(k): str(v).strip() for k, v in option.items()})
        else:
            columns[axis] = str(option).strip()
    return columns


def _diversity_columns(axes: dict[str, list] | None) -> tuple[str, ...]:
    """The columns the diversity axes fill (recorded in each conversation's metadata)."""
    columns: list[str] = []
    for axis, options in (axes or {}).items():
        for option in options:
            for column in option.keys() if isinstance(option, dict) else [axis]:
                if str(column) not in columns:
                    columns.append(str(column))
    return tuple(columns)


def check_chunks_file(path: str | os.PathLike[str]) -> Path:
    """The chunks file, or a GenerateError saying in one sentence what is wrong with the path and what makes it."""
    path = Path(path)
    if path.is_dir():
        inside = path / artifacts.CHUNKS_FILE
        hint = f" (did you mean {inside}?)" if inside.is_file() else ""
        raise GenerateError(
            f"{path} is a folder, but --input takes the chunks.jsonl file that `socratic-sdg chunk --output FILE` writes{hint}"
        )
    if not path.is_file():
        raise GenerateError(f"chunks file {path} not found; make it with `socratic-sdg chunk --input CONVERTED_FOLDER --output {path}`")
    return path


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else type(value).__name__


def chunk_problem(chunk: dict, max_chars: int = DEFAULT_MAX_CHUNK_CHARS) -> tuple[str, str] | None:
    """(kind, reason) when a chunk cannot be generated from, None when it can.

    ``invalid_chunk``: ``chunk_id`` missing or not a string/integer, ``text`` missing, not a string or
    blank, ``headings`` not a list of strings, ``source``/``doc_id`` not strings. ``chunk_too_large``:
    text longer than ``max_chars`` characters (0 = no limit).
    """
    chunk_id = chunk.get("chunk_id")
    if "chunk_id" not in chunk:
        return "invalid_chunk", "the chunk has no chunk_id; every line of a chunks.jsonl from `socratic-sdg chunk` has one"
    if not (isinstance(chunk_id, str) and chunk_id.strip() or isinstance(chunk_id, int) and not isinstance(chunk_id, bool)):
        return "invalid_chunk", f"chunk_id is {_json_type(chunk_id) if chunk_id != '' else 'empty'}, not a non-empty string"
    if "text" not in chunk:
        return "invalid_chunk", "the chunk has no text field"
    text = chunk["text"]
    if not isinstance(text, str):
        return "invalid_chunk", f"text is {_json_type(text)}, not a string"
    if not text.strip():
        return "invalid_chunk", "text is empty"
    headings = chunk.get("headings")
    if headings is not None and not (isinstance(headings, list) and all(isinstance(h, str) for h in headings)):
        what = _json_type(headings) if not isinstance(headings, list) else "an array with items that are not strings"
        return "invalid_chunk", f"headings is {what}, not a list of strings"
    for name in ("source", "doc_id"):
        value = chunk.get(name)
        if value is not None and not isinstance(value, str):
            return "invalid_chunk", f"{name} is {_json_type(value)}, not a string"
    if max_chars and len(text) > max_chars:
        return "chunk_too_large", (
            f"text has {len(text):,} characters, more than max_chunk_chars={max_chars:,}; cut it smaller "
            "(`socratic-sdg chunk --max-tokens`) or raise --max-chunk-chars (pipeline: generate_max_chunk_chars)"
        )
    return None


def iter_chunk_rows(
    chunks: Iterable[dict],
    options: GenerateOptions,
    diversity: dict[str, list] | None = None,
    required_columns: list[str] | tuple[str, ...] = (),
) -> Iterator[dict]:
    """One input row per (chunk, sample) with the columns the flow needs, streamed.

    Only the first ``options.max_chunks`` chunks (0 = all) and, of those, this shard's (positions
    ``shard_index + k * num_shards``). Filled from the chunk (``document``/``text``,
    ``document_outline``, ``domain``), the flow's diversity axes, the bundled ICL example for
    ``icl_*`` columns the flow requires, and ``options.columns`` (which win). Duplicate chunks (same
    id and text) are kept once.

    A chunk that :func:`chunk_problem` rejects yields its rows without the flow's columns and with
    ``rejected: {"kind", "reason"}``: they are recorded as failed, never sent.
    """
    icl = icl_defaults() if any(c.startswith("icl_") for c in required_columns) else {}
    constants = {k: str(v) for k, v in (options.columns or {}).items()}
    seen = set()
    for position, chunk in enumerate(chunks):
        if options.max_chunks and position >= options.max_chunks:
            break
        if position % options.num_shards != options.shard_index:
            continue
        problem = chunk_problem(chunk, options.max_chunk_chars)
        if problem is not None:
            kind, reason = problem
            chunk_id = chunk.get("chunk_id")
            text = chunk.get("text")
            if isinstance(text, str) and len(text) > 4096:  # no copy of a huge text to hash: its length and ends identify it
                text = [len(text), text[:2048], text[-2048:]]
            for sample in range(options.conversations_per_chunk):
                row_id = content_id(chunk_id, sample, text)
                if row_id in seen:
                    continue
                seen.add(row_id)
                yield {
                    "row_id": row_id,
                    "chunk_id": chunk_id,
                    "sample_index": sample,
                    "rejected": {"kind": kind, "reason": f"record {position + 1} of the chunks file: {reason}" if kind == "invalid_chunk" else reason},
                }
            continue
        text = chunk["text"]
        outline = " > ".join(chunk.get("headings") or []) or chunk.get("source") or ""
        for sample in range(options.conversations_per_chunk):
            row_id = content_id(chunk["chunk_id"], sample, text)
            if row_id in seen:
                continue
            seen.add(row_id)
            row = {
                "row_id": row_id,
                "chunk_id": chunk["chunk_id"],
                "doc_id": chunk.get("doc_id") or "",
                "source": chunk.get("source") or "",
                "sample_index": sample,
                "document": text,
                "text": text,
                "document_outline": outline,
                "domain": options.domain,
            }
            row.update({k: v for k, v in icl.items() if k in required_columns})
            if diversity:
                row.update(_sample_diversity(diversity, options.seed, chunk["chunk_id"], sample))
            row.update(constants)
            yield row


def chunk_rows(chunks: Iterable[dict], options: GenerateOptions, diversity: dict[str, list] | None = None, required_columns=()) -> list[dict]:
    """:func:`iter_chunk_rows` as a list."""
    return list(iter_chunk_rows(chunks, options, diversity, required_columns))


def _check_columns(flow, rows: list[dict], required: list[str]) -> None:
    rows = [r for r in rows if "rejected" not in r]
    missing = [c for c in required if rows and c not in rows[0]]
    if missing:
        raise GenerateError(
            f"the flow {flow.metadata.id or flow.metadata.name!r} needs column(s) {', '.join(missing)} that the generation "
            "stage cannot fill from chunks (it fills document, text, document_outline, domain, icl_* and the flow's "
            "diversity axes); give each a value with --column NAME=VALUE (pipeline: generate_columns) or pick another flow"
        )


def _check_max_tokens(steps, model_entry: dict) -> None:
    limit = model_entry.get("max_model_len")
    if not isinstance(limit, int):
        return
    for step in steps:
        if step.mode != "llm":
            continue
        wanted = step.kwargs.get("max_completion_tokens") or step.kwargs.get("max_tokens")
        if isinstance(wanted, int) and wanted > limit:  # vLLM refuses that (HTTP 400); it lowers smaller values itself
            raise GenerateError(
                f"block {step.name!r} asks for max_tokens={wanted} but the model serves a context of {limit} tokens "
                f"(max_model_len), so every request would be refused; lower it with runtime_params "
                f'{{"{step.name}": {{"max_tokens": {max(16, limit // 4)}}}}}'
            )


# --- output records ---------------------------------------------------------------------------

_METADATA_SKIP = {"row_id", "chunk_id", "doc_id", "source", "sample_index", "document", "text", "document_outline", "domain"}


def _turns(row: dict) -> list[dict] | None:
    if isinstance(row.get("messages"), list):
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    if isinstance(row.get("student_turn_1"), str):
        messages, turn = [], 1
        while isinstance(row.get(f"student_turn_{turn}"), str):
            messages.append({"role": "user", "content": row[f"student_turn_{turn}"].strip()})
            tutor = row.get(f"tutor_turn_{turn}")
            if not isinstance(tutor, str):
                return None
            messages.append({"role": "assistant", "content": tutor.strip()})
            turn += 1
        return messages
    student = row.get("student_message", row.get("question"))
    tutor = row.get("tutor_reply", row.get("response"))
    if isinstance(student, str) and isinstance(tutor, str):
        return [{"role": "user", "content": student.strip()}, {"role": "assistant", "content": tutor.strip()}]
    return None


# Flows that plant a wrong student attempt, and the student turn it is in (socratic-multi-turn writes
# student_turn_2 from prompts/student_attempt.yaml). The filter's praises_wrong_answer check reads
# metadata.wrong_student_turns: a tutor who calls that attempt right teaches the opposite of tutoring.
PLANTED_MISTAKES = {"socratic-multi-turn": 2}


def to_conversation(row: dict, flow_id: str, model: str, index: int = 0, diversity_columns: tuple[str, ...] = ()) -> dict | None:
    """Map one flow output row to a ``{id, messages, metadata}`` record (None when it has no dialogue).

    ``index`` numbers the conversations one input row produced (flows that expand rows make several).
    """
    messages = _turns(row)
    if not messages or any(not isinstance(m["content"], str) or not m["content"].strip() for m in messages):
        return None
    metadata = {
        "chunk_id": row["chunk_id"],
        "doc_id": row.get("doc_id", ""),
        "source": row.get("source", ""),
        "sample_index": int(row.get("sample_index", 0)),
        "model": model,
        "flow_id": flow_id,
    }
    if isinstance(row.get("reference_answer"), str):
        metadata["reference_answer"] = row["reference_answer"].strip()
    turn = PLANTED_MISTAKES.get(flow_id)
    if turn is not None and isinstance(row.get(f"student_turn_{turn}"), str) and len(messages) > 2 * (turn - 1):
        metadata["wrong_student_turns"] = [2 * (turn - 1)]  # message index of that student turn
    persona = {c: row[c] for c in diversity_columns if isinstance(row.get(c), str)}
    if persona:
        metadata["diversity"] = persona
    return {"id": content_id(flow_id, row["row_id"], index), "messages": messages, "metadata": metadata}


def _row_entry(row: dict, outputs: list[dict], failure: tuple[str, str, str] | None, truncated: list[str], flow_id: str, model: str, diversity_columns) -> dict:
    conversations = []
    for index, output in enumerate(outputs):
        conversation = to_conversation(output, flow_id, model, index, diversity_columns)
        if conversation is not None:
            if truncated:
                conversation["metadata"]["truncated"] = truncated
            conversations.append(conversation)
    base = {"row_id": row["row_id"], "chunk_id": row["chunk_id"], "sample_index": row["sample_index"]}
    if conversations:
        entry = {**base, "status": "done", "conversations": conversations}
        if failure:
            entry["partial_failure"] = {"kind": failure[0], "reason": failure[1]}
        return entry
    if failure is None:
        failure = ("no_conversation", "the flow produced no conversation (missing or empty turns) for this row", "")
    kind, reason, block = failure
    return {**base, "status": "failed", "kind": kind, "reason": redact(reason), "block": block}


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


def _seconds(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") + "s" if value < 10 else f"{value:.0f}s"


def _transport(options: GenerateOptions, endpoint: EndpointConfig):
    from .generation_transport import DirectTransport, LitellmTransport

    if options.transport == "direct":
        return DirectTransport(endpoint.api_base, endpoint.api_key, endpoint.model)
    if options.transport == "litellm":
        return LitellmTransport()
    raise GenerateError(f"transport must be 'direct' or 'litellm', got {options.transport!r}")


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


def run(
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    options: GenerateOptions = GenerateOptions(),
    endpoint: EndpointConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> GenerateResult:
    """Generate conversations for the chunks in ``input_path`` (chunks.jsonl) into ``output_dir``.

    Streams: the chunks are read as rows are started, finished rows go to the checkpoint on disk,
    and the outputs are written from it one row at a time, so memory does not grow with the input.
    Raises :class:`NothingGenerated` (after writing the outputs) when rows failed and none produced
    a conversation.
    """
    from .generation_engine import TERMINAL_ROW_KINDS, FlowRunner, LLMGateway, RequestPolicy, StopRun, build_steps, run_rows

    started = time.monotonic()
    input_path = check_chunks_file(input_path)
    endpoint = endpoint or EndpointConfig.from_env()
    flow_path = resolve_flow_path(options)
    flow = _load_flow(flow_path, endpoint, options)
    flow_id = flow.metadata.id or options.flow_id
    diversity = load_diversity(flow_path)
    required = list(getattr(flow.metadata.dataset_requirements, "required_columns", None) or [])

    def rows() -> Iterator[dict]:
        return iter_chunk_rows(read_jsonl(input_path), options, diversity, required)

    first_usable = next((row for row in rows() if "rejected" not in row), None)
    if first_usable is None:
        _refuse_unusable_input(input_path, options)
    _check_columns(flow, [first_usable] if first_usable else [], required)
    diversity_columns = _diversity_columns(diversity)
    steps = build_steps(flow, options.runtime_params)
    transport = _transport(options, endpoint)
    if options.check_endpoint:
        _check_max_tokens(steps, check_model(endpoint))

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    temporary = not options.checkpoint_dir
    checkpoint = Checkpoint(
        options.checkpoint_dir or out / TEMP_CHECKPOINT,
        manifest={
            "flow_id": flow_id,
            "flow_sha": flow_fingerprint(flow_path),
            "model": endpoint.model,
            "seed": options.seed,
            "domain": options.domain,
            "runtime_params": json.dumps(options.runtime_params or {}, sort_keys=True),
            "columns": json.dumps(options.columns or {}, sort_keys=True),
        },
        save_freq=options.save_freq,
        discard_mismatch=temporary,
    )
    entries = checkpoint.open()
    nothing_generated: str | None = None
    try:
        def finished(row: dict) -> bool:
            entry = entries.get(row["row_id"])
            if entry is None:
                return False
            return entry["status"] == "done" or entry.get("kind") in TERMINAL_ROW_KINDS or not options.retry_failed

        total_rows = todo_rows = rejected_rows = 0
        for row in rows():
            total_rows += 1
            if "rejected" in row:
                rejected_rows += 1
                continue
            todo_rows += not finished(row)
        resumed = total_rows - rejected_rows - todo_rows
        if progress and resumed:
            progress(f"[generate] resuming from {checkpoint.directory}: {resumed} of {total_rows} rows already done")
        if progress and rejected_rows:
            progress(f"[generate] {rejected_rows} of {total_rows} rows come from chunks that cannot be sent (wrong field types or too long): recorded in "
                     f"{FAILED_FILE}")

        tracker = None
        if options.target_examples:
            from .generation_target import AcceptanceTracker

            tracker = AcceptanceTracker(options.target_filter)
            for entry in checkpoint.iter_entries():  # what a resumed run already has counts
                if entry.get("status") == "done":
                    tracker.add(entry["conversations"])

        llm_steps = sum(1 for s in steps if s.mode == "llm")
        expected_requests = max(1, todo_rows * llm_steps)
        policy = RequestPolicy(
            max_concurrency=options.max_concurrency,
            num_retries=max(0, options.num_retries),
            request_timeout=options.request_timeout,
            backoff_base=options.retry_backoff,
            max_retry_after=options.max_retry_after,
            retry_budget=options.max_total_retries or max(50, expected_requests // 4),
            max_consecutive_failures=options.max_consecutive_failures or max(20, 2 * options.max_concurrency),
            seed=options.seed,
            max_requests=options.max_requests,
        )
        counts = Counter()
        gateway_box: dict = {}
        stop_reason: list[str] = []
        last_report = [time.monotonic()]
        # The first rows (input order) this run starts, and how each ended ("running", "ok" or the failure):
        # all failed alike, and no row succeeded anywhere, means every row would fail alike.
        first_rows: dict[str, object] = {}
        same_failure: list[str] = []

        def should_start(active_rows: int) -> bool:
            gateway = gateway_box["gateway"]
            if tracker is not None and tracker.expected(active_rows) >= options.target_examples:
                stop_reason[:] = ["target_examples"]
                return False
            # a new row may need llm_steps requests, and so may each row still in the flow
            if options.max_requests and gateway.stats.requests + (active_rows + 1) * llm_steps > options.max_requests:
                stop_reason[:] = ["max_requests"]
                return False
            return True

        def on_pause(asked: float, paused: float) -> None:
            if progress:
                capped = f", more than --max-retry-after {_seconds(options.max_retry_after)}" if asked > paused else ""
                progress(f"[generate] the endpoint asked to wait {_seconds(asked)} (Retry-After{capped}): no request is sent for {_seconds(paused)}")

        def check_same_failure(entry: dict) -> None:
            limit = options.stop_after_same_failures
            if not limit or entry["row_id"] not in first_rows or same_failure:
                return
            failed = entry["status"] == "failed" and entry["kind"] not in _NOT_ERRORS | {"context_length"}  # row-specific by nature
            # the same way: the same kind and message, numbers aside (lengths, counts, ids vary by row)
            first_rows[entry["row_id"]] = (entry["kind"], re.sub(r"\d+", "#", entry["reason"])) if failed else "ok"
            outcomes = list(first_rows.values())
            if len(outcomes) < limit or counts["done"] or not all(isinstance(o, tuple) for o in outcomes) or len(set(outcomes)) != 1:
                return
            same_failure.append(f"the first {limit} rows all failed the same way ({entry['kind']}: {entry['reason']})")
            stop_reason[:] = ["same_failure"]
            if progress:
                progress(f"[generate] stopped: {same_failure[0]}; no other row is started, since each would fail alike")
            raise StopRun(same_failure[0])

        async def main():
            gateway = LLMGateway(policy, transport, api_base=endpoint.api_base, on_pause=on_pause)
            gateway_box["gateway"] = gateway
            runner = FlowRunner(steps, gateway, seed=options.seed, max_group=options.batch_size)

            async def on_row_done(row: dict, result) -> None:
                entry = _row_entry(row, result.outputs, result.failure, result.truncated, flow_id, endpoint.model, diversity_columns)
                checkpoint.add(entry)
                counts[entry["status"]] += 1
                counts["conversations"] += len(entry.get("conversations", []))
                if tracker is not None and entry["status"] == "done":
                    tracker.add(entry["conversations"])
                if checkpoint.due():
                    await asyncio.to_thread(checkpoint.write, checkpoint.take_pending())
                now = time.monotonic()
                if progress and now - last_report[0] >= 5.0:
                    last_report[0] = now
                    elapsed = now - started
                    target = f", {tracker.accepted}/{options.target_examples} pass the filter" if tracker else ""
                    paused = gateway.paused_for()
                    pause = f", paused {_seconds(paused)} more (the endpoint asked to wait {_seconds(gateway.retry_after_asked)})" if paused > 0 else ""
                    progress(
                        f"[generate {counts['done'] + counts['failed']}/{todo_rows}] {counts['conversations']} conversations{target}, "
                        f"{counts['failed']} failed, {gateway.stats.requests / max(elapsed, 1e-9):.1f} req/s, "
                        f"{gateway.limiter.active} in flight{pause}, {elapsed:.0f}s"
                    )
                check_same_failure(entry)

            def todo() -> Iterator[dict]:
                for row in rows():
                    if "rejected" not in row and not finished(row):
                        if len(first_rows) < options.stop_after_same_failures:
                            first_rows.setdefault(row["row_id"], "running")
                        yield row


            return await run_rows(runner, todo(), on_row_done, max_active_rows=max(16, 4 * options.max_concurrency), should_start=should_start)

        try:
            with _terminate_gracefully():
                report = _run_coroutine(main)
        except EndpointUnavailable as exc:
            checkpoint.flush()
            where = "" if temporary else f" (progress saved in {checkpoint.directory})"
            raise EndpointUnavailable(f"{exc}{where}") from None
        checkpoint.flush()

        stopped_early = stop_reason[0] if report and report.stopped_early and stop_reason else None
        output_rows = failed_rows = not_started = 0
        seen_ids: set[str] = set()
        rows_failed_by_kind: Counter = Counter()
        with AtomicFileSet(out, OUTPUT_FILES, kind=SET_KIND, producer=PRODUCER) as files:
            conversations_out, failed_out = files[CONVERSATIONS_FILE], files[FAILED_FILE]
            for row in rows():
                if "rejected" in row:  # never sent
                    entry = {"status": "failed", **row["rejected"], "block": ""}
                else:
                    entry = entries.get(row["row_id"])
                if entry is None and stopped_early:
                    not_started += 1  # never started (or cancelled): the run stopped first
                    continue
                if entry is None:  # cannot happen after a complete run; never lose a row silently
                    entry = {"status": "failed", "kind": "not_run", "reason": "the row was not processed", "block": ""}
                if entry["status"] == "done":
                    for conversation in checkpoint.read_entry(row["row_id"])["conversations"]:
                        if conversation["id"] not in seen_ids:
                            seen_ids.add(conversation["id"])
                            conversations_out.write(dumps(conversation) + "\n")
                            output_rows += 1
                else:
                    failed_rows += 1
                    rows_failed_by_kind[entry["kind"]] += 1
                    failed = {
                        "row_id": row["row_id"],
                        "chunk_id": row["chunk_id"],
                        "sample_index": row["sample_index"],
                        "kind": entry["kind"],
                        "reason": redact(entry["reason"]),
                        "block": entry.get("block", ""),
                    }
                    failed_out.write(dumps(failed) + "\n")

            gateway = gateway_box.get("gateway")
            request_stats = gateway.stats.as_dict() if gateway else {}
            wall = time.monotonic() - started
            engine_seconds = report.wall_seconds if report else 0.0
            stats = {
                "rows_done": total_rows - failed_rows - not_started,
                "rows_resumed": resumed,
                "rows_generated_this_run": counts["done"] + counts["failed"],
                "rows_failed_by_kind": dict(sorted(rows_failed_by_kind.items())),
                "rows_rejected": rejected_rows,
                "rows_not_started": not_started,
                "stopped_early": stopped_early,
                "target_examples": options.target_examples,
                "max_requests": options.max_requests,
                "prefilter_accepted": tracker.accepted if tracker else None,
                **request_stats,
                "max_concurrency": options.max_concurrency,
                "num_shards": options.num_shards,
                "rows_per_block_call": round(report.rows_per_block_call, 2) if report else 0.0,
                "generation_seconds": round(engine_seconds, 3),
                "requests_per_second": round(request_stats.get("requests", 0) / engine_seconds, 3) if engine_seconds > 0 else 0.0,
                "mean_in_flight": round(report.mean_in_flight, 3) if report else 0.0,
                "max_in_flight": report.max_in_flight if report else 0,
                "wall_time_seconds": round(wall, 3),
                "checkpoint_dir": None if temporary else str(checkpoint.directory),
            }
            result = GenerateResult(
                input_rows=total_rows,
                output_rows=output_rows,
                failed_rows=failed_rows,
                execution_time_seconds=wall,
                flow_id=flow_id,
                model=endpoint.model,
                stats=stats,
            )
            _write_metrics(files[METRICS_FILE], result.metrics())
        if progress:
            progress(
                f"[generate {total_rows}/{total_rows}] {output_rows} conversations, {failed_rows} failed, "
                + (f"{not_started} not started ({stopped_early} reached), " if stopped_early and stopped_early != "same_failure" else "")
                + (f"{not_started} not started or cancelled (stopped: the first rows all failed alike), " if stopped_early == "same_failure" else "")
                + f"{stats['requests_per_second']:.1f} req/s, {wall:.0f}s"
            )
        error_rows = sum(n for kind, n in rows_failed_by_kind.items() if kind not in _NOT_ERRORS)
        if not output_rows and error_rows:
            where = out / FAILED_FILE
            if same_failure:
                nothing_generated = (
                    f"no conversation from {input_path}: {same_failure[0]}, so the run stopped; fix that (the rows are in {where}) and run "
                    "again"
                )
            else:
                kinds = ", ".join(f"{k} {v}" for k, v in sorted(rows_failed_by_kind.items()))
                nothing_generated = f"no conversation from {input_path}: all {failed_rows} rows failed ({kinds}); fix the cause given in {where} and run again"
    except BaseException:
        checkpoint.close()
        raise
    if temporary:
        checkpoint.remove()
    else:
        checkpoint.close()
    if nothing_generated:
        raise NothingGenerated(nothing_generated, result)
    return result


def _write_metrics(handle, metrics: dict) -> None:
    """generate_metrics.json as records.write_json writes JSON."""
    json.dump(metrics, handle, ensure_ascii=False, indent=2, sort_keys=True)
    handle.write("\n")


def write_nothing_generated(output_dir: str | os.PathLike[str], reason: str) -> GenerateResult:
    """Empty outputs for a run that sends no request (the pipeline's estimate-only mode), saying why."""
    result = GenerateResult(0, 0, 0, 0.0, flow_id="", model="", stats={"skipped": reason})
    with AtomicFileSet(output_dir, OUTPUT_FILES, kind=SET_KIND, producer=PRODUCER) as files:
        _write_metrics(files[METRICS_FILE], result.metrics())
    return result


# --- fan-out ----------------------------------------------------------------------------------

# How each run-wide metric of the shards combines: the slowest shard's time, the first shard's
# labels; everything else (counts, tokens, concurrency, failures by kind) adds up.
_SLOWEST = frozenset({"execution_time_seconds", "wall_time_seconds", "generation_seconds"})
_RECOMPUTED = frozenset({"requests_per_second", "mean_request_seconds", "rows_per_block_call", "checkpoint_dir", "stopped_early"})


def _combine_metrics(parts: Sequence[dict]) -> dict:
    combined: dict = {}
    for part in parts:
        for key, value in part.items():
            if key in _RECOMPUTED:
                continue
            if key in _SLOWEST:
                combined[key] = max(combined.get(key, 0.0), value)
            elif isinstance(value, dict):
                into = combined.setdefault(key, {})
                for k, v in value.items():
                    into[k] = into.get(k, 0) + v
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                combined[key] = combined.get(key, 0) + value
            else:
                combined.setdefault(key, value)
    seconds = combined.get("generation_seconds", 0.0)
    succeeded = sum(p.get("requests_succeeded", 0) for p in parts)
    combined["requests_per_second"] = round(combined.get("requests", 0) / seconds, 3) if seconds else 0.0
    combined["mean_request_seconds"] = (
        round(sum(p.get("mean_request_seconds", 0.0) * p.get("requests_succeeded", 0) for p in parts) / succeeded, 4) if succeeded else 0.0
    )
    combined["stopped_early"] = next((p["stopped_early"] for p in parts if p.get("stopped_early")), None)
    combined["checkpoint_dirs"] = [p["checkpoint_dir"] for p in parts if p.get("checkpoint_dir")]
    combined["num_shards"] = len(parts)
    return combined


def merge(shard_dirs: Sequence[str | os.PathLike[str]], output_dir: str | os.PathLike[str], chunks_path: str | os.PathLike[str]) -> GenerateResult:
    """Merge the outputs of generation shards into the files one run would have written.

    Records are put back in chunk order (the order of ``chunks_path``, then sample index), streamed
    through a k-way merge of the shards' files, so the ids and their order are the same whatever
    the number of shards.
    """
    if not shard_dirs:
        raise GenerateError("no generation shard to merge")
    positions: dict[str, int] = {}
    for position, chunk in enumerate(read_jsonl(chunks_path)):
        positions.setdefault(str(chunk.get("chunk_id")), position)
    last = len(positions)

    def order(record: dict) -> tuple[int, int]:
        where = record.get("metadata", record)  # conversations keep it in metadata, failed rows at the top
        return positions.get(str(where.get("chunk_id")), last), int(where.get("sample_index", 0))

    dirs = [Path(d) for d in shard_dirs]
    for folder in dirs:
        check_complete(folder)  # a shard whose writer was killed while replacing its files
    result = GenerateResult.from_metrics(_combine_metrics([read_json(d / METRICS_FILE) for d in dirs]))
    with AtomicFileSet(output_dir, OUTPUT_FILES, kind=SET_KIND, producer=PRODUCER) as files:
        for name in (CONVERSATIONS_FILE, FAILED_FILE):
            seen: set[str] = set()
            for record in heapq.merge(*(read_jsonl(d / name) for d in dirs), key=order):
                key = record.get("id") or record.get("row_id")
                if key in seen:
                    continue
                seen.add(key)
                files[name].write(dumps(record) + "\n")
        _write_metrics(files[METRICS_FILE], result.metrics())
    return result
