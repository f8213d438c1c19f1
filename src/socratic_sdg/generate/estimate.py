"""Dry run: how many requests, tokens and how much time a target number of accepted examples costs.

From the chunks file (streamed: chunks, rows, tokens), the flow (LLM requests per row, ``max_tokens``
per LLM block) and, unless ``probe_rows`` is 0, a short probe of the endpoint: the real generation
(:func:`socratic_sdg.generate.run`) on a few chunks spread over the file (every k-th, offset by the
seed), then the real deterministic filter (:func:`socratic_sdg.filtering.run`, dedup off) on what it
generated. The probe measures requests and tokens per row, request latency, failures and the
filter's acceptance rate; the estimate extrapolates them to the target::

    rows needed = ceil(target / (conversations per row x acceptance rate)), at most the rows available
    requests    = rows x requests per row          tokens = rows x tokens per row
    time        ~ requests x mean request latency / requests in flight (max_concurrency)

Without a probe (``probe_rows=0``, no network), the flow's LLM blocks give the requests per row, the
chunk sizes plus the prompt templates the prompt tokens, ``max_tokens`` an upper bound on completion
tokens, and :data:`ASSUMED_ACCEPTANCE` the acceptance rate: assumptions, said as such; no time.

Outputs: an :class:`EstimateResult` (``summary_lines``, ``markdown``, ``kfp_metrics``, ``as_dict``),
written to ``estimate.json`` when an ``output_dir`` is given (with the probe's files in ``probe/``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import filtering
from .. import generate
from ..endpoint import EndpointConfig
from .errors import GenerateError, NothingGenerated
from ..options import option
from ..results import StageResult
from .options import GenerateOptions, Shard
from ..records import content_id, read_jsonl, write_json, write_jsonl
from .. import artifacts

ESTIMATE_FILE = artifacts.ESTIMATE_FILE
PROBE_DIR = "probe"
DEFAULT_TARGET_EXAMPLES = 1000
ASSUMED_ACCEPTANCE = 0.5  # without a probe: share of generated conversations the filter is assumed to accept
CHARS_PER_TOKEN = 4  # chunks without num_tokens, and prompt templates: len(text) / 4 tokens
# GenerateOptions fields that limit or split a whole run: reset to their defaults for the probe.


@dataclass(frozen=True)
class EstimateOptions:
    target_examples: int = option(0, f"Accepted examples wanted (0 = {DEFAULT_TARGET_EXAMPLES}).")
    probe_rows: int = option(
        8, "Rows generated and filtered to measure the endpoint and the acceptance rate, rounded up to whole chunks "
        "(0 = counts and assumptions only, no request).")
    generate_options: GenerateOptions = field(default_factory=GenerateOptions)  # the run to estimate (flow, concurrency...)
    filter_options: filtering.FilterOptions = field(default_factory=lambda: filtering.FilterOptions(dedup=False))
    assumed_acceptance: float = ASSUMED_ACCEPTANCE  # used only without a probe

    def __post_init__(self) -> None:
        if self.target_examples == 0:  # 0: the pipeline's "no target" for generation, and a sensible size to estimate
            object.__setattr__(self, "target_examples", DEFAULT_TARGET_EXAMPLES)
        if self.target_examples < 1:
            raise GenerateError(f"target_examples must be at least 1, got {self.target_examples}")
        if self.probe_rows < 0:
            raise GenerateError(f"probe_rows must be 0 (no probe) or more, got {self.probe_rows}")
        if not 0 < self.assumed_acceptance <= 1:
            raise GenerateError(f"assumed_acceptance must be in (0, 1], got {self.assumed_acceptance}")
        if self.generate_options.conversations_per_chunk < 1:
            raise GenerateError(f"conversations_per_chunk must be at least 1, got {self.generate_options.conversations_per_chunk}")


@dataclass
class EstimateResult(StageResult):
    target_examples: int
    basis: str  # "probe" (measured) or "assumed" (no probe)
    flow_id: str
    model: str  # "" without a probe
    chunks: int  # distinct chunks in the file (or the first max_chunks)
    chunk_tokens: int
    conversations_per_chunk: int
    rows_available: int  # chunks x conversations_per_chunk
    llm_blocks: dict[str, int | None]  # LLM block -> max_tokens (None: not set)
    max_concurrency: int
    # per row / per request: measured by the probe, or assumed
    requests_per_row: float
    conversations_per_row: float
    acceptance_rate: float
    prompt_tokens_per_request: float
    completion_tokens_per_request: float | None  # without a probe: the blocks' max_tokens (an upper bound)
    mean_request_seconds: float | None  # None without a probe
    # the extrapolation (None when the probe accepted nothing)
    estimable: bool
    rows_needed: int | None = None
    rows: int | None = None  # rows to generate: rows_needed, at most rows_available
    requests: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    time_seconds: float | None = None  # None without a probe
    expected_examples: int | None = None  # accepted examples those rows should give
    reachable_examples: int | None = None  # accepted examples all the chunks can give
    target_reachable: bool = False
    suggested_conversations_per_chunk: int | None = None  # to reach the target when the chunks cannot
    tutor_candidates: int = 1
    requests_per_accepted: float | None = None  # the cost of one accepted example (best of k trades these)
    tokens_per_accepted: float | None = None  # prompt + completion; None when completions are unknown
    probe: dict | None = None  # what the probe measured (rows, requests, tokens, failures, filter reasons...)
    notes: list[str] = field(default_factory=list)  # assumptions and warnings, in words

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def metrics(self) -> dict:
        return self.as_dict()

    def kfp_metrics(self) -> dict[str, float]:
        """Flat numbers (``metrics.log_metric(name, value)`` for each in a KFP component); booleans as 0/1."""
        flat: dict[str, float] = {}
        for key, value in [*self.as_dict().items(), *((f"probe_{k}", v) for k, v in (self.probe or {}).items())]:
            if isinstance(value, bool):
                flat[key] = float(value)
            elif isinstance(value, (int, float)):
                flat[key] = value
        return flat

    def _rows(self) -> list[tuple[str, str]]:
        measured = "measured by the probe" if self.basis == "probe" else "assumed, no probe"
        rows = [
            ("target", f"{self.target_examples} accepted examples (flow {self.flow_id}" + (f", model {self.model})" if self.model else ")")),
            ("chunks", f"{self.chunks} ({self.chunk_tokens} tokens) -> {self.rows_available} rows at {self.conversations_per_chunk} conversation(s) per chunk"),
            ("per row", f"{self.requests_per_row:.2f} requests, {self.conversations_per_row:.2f} conversations, "
                        f"{self.acceptance_rate:.0%} accepted by the filter ({measured})"),
        ]
        if self.probe:
            p = self.probe
            rows.append(("probe", f"{p['rows']} rows from {p['chunks']} chunks: {p['requests']} requests, {p['failed_rows']} rows failed, "
                                  f"{p['conversations']} conversations, {p['accepted']} accepted"))
            if p.get("drop_reasons"):
                rows.append(("probe rejected", ", ".join(f"{k} {v}" for k, v in p["drop_reasons"].items())))
        if not self.estimable:
            rows.append(("estimate", "none: the probe gave no accepted example, so no number of rows reaches the target"))
            return rows
        reach = "" if self.target_reachable else f"; the target needs {self.rows_needed} rows: NOT reachable (see the note)"
        rows.append(("rows", f"{self.rows} of {self.rows_available} available -> ~{self.expected_examples} accepted examples{reach}"))
        rows.append(("requests", f"{self.requests}"))
        if self.requests_per_accepted is not None:
            tokens = f", {self.tokens_per_accepted:.0f} tokens" if self.tokens_per_accepted is not None else ""
            rows.append(("per accepted", f"{self.requests_per_accepted:.2f} requests{tokens}"
                                         + (f" (best of {self.tutor_candidates} tutor replies)" if self.tutor_candidates > 1 else "")))
        completion = f"{self.completion_tokens}" if self.completion_tokens is not None else "?"
        per_request = f"{self.prompt_tokens_per_request:.0f} + " + (
            f"{self.completion_tokens_per_request:.0f}" if self.completion_tokens_per_request is not None else "?"
        )
        bound = "" if self.basis == "probe" else ", completion at most max_tokens"
        rows.append(("tokens", f"{self.prompt_tokens} prompt + {completion} completion ({per_request} per request{bound})"))
        if self.time_seconds is None:
            rows.append(("time", "unknown without a probe (run with probe_rows > 0)"))
        else:
            rows.append(("time", f"~{_duration(self.time_seconds)} at {self.max_concurrency} requests in flight "
                                 f"({self.mean_request_seconds:.2f}s per request in the probe; an estimate)"))
        return rows

    def summary_lines(self) -> list[str]:
        """A short human summary for the CLI."""
        return [f"{label:<18} {text}" for label, text in self._rows()] + [f"note               {note}" for note in self.notes]

    def markdown(self) -> str:
        """A short Markdown report (a KFP Markdown artifact)."""
        lines = [f"# Estimate for {self.target_examples} accepted examples", "", "| | |", "|---|---|"]
        lines += [f"| {label} | {text} |" for label, text in self._rows()]
        if self.notes:
            lines += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --- inputs -------------------------------------------------------------------------------------


def _chunk_records(path: Path, max_chunks: int, max_chunk_chars: int):
    """(position in the file, chunk) for every chunk generate would send (``generate.chunk_problem``)."""
    for index, chunk in enumerate(read_jsonl(path)):
        if max_chunks and index >= max_chunks:
            return
        if generate.chunk_problem(chunk, max_chunk_chars) is None:
            yield index, chunk


def _scan_chunks(path: Path, max_chunks: int, max_chunk_chars: int, notes: list[str]) -> tuple[int, int, int]:
    """(usable records, distinct chunks, tokens of the distinct chunks), streaming the file; the
    chunks generate would reject are counted in a note. Refuses a file generate would refuse."""
    path = generate.check_chunks_file(path)
    records, rejected, tokens, seen = 0, 0, 0, set()
    first = ""
    for index, chunk in enumerate(read_jsonl(path)):
        if max_chunks and index >= max_chunks:
            break
        problem = generate.chunk_problem(chunk, max_chunk_chars)
        if problem is not None:
            rejected += 1
            first = first or f"record {index + 1}: {problem[1]}"
            continue
        records += 1
        key = content_id(chunk["chunk_id"], chunk["text"])
        if key in seen:
            continue
        seen.add(key)
        count = chunk.get("num_tokens")
        tokens += count if isinstance(count, int) and not isinstance(count, bool) else math.ceil(len(chunk["text"]) / CHARS_PER_TOKEN)
    if not records and not rejected:
        raise GenerateError(f"chunks file {path} holds no chunks; make it with `socratic-sdg chunk` (is the conversion output empty?)")
    if not records:
        raise GenerateError(
            f"chunks file {path} holds no usable chunk: all {rejected} were rejected (first, {first}); "
            "is it a chunks.jsonl from `socratic-sdg chunk`?"
        )
    if rejected:
        notes.append(f"{rejected} chunk(s) cannot be generated from and are not counted (first, {first})")
    return records, len(seen), tokens


def spread_indices(total: int, count: int, seed: int) -> list[int]:
    """``count`` positions out of ``total``, evenly spaced over all of them, the offset drawn from ``seed``."""
    count = min(count, total)
    if count <= 0:
        return []
    stride = total / count
    offset = random.Random(seed).random() * stride
    return sorted({int(offset + i * stride) for i in range(count)})


def _columns(value) -> list:
    return [value] if isinstance(value, str) else list(value or [])


def _flow_plan(options: GenerateOptions) -> tuple[str, dict[str, int | None], dict[str, int], set[str]]:
    """(flow id, LLM block -> max_tokens, LLM block -> prompt template tokens, the tutor blocks), from
    the flow as generate loads it."""
    from .candidates import tutor_steps
    from .catalog import load_flow
    from .runner import build_steps

    path = generate.resolve_flow_path(options)
    flow = load_flow(path)  # the prompts checked as generate checks them
    steps = build_steps(flow, options.runtime_params)
    max_tokens, template_tokens = {}, {}
    for step in steps:
        if step.mode != "llm":
            continue
        wanted = step.kwargs.get("max_completion_tokens") or step.kwargs.get("max_tokens")
        max_tokens[step.name] = wanted if isinstance(wanted, int) else None
        builder = next((s.block for s in steps if step.input_col in _columns(getattr(s.block, "output_cols", None))), None)
        template = getattr(builder, "prompt_config_path", None)
        has_template = bool(template) and Path(template).is_file()
        template_tokens[step.name] = math.ceil(len(Path(template).read_text(encoding="utf-8")) / CHARS_PER_TOKEN) if has_template else 0
    return flow.metadata.id or options.flow_id, max_tokens, template_tokens, tutor_steps(steps)


# --- the probe ----------------------------------------------------------------------------------


def _probe(chunks_path: Path, records: int, options: EstimateOptions, endpoint: EndpointConfig | None, work: Path,
           progress: Callable[[str], None] | None) -> dict:
    gen = options.generate_options
    wanted_chunks = math.ceil(options.probe_rows / gen.conversations_per_chunk)
    picked = set(spread_indices(records, wanted_chunks, gen.seed))
    sample = [(i, c) for k, (i, c) in enumerate(_chunk_records(chunks_path, gen.max_chunks, gen.max_chunk_chars)) if k in picked]
    write_jsonl(work / artifacts.CHUNKS_FILE, (c for _, c in sample))
    if progress:
        progress(f"[estimate] probe: {len(sample)} of {records} chunks (positions {', '.join(str(i) for i, _ in sample)}), "
                 f"{len(sample) * gen.conversations_per_chunk} rows")
    # the probe is a run of its own over the picked chunks: none of the estimated run's scope applies
    probe_options = dataclasses.replace(gen, max_chunks=0, checkpoint_dir=None, target_examples=0, shard=Shard(),
                                        requests=dataclasses.replace(gen.requests, max_requests=0))
    try:
        generated = generate.run(work / artifacts.CHUNKS_FILE, work / "generate", probe_options, endpoint, progress)
    except NothingGenerated as nothing:  # a probe that generated nothing is a finding: reported, not extrapolated
        generated = nothing.result
        if progress:
            progress(f"[estimate] {nothing}")
    filtered = filtering.run(work / "generate" / artifacts.CONVERSATIONS_FILE, work / "filter", options.filter_options, progress)
    m = generated.metrics()
    probe = {
        "rows": generated.input_rows,
        "chunks": len(sample),
        "chunk_indices": [i for i, _ in sample],
        "chunk_ids": [c["chunk_id"] for _, c in sample],
        "requests": m.get("requests", 0),
        "requests_succeeded": m.get("requests_succeeded", 0),
        "requests_failed": m.get("requests_failed", 0),
        "failed_rows": generated.failed_rows,
        "rows_failed_by_kind": m.get("rows_failed_by_kind", {}),
        "conversations": generated.output_rows,
        "accepted": filtered.accepted,
        "rejected": filtered.rejected,
        "drop_reasons": filtered.reasons,
        "prompt_tokens": m.get("prompt_tokens", 0),
        "completion_tokens": m.get("completion_tokens", 0),
        "mean_request_seconds": m.get("mean_request_seconds", 0.0),
        "requests_per_second": m.get("requests_per_second", 0.0),
        "wall_seconds": round(generated.execution_time_seconds + filtered.seconds, 3),
        "model": generated.model,
    }
    if progress:
        progress(f"[estimate] probe done: {probe['conversations']} conversations from {probe['rows']} rows, {probe['accepted']} accepted")
    return probe


# --- the estimate -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rates:
    """Per row and per request: measured by the probe, or assumed."""

    requests_per_row: float
    conversations_per_row: float
    acceptance: float
    prompt_per_row: float
    completion_per_row: float | None
    prompt_per_request: float
    completion_per_request: float | None
    latency: float | None  # mean seconds per request

    @property
    def per_row_yield(self) -> float:
        """Accepted examples per row."""
        return self.conversations_per_row * self.acceptance


def _measured(probe: dict, max_concurrency: int, notes: list[str]) -> _Rates:
    rows, succeeded = max(probe["rows"], 1), max(probe["requests_succeeded"], 1)
    if probe["failed_rows"]:
        kinds = ", ".join(f"{k} {v}" for k, v in probe["rows_failed_by_kind"].items())
        notes.append(f"{probe['failed_rows']} of {probe['rows']} probe rows failed ({kinds}); the estimate counts on failing as many")
    if probe["rows"] < max_concurrency:
        notes.append(f"the probe ran {probe['rows']} rows, fewer than max_concurrency={max_concurrency}: "
                     "latency under full load may be higher, and the time longer (probe_rows >= max_concurrency measures it)")
    if not probe["conversations"]:
        notes.append("the probe generated no conversation: check the failures above and the endpoint, then probe again")
    elif not probe["accepted"]:
        notes.append("the probe accepted nothing: look at the drop reasons (probe/filter/rejected.jsonl when an output dir is given); "
                     "a bigger or better instructed model, or other filter options, may do")
    return _Rates(
        requests_per_row=probe["requests"] / rows,
        conversations_per_row=probe["conversations"] / rows,
        acceptance=probe["accepted"] / probe["conversations"] if probe["conversations"] else 0.0,
        prompt_per_row=probe["prompt_tokens"] / rows,
        completion_per_row=probe["completion_tokens"] / rows,
        prompt_per_request=probe["prompt_tokens"] / succeeded,
        completion_per_request=probe["completion_tokens"] / succeeded,
        latency=probe["mean_request_seconds"],
    )


def _assumed(max_tokens: dict[str, int | None], template_tokens: dict[str, int], mean_chunk_tokens: float, acceptance: float, notes: list[str],
             candidates: int = 1, tutor_blocks: set[str] = frozenset()) -> _Rates:
    blocks = len(max_tokens)
    prompt_per_row = sum(mean_chunk_tokens + t for t in template_tokens.values())
    completions = {name: (candidates if name in tutor_blocks else 1) * (tokens or 0) for name, tokens in max_tokens.items()}
    completion_per_row = sum(completions.values()) if all(v is not None for v in max_tokens.values()) else None
    notes.append(
        f"no probe: assumed {blocks} requests and 1 conversation per row, {acceptance:.0%} acceptance, "
        "prompts of a chunk plus the prompt template (multi-turn flows send more), completions of max_tokens (an upper bound); "
        "probe the endpoint (probe_rows > 0) for measured figures and a time"
    )
    if candidates > 1 and tutor_blocks:
        single = acceptance
        acceptance = 1 - (1 - single) ** candidates
        notes.append(
            f"tutor_candidates={candidates}: {candidates} completions per tutor turn in one request (the chat API's n, as vLLM serves it; "
            f"an endpoint without n takes {blocks + (candidates - 1) * len(tutor_blocks)} requests per row), and a conversation accepted "
            f"when any candidate is: {single:.0%} per candidate -> {acceptance:.0%} assumed"
        )
    return _Rates(
        requests_per_row=float(blocks),
        conversations_per_row=1.0,
        acceptance=acceptance,
        prompt_per_row=prompt_per_row,
        completion_per_row=completion_per_row,
        prompt_per_request=prompt_per_row / blocks if blocks else 0.0,
        completion_per_request=completion_per_row / blocks if blocks and completion_per_row is not None else None,
        latency=None,
    )


def _extrapolate(result: EstimateResult, rates: _Rates) -> None:
    """Fill the totals of ``result`` for its target from the per-row rates (``rates.per_row_yield`` > 0)."""
    target, available, per_row_yield = result.target_examples, result.rows_available, rates.per_row_yield
    result.rows_needed = math.ceil(target / per_row_yield - 1e-9)
    result.rows = rows = min(result.rows_needed, available)
    result.requests = math.ceil(rows * rates.requests_per_row - 1e-9)
    result.prompt_tokens = round(rows * rates.prompt_per_row)
    result.completion_tokens = None if rates.completion_per_row is None else round(rows * rates.completion_per_row)
    if result.mean_request_seconds is not None and rows:
        # rows run side by side, the requests of one row one after the other
        result.time_seconds = round(result.requests * result.mean_request_seconds / min(result.max_concurrency, rows), 1)
    result.reachable_examples = math.floor(available * per_row_yield + 1e-9)
    result.expected_examples = min(target, math.floor(rows * per_row_yield + 1e-9))
    result.target_reachable = result.rows_needed <= available
    result.requests_per_accepted = round(rates.requests_per_row / per_row_yield, 3)
    if rates.completion_per_row is not None:
        result.tokens_per_accepted = round((rates.prompt_per_row + rates.completion_per_row) / per_row_yield, 1)
    if not result.target_reachable:
        result.suggested_conversations_per_chunk = math.ceil(target / (result.chunks * per_row_yield) - 1e-9)
        result.notes.append(
            f"the chunks cannot reach {target} examples: at most ~{result.reachable_examples} from {available} rows; "
            f"raise conversations_per_chunk to {result.suggested_conversations_per_chunk} (more conversations per chunk are "
            "more alike: dedup may reject some) or add documents"
        )


def run(
    chunks_path: str | os.PathLike[str],
    options: EstimateOptions = EstimateOptions(),
    endpoint: EndpointConfig | None = None,
    progress: Callable[[str], None] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
) -> EstimateResult:
    """Estimate the requests, tokens and time to get ``options.target_examples`` accepted examples from ``chunks_path``."""
    chunks_path = Path(chunks_path)
    gen = options.generate_options
    notes: list[str] = []
    records, chunks, chunk_tokens = _scan_chunks(chunks_path, gen.max_chunks, gen.max_chunk_chars, notes)
    flow_id, max_tokens, template_tokens, tutor_blocks = _flow_plan(gen)
    rows_available = chunks * gen.conversations_per_chunk
    if records > chunks:
        notes.append(f"{records - chunks} duplicate chunk(s) in the file are generated once")
    if not max_tokens:
        notes.append(f"the flow {flow_id} has no LLM block: it sends no requests")

    probe = None
    if options.probe_rows:
        kept = Path(output_dir) / PROBE_DIR if output_dir else None  # the probe's files, for a look at what was rejected
        if kept:
            shutil.rmtree(kept, ignore_errors=True)  # a fresh run: nothing resumed from an earlier probe's checkpoint
        with contextlib.nullcontext(kept) if kept else tempfile.TemporaryDirectory(prefix="socratic-sdg-estimate-") as work:
            Path(work).mkdir(parents=True, exist_ok=True)
            probe = _probe(chunks_path, records, options, endpoint, Path(work), progress)
        rates = _measured(probe, gen.requests.max_concurrency, notes)
    else:
        rates = _assumed(max_tokens, template_tokens, chunk_tokens / chunks, options.assumed_acceptance, notes, gen.tutor_candidates, tutor_blocks)
    if options.filter_options.judge_enabled:
        notes.append("the filter's judge sends requests of its own (one per conversation): not counted here")
    result = EstimateResult(
        target_examples=options.target_examples,
        basis="probe" if probe else "assumed",
        flow_id=flow_id,
        model=probe["model"] if probe else "",
        chunks=chunks,
        chunk_tokens=chunk_tokens,
        conversations_per_chunk=gen.conversations_per_chunk,
        rows_available=rows_available,
        llm_blocks=max_tokens,
        max_concurrency=gen.requests.max_concurrency,
        requests_per_row=round(rates.requests_per_row, 4),
        conversations_per_row=round(rates.conversations_per_row, 4),
        acceptance_rate=round(rates.acceptance, 4),
        prompt_tokens_per_request=round(rates.prompt_per_request, 1),
        completion_tokens_per_request=None if rates.completion_per_request is None else round(rates.completion_per_request, 1),
        mean_request_seconds=rates.latency,
        estimable=rates.per_row_yield > 0,
        tutor_candidates=gen.tutor_candidates,
        probe=probe,
        notes=notes,
    )
    if result.estimable:
        _extrapolate(result, rates)
    if output_dir:
        write_json(Path(output_dir) / ESTIMATE_FILE, result.as_dict())
    return result
