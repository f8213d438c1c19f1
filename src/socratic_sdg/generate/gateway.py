"""The LLM gateway: every request of a run goes through it (concurrency limit with priorities, bounded
Retry-After-aware retries, run-wide retry budget, circuit breaker, statistics).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..endpoint import redact
from ..errors import OptionsError
from ..options import option
from .errors import EndpointUnavailable


log = logging.getLogger(__name__)

# Failure kinds of a request. Retryable ones are retried (within the per-request and run-wide limits).
RETRYABLE = frozenset({"rate_limited", "server_error", "timeout", "connection", "bad_response"})
# Kinds that say "the endpoint is not working" (not "this prompt is bad"): they feed the circuit breaker.
ENDPOINT_KINDS = RETRYABLE | {"auth", "not_found"}
# Row failure kinds that are final: a resumed run does not try these rows again.
TERMINAL_ROW_KINDS = frozenset({"filtered", "no_conversation", "context_length", "bad_request"})


@dataclass(frozen=True)
class RequestPolicy:
    """How a run's requests are sent: concurrency, timeouts, retries and budgets (none changes what a
    conversation says, so none is part of a checkpoint key)."""

    max_concurrency: int = option(
        8, "Requests in flight at once against the endpoint, for all shards together (size it to what the endpoint serves).", changes_output=False)
    num_retries: int = option(
        3, "Retries per request (backoff with jitter, Retry-After honoured) before its row is recorded as failed.", changes_output=False)
    request_timeout: float = option(120.0, "Seconds per request to the endpoint.", changes_output=False)
    max_retry_after: float = option(
        60.0, "Longest pause, in seconds, an endpoint's Retry-After may impose on all requests (the progress log says when it asks); "
        "0 = no pause.", changes_output=False, metavar="SECONDS")
    max_requests: int = option(0, "Hard cap on requests to the endpoint for the whole run, all shards together (0 = none).", changes_output=False)
    transport: str = option(
        "direct", "direct: HTTP to the OpenAI-compatible endpoint (~10x less client CPU); litellm: through litellm, as sdg_hub does.",
        choices=("direct", "litellm"), changes_output=False, kfp=False)
    # Not parameters: tuning for tests and callers.
    retry_backoff_seconds: float = 1.0  # first retry waits ~this many seconds (jittered), doubling each time
    backoff_max_seconds: float = 30.0
    max_total_retries: int = 0  # retries for the whole run (no retry storm against a failing endpoint); 0 = a quarter of the requests, at least 50
    max_consecutive_failures: int = 0  # endpoint-kind failures in a row (no success between) stop the run; 0 = twice max_concurrency, at least 20

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise OptionsError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        if self.max_requests < 0:
            raise OptionsError("max_requests must be 0 (no limit) or positive")
        if not self.max_retry_after >= 0:
            raise OptionsError(f"max_retry_after must be 0 or more seconds, got {self.max_retry_after}")
        if self.transport not in ("direct", "litellm"):
            raise OptionsError(f"transport must be 'direct' or 'litellm', got {self.transport!r}")

    def retry_budget(self, expected_requests: int) -> int:
        return self.max_total_retries or max(50, expected_requests // 4)

    def failure_limit(self) -> int:
        return self.max_consecutive_failures or max(20, 2 * self.max_concurrency)


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
    from .transport import _retry_after

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

    ``transport`` sends one request (``transport``: direct HTTP or litellm); it is started
    and closed by :func:`run_rows` inside the run's event loop.
    """

    def __init__(self, policy: RequestPolicy, transport, api_base: str = "", on_pause: Callable[[float, float], None] | None = None,
                 *, expected_requests: int = 0, seed: int | None = None):
        self.policy = policy
        self.on_pause = on_pause  # called (seconds asked, seconds paused) when a Retry-After starts a pause
        self.transport = transport
        self.api_base = api_base
        self.limiter = PriorityLimiter(policy.max_concurrency)
        self.stats = RunStats()
        self.retry_budget = policy.retry_budget(expected_requests)
        self.failure_limit = policy.failure_limit()
        self._not_before = 0.0  # a 429's Retry-After pauses every request until then
        self.retry_after_asked = 0.0  # the Retry-After of the pause in effect (or the last one), in seconds
        self._consecutive_failures = 0
        self.seed = seed  # per-request sampling seeds derive from it (reproducible generations on vLLM)
        self._rng = random.Random(seed)
        self.aborted: EndpointUnavailable | None = None

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.policy.backoff_max_seconds, self.policy.retry_backoff_seconds * (2**attempt))
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
            limit = self.failure_limit
            if limit and self._consecutive_failures >= limit and self.aborted is None:
                self.aborted = EndpointUnavailable(
                    f"the endpoint {self.api_base} failed {self._consecutive_failures} requests in a row "
                    f"(last: {failure.kind}: {failure.reason}); stopped instead of failing every row. "
                    "Fix the endpoint and run again with the same checkpoint folder to resume where this run stopped"
                )

    async def complete(self, messages: list[dict], kwargs: dict, priority: tuple = (0, 0), seed: int | None = None):
        """One chat completion (a ParsedResponse) with the run's retry policy; RequestFailure when it fails for good."""
        from .transport import TransportFailure

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
