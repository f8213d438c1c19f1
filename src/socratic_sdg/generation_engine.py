"""The generation engine: streams rows through an sdg_hub flow under one global request limit.

sdg_hub's ``Flow.generate`` runs each block over the whole dataset before the next one (a barrier
per block), lets one failed request fail the whole call, and caps concurrency at ``save_freq`` when
it checkpoints. This engine keeps sdg_hub's blocks and flow YAML but drives them itself, on one
asyncio event loop:

* every input row is its own task walking the flow, so a slow request holds up nothing but its row
  (no barrier between blocks); about ``4 x max_concurrency`` rows are in the flow at once;
* LLM blocks (``LLMChatBlock``) send one request per record through one :class:`LLMGateway`, with
  the completion arguments sdg_hub's block would use (``_build_completion_kwargs``) and the response
  stored as the block stores it. A priority limiter keeps ``max_concurrency`` requests in flight for
  the whole run (requests of rows further along the flow go first, so rows finish and are checkpointed
  steadily; once every row has started, the least advanced go first, to shorten the tail); bounded
  retries with jittered exponential backoff; ``Retry-After`` on 429
  honoured and applied to every request; a timeout per request; a run-wide retry budget; a circuit
  breaker that stops the run when the endpoint fails many requests in a row;
* consecutive other blocks form a :class:`Segment`, called as sdg_hub calls them
  (``block(df, **runtime_params)``) on all rows that reach it at about the same time: a block call
  costs a few milliseconds whatever the number of rows, so rows are grouped when they are many and
  run alone when they are few (agent and custom blocks run in a worker thread);
* a request that still fails fails only its row, reported with the reason; a block that drops rows
  (a filter) is an outcome, not an error; ``usage`` of every response is counted.

Measured on 2 cores (see benchmarks/bench_generate.py): running ``flow.generate`` on micro-batches
from several threads instead doubles the CPU per row and breaks litellm's per-event-loop state.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .endpoint import redact
from .generation_errors import EndpointUnavailable

log = logging.getLogger(__name__)

# Failure kinds of a request. Retryable ones are retried (within the per-request and run-wide limits).
RETRYABLE = frozenset({"rate_limited", "server_error", "timeout", "connection", "bad_response"})
# Kinds that say "the endpoint is not working" (not "this prompt is bad"): they feed the circuit breaker.
ENDPOINT_KINDS = RETRYABLE | {"auth", "not_found"}
# Row failure kinds that are final: a resumed run does not try these rows again.
TERMINAL_ROW_KINDS = frozenset({"filtered", "no_conversation", "context_length", "bad_request"})


@dataclass(frozen=True)
class RequestPolicy:
    max_concurrency: int = 8
    num_retries: int = 3  # retries per request after the first attempt
    request_timeout: float = 120.0
    backoff_base: float = 1.0  # first retry waits ~base seconds (jittered), doubling each time
    backoff_max: float = 30.0
    max_retry_after: float = 60.0  # cap on a server's Retry-After: a server asking for a longer pause gets this much
    retry_budget: int = 100  # retries for the whole run: no retry storm against a failing endpoint
    max_consecutive_failures: int = 50  # endpoint-kind failures in a row (no success between) stop the run
    seed: int | None = None  # per-request sampling seed derived from it (reproducible generations on vLLM)
    max_requests: int = 0  # hard cap on attempts sent for the whole run (0 = none); beyond it a request fails as request_budget


class StopRun(Exception):
    """Raised by a row-done callback to end the run early: no new row starts, rows in the flow are
    cancelled (they are not recorded), and :func:`run_rows` returns with ``stopped_early``."""


class RequestFailure(Exception):
    """A request that failed for good (after retries, or at once when retrying cannot help)."""

    def __init__(self, kind: str, reason: str, attempts: int = 1, status: int | None = None):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.attempts = attempts
        self.status = status


@dataclass
class RunStats:
    """Request accounting of a run (one event loop: no locking needed)."""

    requests: int = 0  # attempts sent
    succeeded: int = 0
    retries: int = 0
    retries_denied: int = 0  # wanted to retry, the run-wide budget was spent
    errors_by_kind: Counter = field(default_factory=Counter)  # every failed attempt
    failures_by_kind: Counter = field(default_factory=Counter)  # requests failed for good
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: int = 0
    latency_sum: float = 0.0
    rate_limit_pauses: int = 0

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "requests_succeeded": self.succeeded,
            "requests_failed": sum(self.failures_by_kind.values()),
            "retries": self.retries,
            "retries_denied": self.retries_denied,
            "errors_by_kind": dict(sorted(self.errors_by_kind.items())),
            "failures_by_kind": dict(sorted(self.failures_by_kind.items())),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "truncated_completions": self.truncated,
            "mean_request_seconds": round(self.latency_sum / self.succeeded, 4) if self.succeeded else 0.0,
            "rate_limit_pauses": self.rate_limit_pauses,
        }


class PriorityLimiter:
    """At most ``limit`` units held at once; waiters are served in priority order.

    A priority is ``(stage, order)``: the flow's LLM stage of the request and its row's input order.
    While rows are still being started, later stages go first (least remaining work: rows finish, and
    are checkpointed, steadily). Once every row has started (:meth:`drain`), earlier stages go first
    (most remaining work: the rows that would otherwise finish last catch up, which shortens the
    tail of the run). Also integrates the number of units held over time (mean in-flight requests).
    """

    def __init__(self, limit: int):
        self.limit = max(1, int(limit))
        self.active = 0
        self.max_active = 0
        self._waiters: list = []
        self._seq = itertools.count()
        self._area = 0.0
        self._since = time.monotonic()
        self._started = self._since
        self.draining = False

    def _key(self, priority: tuple) -> tuple:
        stage, *rest = priority
        return (stage if self.draining else -stage, *rest)

    def drain(self) -> None:
        """Every row has started: from now on, serve the requests of the least advanced rows first."""
        self.draining = True
        for entry in self._waiters:
            entry[0] = self._key(entry[4])
        heapq.heapify(self._waiters)

    def _tick(self) -> None:
        now = time.monotonic()
        self._area += self.active * (now - self._since)
        self._since = now

    def mean_active(self, since: float | None = None) -> float:
        self._tick()
        elapsed = self._since - (since if since is not None else self._started)
        return self._area / elapsed if elapsed > 0 else 0.0

    def reset_clock(self) -> None:
        self._tick()
        self._area = 0.0
        self._started = self._since

    async def acquire(self, priority: tuple, units: int = 1) -> None:
        units = min(max(1, units), self.limit)
        if not self._waiters and self.active + units <= self.limit:
            self._tick()
            self.active += units
            self.max_active = max(self.max_active, self.active)
            return
        future = asyncio.get_running_loop().create_future()
        entry = [self._key(priority), next(self._seq), units, future, priority]
        heapq.heappush(self._waiters, entry)
        self._wake()  # the heap may hold only abandoned entries while units are free
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(units)  # it was handed the units just as it got cancelled
            else:
                entry[3] = None  # leave it in the heap, skipped when popped
            raise

    def release(self, units: int = 1) -> None:
        units = min(max(1, units), self.limit)
        self._tick()
        self.active -= units
        self._wake()

    def _wake(self) -> None:
        self._tick()
        while self._waiters:
            _, _, want, future, _ = self._waiters[0]
            if future is None or future.done():
                heapq.heappop(self._waiters)
                continue
            if self.active + want > self.limit:
                break
            heapq.heappop(self._waiters)
            self.active += want
            self.max_active = max(self.max_active, self.active)
            future.set_result(None)


def _retry_after_seconds(exc: BaseException) -> float | None:
    """Retry-After of a litellm exception (seconds or an HTTP date), if the server sent one."""
    from .generation_transport import _retry_after

    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    try:
        value = headers.get("retry-after") or headers.get("Retry-After") if headers else None
    except Exception:  # an unexpected headers object: no hint
        return None
    return _retry_after(str(value)) if value is not None else None


def _short(text: str, limit: int = 300) -> str:
    """One line of an error text, credentials redacted (before it is cut), at most ``limit`` characters."""
    text = " ".join(redact(text).split())
    for prefix in ("litellm.", "OpenAIException - "):
        text = text.replace(prefix, "")
    return text[:limit]


def classify(exc: BaseException) -> tuple[str, int | None, float | None]:
    """(failure kind, HTTP status, Retry-After seconds) of an exception raised by a completion call."""
    import litellm
    import openai

    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, litellm.Timeout, openai.APITimeoutError)):
        return "timeout", None, None
    status = getattr(exc, "status_code", None)
    if isinstance(exc, litellm.RateLimitError) or status == 429:
        return "rate_limited", 429, _retry_after_seconds(exc)
    if isinstance(exc, litellm.ContextWindowExceededError):
        return "context_length", status, None
    if isinstance(exc, litellm.AuthenticationError) or status in (401, 403):
        return "auth", status, None
    if isinstance(exc, litellm.NotFoundError) or status == 404:
        return "not_found", status, None
    if isinstance(exc, litellm.BadRequestError) or status in (400, 413, 422):
        text = str(exc).lower()
        if "context" in text and ("length" in text or "window" in text) or "too long" in text or "maximum" in text and "token" in text:
            return "context_length", status, None
        return "bad_request", status, None
    text = str(exc)
    if "Connection error" in text or isinstance(exc, (litellm.APIConnectionError, openai.APIConnectionError, ConnectionError)):
        return "connection", status, None
    if any(hint in text for hint in ("Expecting value", "Unterminated string", "JSONDecodeError", "Extra data", "Invalid control character")):
        return "bad_response", status, None
    if isinstance(status, int) and status >= 500 or isinstance(exc, (litellm.InternalServerError, litellm.ServiceUnavailableError, litellm.APIError)):
        return "server_error", status, None
    if isinstance(status, int) and status in (408, 409):
        return "server_error", status, None
    return "client_error", status, None


class LLMGateway:
    """Every LLM request of a run: global limit, retries, accounting, circuit breaker.

    ``transport`` sends one request (``generation_transport``: direct HTTP or litellm); it is started
    and closed by :func:`run_rows` inside the run's event loop.
    """

    def __init__(self, policy: RequestPolicy, transport, api_base: str = "", on_pause: Callable[[float, float], None] | None = None):
        self.policy = policy
        self.on_pause = on_pause  # called (seconds asked, seconds paused) when a Retry-After starts a pause
        self.transport = transport
        self.api_base = api_base
        self.limiter = PriorityLimiter(policy.max_concurrency)
        self.stats = RunStats()
        self.retry_budget = policy.retry_budget
        self._not_before = 0.0  # a 429's Retry-After pauses every request until then
        self.retry_after_asked = 0.0  # the Retry-After of the pause in effect (or the last one), in seconds
        self._consecutive_failures = 0
        self._rng = random.Random(policy.seed)
        self.aborted: EndpointUnavailable | None = None

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.policy.backoff_max, self.policy.backoff_base * (2**attempt))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)  # "equal jitter": spread out, never zero

    def paused_for(self) -> float:
        """Seconds left of a pause the endpoint asked for (Retry-After), 0 when none is in effect."""
        return max(0.0, self._not_before - time.monotonic())

    def _pause(self, retry_after: float) -> None:
        """Hold every request for the server's Retry-After, at most ``policy.max_retry_after`` seconds."""
        pause = min(retry_after, self.policy.max_retry_after)
        now = time.monotonic()
        starts = self._not_before <= now  # not already paused: a new pause, worth a word
        self._not_before = max(self._not_before, now + pause)
        self.stats.rate_limit_pauses += 1
        if starts and pause > 0:
            self.retry_after_asked = retry_after
            if self.on_pause is not None:
                self.on_pause(retry_after, pause)

    def _record_failure(self, failure: RequestFailure) -> None:
        self.stats.failures_by_kind[failure.kind] += 1
        if failure.kind in ENDPOINT_KINDS:
            self._consecutive_failures += 1
            limit = self.policy.max_consecutive_failures
            if limit and self._consecutive_failures >= limit and self.aborted is None:
                self.aborted = EndpointUnavailable(
                    f"the endpoint {self.api_base} failed {self._consecutive_failures} requests in a row "
                    f"(last: {failure.kind}: {failure.reason}); stopped instead of failing every row. "
                    "Fix the endpoint and run again with the same checkpoint folder to resume where this run stopped"
                )

    async def complete(self, messages: list[dict], kwargs: dict, priority: tuple = (0, 0), seed: int | None = None):
        """One chat completion (a ParsedResponse) with the run's retry policy; RequestFailure when it fails for good."""
        from .generation_transport import TransportFailure

        if self.aborted:
            raise self.aborted
        if seed is not None and "seed" not in kwargs:
            kwargs = {**kwargs, "seed": seed}
        units = int(kwargs.get("n") or 1)
        timeout = self.policy.request_timeout
        attempt = 0
        while True:
            wait = self._not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.limiter.acquire(priority, units)
            if self.aborted:
                self.limiter.release(units)
                raise self.aborted
            if self.policy.max_requests and self.stats.requests >= self.policy.max_requests:
                self.limiter.release(units)
                failure = RequestFailure("request_budget", f"not sent: the run's max_requests budget ({self.policy.max_requests}) is spent")
                self.stats.failures_by_kind[failure.kind] += 1
                raise failure
            self.stats.requests += 1
            started = time.monotonic()
            retry_after = None
            try:
                async with asyncio.timeout(timeout + 10):  # in case the client's own timeout does not fire
                    response = await self.transport.complete(messages, kwargs, timeout)
            except asyncio.CancelledError:
                raise
            except TransportFailure as exc:
                kind, status, retry_after, reason = exc.kind, exc.status, exc.retry_after, exc.reason
            except Exception as exc:  # litellm's exceptions (or a transport bug): classified, reported per row
                kind, status, retry_after = classify(exc)
                reason = str(exc) or exc.__class__.__name__
            else:
                self.stats.succeeded += 1
                self.stats.latency_sum += time.monotonic() - started
                self._consecutive_failures = 0
                self.stats.prompt_tokens += response.prompt_tokens
                self.stats.completion_tokens += response.completion_tokens
                if response.truncated:
                    self.stats.truncated += 1
                return response
            finally:
                self.limiter.release(units)
            reason = _short(reason)  # an endpoint or proxy may echo the request's headers: no key is stored or printed
            self.stats.errors_by_kind[kind] += 1
            if kind == "rate_limited" and retry_after:
                self._pause(retry_after)
            if kind not in RETRYABLE or attempt >= self.policy.num_retries:
                failure = RequestFailure(kind, reason, attempt + 1, status)
                self._record_failure(failure)
                raise failure
            if self.retry_budget <= 0:
                self.stats.retries_denied += 1
                failure = RequestFailure(kind, f"{reason} (not retried: the run's retry budget is spent)", attempt + 1, status)
                self._record_failure(failure)
                raise failure
            self.retry_budget -= 1
            self.stats.retries += 1
            delay = self._backoff(attempt)
            if kind == "rate_limited" and retry_after:
                delay = max(delay, min(retry_after, self.policy.max_retry_after) * (1 + 0.1 * self._rng.random()))
            attempt += 1
            await asyncio.sleep(delay)
            if self.aborted:
                raise self.aborted


# --- running a flow ---------------------------------------------------------------------------

_INLINE_MODULES = ("sdg_hub.core.blocks.transform", "sdg_hub.core.blocks.parsing", "sdg_hub.core.blocks.filtering")
_INLINE_CLASSES = {"PromptBuilderBlock", "LLMResponseExtractorBlock"}


@dataclass
class Step:
    block: Any
    name: str
    mode: str  # "llm" | "inline" | "thread"
    kwargs: dict  # runtime params (non-LLM) or completion kwargs (LLM)
    input_col: str = ""
    output_col: str = ""


@dataclass
class RowResult:
    row_id: str
    outputs: list[dict]  # the flow's output records for this row, in order
    failure: tuple[str, str, str] | None  # (kind, reason, block) of the first thing that went wrong
    truncated: list[str]  # blocks whose completion hit max_tokens


class BlockFailure(Exception):
    def __init__(self, kind: str, reason: str, block: str):
        super().__init__(reason)
        self.kind, self.reason, self.block = kind, reason, block


def _llm_completion_kwargs(block, params: dict) -> dict:
    """The completion kwargs sdg_hub's LLMChatBlock would send with these runtime params."""
    fields = block.__class__.model_fields
    overrides = {k: v for k, v in params.items() if k in fields and k not in ("block_name", "input_cols", "output_cols")}
    saved = {k: getattr(block, k) for k in overrides}
    try:
        for key, value in overrides.items():
            setattr(block, key, value)
        return block._build_completion_kwargs(**params)
    finally:
        for key, value in saved.items():
            setattr(block, key, value)


def build_steps(flow, runtime_params: dict | None) -> list[Step]:
    """The flow's blocks with their runtime params applied; LLM blocks resolved to completion kwargs."""
    from sdg_hub.core.blocks.llm.llm_chat_block import LLMChatBlock

    runtime_params = runtime_params or {}
    unknown = set(runtime_params) - {b.block_name for b in flow.blocks}
    if unknown:
        from .generation_errors import GenerateError

        raise GenerateError(
            f"runtime_params name block(s) {', '.join(sorted(unknown))} that the flow does not have; "
            f"its blocks are: {', '.join(b.block_name for b in flow.blocks)}"
        )
    steps = []
    for block in flow.blocks:
        params = dict(runtime_params.get(block.block_name, {}))
        if isinstance(block, LLMChatBlock):
            kwargs = _llm_completion_kwargs(block, params)
            steps.append(Step(block, block.block_name, "llm", kwargs, block.input_cols[0], block.output_cols[0]))
        elif block.__class__.__module__.startswith(_INLINE_MODULES) or block.__class__.__name__ in _INLINE_CLASSES:
            steps.append(Step(block, block.block_name, "inline", params))
        else:
            steps.append(Step(block, block.block_name, "thread", params))
    return steps


def _seed_for(base: int | None, row_id: str, block: str) -> int | None:
    if base is None:
        return None
    import hashlib

    digest = hashlib.sha256(f"{base}\x00{row_id}\x00{block}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _valid_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and m.get("role") is not None and m.get("content") is not None for m in value)
    )


_OBJECT_STRINGS: bool | None = None


def _object_strings_supported() -> bool:
    """Whether pandas still lets a caller turn off Arrow-backed strings (pandas 3 deprecates it, 4 removes it)."""
    global _OBJECT_STRINGS
    if _OBJECT_STRINGS is None:
        import pandas as pd

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with pd.option_context("future.infer_string", False):
                    pass
            _OBJECT_STRINGS = True
        except (KeyError, ValueError, pd.errors.OptionError):
            _OBJECT_STRINGS = False
    return _OBJECT_STRINGS


class Segment:
    """Consecutive non-LLM blocks, called on all the rows that reach them at about the same time.

    sdg_hub's blocks cost a few milliseconds per call whatever the number of rows (DataFrame
    building, validation), so rows are coalesced: a segment runs at once when it has been idle for
    ``interval`` seconds, otherwise it waits for the interval to pass and takes every row that arrived
    meanwhile: one row at a time when the run is quiet, dozens per call when responses pour in (on
    2 cores this halves the client's CPU per row at 200 requests/s). Blocks see whole rows (all
    records of a row together); row-wise blocks, which sdg_hub's are, give the same output per row
    however rows are grouped.
    """

    def __init__(self, steps: list[Step], max_group: int = 0, interval: float = 0.1):
        self.steps = steps
        self.max_group = max_group  # rows per block call at most (0 = no limit)
        self.interval = interval  # at most one call per interval: rows arriving meanwhile are grouped
        self.threaded = any(s.mode == "thread" for s in steps)
        self._pending: list[tuple[str, list[dict], asyncio.Future]] = []
        self._last_start = -1e9
        self.calls = 0
        self.rows = 0

    async def submit(self, row_id: str, records: list[dict]) -> list[dict]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._pending:
            # Idle segment: run at once (next loop turn). Busy one: wait for the interval to pass, so
            # that under load one call serves every row that arrived meanwhile.
            wait = self._last_start + self.interval - loop.time()
            if wait > 0:
                loop.call_later(wait, self._start)
            else:
                loop.call_soon(self._start)
        self._pending.append((row_id, records, future))
        return await future

    def _start(self) -> None:
        self._last_start = asyncio.get_running_loop().time()
        items, self._pending = self._pending, []
        size = self.max_group or len(items)
        for start in range(0, len(items), size):
            group = items[start : start + size]
            if self.threaded:
                asyncio.get_running_loop().create_task(self._run_threaded(group))
            else:
                try:
                    results = self._run_items(group)
                except Exception as exc:  # a bug, not a block failure: the waiting rows re-raise it
                    results = {row_id: exc for row_id, _, _ in group}
                self._settle(group, results)

    async def _run_threaded(self, items) -> None:
        try:
            results = await asyncio.to_thread(self._run_items, items)
        except BaseException as exc:  # noqa: BLE001  (handed to the waiting rows)
            results = {row_id: exc for row_id, _, _ in items}
        self._settle(items, results)

    @staticmethod
    def _settle(items, results: dict) -> None:
        for row_id, _, future in items:
            if future.done():
                continue
            result = results[row_id]
            if isinstance(result, BaseException) and not isinstance(result, BlockFailure):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _run_items(self, items) -> dict:
        """row_id -> output records or BlockFailure; a failing group is re-run row by row to isolate the bad row."""
        self.calls += 1
        self.rows += len(items)
        try:
            return self._run_blocks([(row_id, records) for row_id, records, _ in items])
        except BlockFailure as failure:
            if len(items) == 1:
                return {items[0][0]: failure}
        results = {}
        for row_id, records, _ in items:
            try:
                results.update(self._run_blocks([(row_id, records)]))
            except BlockFailure as failure:
                results[row_id] = failure
        return results

    def _run_blocks(self, group: list[tuple[str, list[dict]]]) -> dict:
        import pandas as pd

        if self.threaded or not _object_strings_supported():
            return self._run_blocks_in(group)
        # Plain Python strings (object columns) instead of pandas 3's Arrow strings: sdg_hub's blocks were
        # written for them, and small frames build ~1.6x faster. Scoped to this call, on the loop's thread.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"The 'future\.infer_string' option is deprecated")
            with pd.option_context("future.infer_string", False):
                return self._run_blocks_in(group)

    def _run_blocks_in(self, group: list[tuple[str, list[dict]]]) -> dict:
        import pandas as pd

        row_ids = [row_id for row_id, _ in group]
        records = [record for _, rows in group for record in rows]
        outputs: dict[str, Any] = {}
        frame = pd.DataFrame(records)
        for step in self.steps:
            before = set(frame["row_id"]) if len(frame) else set()
            try:
                frame = step.block(frame, **step.kwargs)
            except Exception as exc:
                raise BlockFailure("block_error", f"block {step.name!r} failed: {_short(str(exc) or exc.__class__.__name__)}", step.name) from None
            if len(frame) and "row_id" not in frame.columns:
                if len(before) != 1:
                    raise BlockFailure("block_error", f"block {step.name!r} removed the row_id column, so its rows cannot be traced", step.name)
                frame = frame.assign(row_id=next(iter(before)))
            after = set(frame["row_id"]) if len(frame) else set()
            for row_id in before - after:
                outputs[row_id] = BlockFailure("filtered", f"the flow's block {step.name!r} dropped this row", step.name)
            if not len(frame):
                break
        by_row: dict[str, list[dict]] = {}
        for record in frame.to_dict(orient="records") if len(frame) else []:
            by_row.setdefault(record["row_id"], []).append(record)
        for row_id in row_ids:
            if row_id in by_row:
                outputs[row_id] = by_row[row_id]
            else:
                outputs.setdefault(row_id, BlockFailure("filtered", "the flow dropped this row", self.steps[-1].name))
        return outputs


class FlowRunner:
    """Runs rows through a flow: LLM blocks through the gateway, other blocks in coalesced segments."""

    def __init__(self, steps: list[Step], gateway: LLMGateway, seed: int | None = None, max_group: int = 0):
        self.gateway = gateway
        self.seed = seed
        self.plan: list[tuple[int, Step | Segment]] = []  # (stage index, LLM step or segment)
        pending: list[Step] = []
        llm_index = 0
        for step in steps:
            if step.mode == "llm":
                if pending:
                    self.plan.append((llm_index, Segment(pending, max_group)))
                    pending = []
                llm_index += 1
                self.plan.append((llm_index, step))
            else:
                pending.append(step)
        if pending:
            self.plan.append((llm_index, Segment(pending, max_group)))

    @property
    def segments(self) -> list[Segment]:
        return [part for _, part in self.plan if isinstance(part, Segment)]

    async def run_row(self, row: dict, order: int) -> RowResult:
        row_id = row["row_id"]
        records = [row]
        failure: tuple[str, str, str] | None = None
        truncated: list[str] = []
        for stage, part in self.plan:
            if isinstance(part, Segment):
                result = await part.submit(row_id, records)
                if isinstance(result, BlockFailure):  # a block failed on this row, or dropped all its records
                    return RowResult(row_id, [], failure or (result.kind, result.reason, result.block), truncated)
                records = result
            else:
                records, step_failure = await self._llm(part, stage, order, row_id, records, truncated)
                failure = failure or step_failure
                if not records:
                    return RowResult(row_id, [], failure, truncated)
        return RowResult(row_id, records, failure, truncated)

    async def _llm(self, step: Step, stage: int, order: int, row_id: str, records: list[dict], truncated: list[str]):
        priority = (stage, order)
        seed = _seed_for(self.seed, row_id, step.name)
        for record in records:
            if not _valid_messages(record.get(step.input_col)):
                return [], ("block_error", f"block {step.name!r}: column {step.input_col!r} is not a list of chat messages", step.name)
        if len(records) == 1:
            results = [await _capture(self.gateway.complete(records[0][step.input_col], step.kwargs, priority, seed))]
        else:
            results = await asyncio.gather(
                *(_capture(self.gateway.complete(r[step.input_col], step.kwargs, priority, seed)) for r in records)
            )
        kept, failure = [], None
        for record, result in zip(records, results):
            if isinstance(result, RequestFailure):
                failure = failure or (result.kind, f"{step.name}: {result.reason}", step.name)
                continue
            record = dict(record)
            record[step.output_col] = result.messages
            kept.append(record)
            if result.truncated and step.name not in truncated:
                truncated.append(step.name)
        return kept, failure


async def _capture(awaitable):
    """The result, or the RequestFailure (other exceptions, e.g. an abort, propagate)."""
    try:
        return await awaitable
    except RequestFailure as failure:
        return failure


@dataclass
class SchedulerReport:
    wall_seconds: float = 0.0
    mean_in_flight: float = 0.0
    max_in_flight: int = 0
    block_calls: int = 0
    rows_per_block_call: float = 0.0
    stopped_early: bool = False  # should_start said no before the rows ran out


async def run_rows(
    runner: FlowRunner,
    rows: Iterable[dict],
    on_row_done: Callable[[dict, RowResult], Awaitable[None]],
    max_active_rows: int,
    should_start: Callable[[int], bool] | None = None,
) -> SchedulerReport:
    """Run the rows (any iterable, consumed lazily), keeping about ``max_active_rows`` in the flow at once.

    More rows than request slots are kept active so that a request slot freed by one row is taken at
    once by a request waiting in another (the limiter keeps the in-flight count at its limit).
    ``should_start(active_rows)`` is asked before each new row; while it says no, the scheduler waits
    for rows in the flow to finish and asks again; a no with no row in the flow ends the run
    (``SchedulerReport.stopped_early``). ``on_row_done`` raising :class:`StopRun` ends it at once:
    the rows still in the flow are cancelled and not reported.
    """
    gateway = runner.gateway
    await gateway.transport.start()
    try:
        return await _run_rows(runner, rows, on_row_done, max_active_rows, should_start)
    finally:
        await gateway.transport.close()


async def _run_rows(runner, rows, on_row_done, max_active_rows, should_start) -> SchedulerReport:
    gateway = runner.gateway
    gateway.limiter.reset_clock()
    started = time.monotonic()
    active = 0
    slot_freed = asyncio.Event()
    tasks: set[asyncio.Task] = set()
    error: list[BaseException] = []
    stopped: list[StopRun] = []  # a callback ended the run early
    stopped_early = False

    async def one(order: int, row: dict) -> None:
        nonlocal active
        try:
            result = await runner.run_row(row, order)
            await on_row_done(row, result)
        except asyncio.CancelledError:
            raise
        except StopRun as stop:
            stopped.append(stop)
        except BaseException as exc:  # an abort or a bug: stop the run, re-raised below
            error.append(exc)
        finally:
            active -= 1
            slot_freed.set()

    try:
        for order, row in enumerate(rows):
            while active >= max_active_rows and not error and not stopped:
                slot_freed.clear()
                await slot_freed.wait()
            if error or stopped:
                break
            # A "no" while rows are still in the flow may turn into a "yes" once they finish
            # (fewer accepted than expected, budget left): wait for them before giving up.
            while should_start is not None and not should_start(active) and not error and not stopped:
                if active == 0:
                    stopped_early = True
                    break
                slot_freed.clear()
                await slot_freed.wait()
            if stopped_early or error or stopped:
                break
            active += 1
            task = asyncio.create_task(one(order, row))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        gateway.limiter.drain()
        while active > 0 and not error and not stopped:
            slot_freed.clear()
            await slot_freed.wait()
    finally:
        if tasks:
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    if error:
        raise error[0]
    stopped_early = stopped_early or bool(stopped)
    calls = sum(s.calls for s in runner.segments)
    return SchedulerReport(
        wall_seconds=time.monotonic() - started,
        mean_in_flight=gateway.limiter.mean_active(),
        max_in_flight=gateway.limiter.max_active,
        block_calls=calls,
        rows_per_block_call=(sum(s.rows for s in runner.segments) / calls) if calls else 0.0,
        stopped_early=stopped_early,
    )


