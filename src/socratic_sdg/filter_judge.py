"""The optional LLM-judge layer: a rubric a model scores each conversation against.

The deterministic layers catch wording and values; a judge catches what needs understanding: a
question with no teaching value ("Do you like graphing lines?"), a reply that reveals a *wrong*
answer, a reply unrelated to the course passage, a condescending tone. It runs only on records the
deterministic layers accepted (no point paying for the rest), and only when configured.

The judge talks to the model through one injectable callable, ``complete(messages) -> str``, so it
works with any client (and tests use a stub). :func:`openai_complete` is the default: an OpenAI-
compatible endpoint from options or ``LLM_API_BASE`` / ``LLM_API_KEY`` / ``LLM_MODEL``. Around it:

* a thread pool bounded by ``max_concurrency``;
* bounded retries with jittered exponential backoff for transient failures (connection errors,
  timeouts, 429, 5xx); a request the server rejects as malformed (400/413/422) is not retried;
* configuration errors (refused key, unknown model) and a run of ``max_consecutive_failures``
  failures in a row stop the run with :class:`JudgeError` (a ValueError: one line, exit code 2),
  instead of silently rejecting every record;
* output that is not the rubric's JSON is a judge failure for that record (``judge_unparsable``),
  recorded with the reason, never a crash. ``on_error`` decides whether such records are rejected
  (default) or accepted on the strength of the deterministic layers.

The rubric prompt is data: ``rules/judge_prompt.yaml`` (or ``prompt_path``).
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

Complete = Callable[[list[dict[str, str]]], str]

ANSWER_LABELS = ("guides", "reveals_wrong_answer", "reveals_right_answer")
SCORES = ("guidance", "actionability", "grounding", "tone")

JUDGE_REVEALS_ANSWER = "judge_reveals_answer"
JUDGE_REVEALS_WRONG_ANSWER = "judge_reveals_wrong_answer"
JUDGE_LOW = {name: f"judge_low_{name}" for name in SCORES}
JUDGE_UNPARSABLE = "judge_unparsable"
JUDGE_ERROR = "judge_error"
JUDGE_LEAK_CODES = frozenset({JUDGE_REVEALS_ANSWER, JUDGE_REVEALS_WRONG_ANSWER})
PLACEHOLDERS = ("passage", "reference_answer", "conversation")


class JudgeError(ValueError):
    """The judge cannot work at all (misconfigured or unreachable endpoint); one sentence says why."""


class JudgeParseError(ValueError):
    """The judge's reply is not the rubric's JSON."""


@dataclass(frozen=True)
class JudgeOptions:
    endpoint: str | None = None  # None: LLM_API_BASE
    model: str | None = None  # None: LLM_MODEL, else the endpoint's first model
    api_key: str | None = field(default=None, repr=False)  # None: LLM_API_KEY
    prompt_path: str | None = None  # None: the packaged rules/judge_prompt.yaml
    max_concurrency: int = 8
    max_retries: int = 3
    parse_retries: int = 1
    timeout: float = 60.0
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    max_tokens: int = 400
    temperature: float = 0.0
    min_mistake_identification: int = 3
    min_guidance: int = 3
    min_actionability: int = 3
    min_grounding: int = 3
    min_tone: int = 3
    reject_wrong_answer: bool = True
    on_error: str = "reject"  # "reject" | "accept"
    max_consecutive_failures: int = 25

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"judge max_concurrency must be >= 1, got {self.max_concurrency}.")
        if self.max_retries < 0 or self.parse_retries < 0:
            raise ValueError("judge max_retries and parse_retries must be >= 0.")
        if self.timeout <= 0:
            raise ValueError(f"judge timeout must be > 0 seconds, got {self.timeout}.")
        for name in SCORES:
            value = getattr(self, f"min_{name}")
            if not 0 <= value <= 5:
                raise ValueError(f"judge min_{name} must be between 0 and 5, got {value}.")
        if self.on_error not in ("reject", "accept"):
            raise ValueError(f"judge on_error must be 'reject' or 'accept', got {self.on_error!r}.")

    def __repr__(self) -> str:  # keep the key out of logs
        return f"JudgeOptions(endpoint={self.endpoint!r}, model={self.model!r}, api_key=***)"


# --------------------------------------------------------------------------------------------
# Prompt
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgePrompt:
    source: str
    system: str
    user: str


def default_prompt_path() -> Any:
    return resources.files("socratic_sdg") / "rules" / "judge_prompt.yaml"


def load_judge_prompt(path: str | os.PathLike[str] | None = None) -> JudgePrompt:
    source = default_prompt_path() if path is None else Path(path)
    name = str(source)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"Judge prompt file {name} does not exist.") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"Judge prompt file {name} cannot be read as YAML: {' '.join(str(exc).split())}.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("system"), str) or not isinstance(data.get("user"), str):
        raise ValueError(f"Judge prompt file {name} must be a mapping with string 'system' and 'user' entries.")
    unknown = sorted(set(map(str, data)) - {"version", "system", "user"})
    if unknown:
        raise ValueError(f"Judge prompt file {name} has unknown key(s) {', '.join(unknown)}.")
    found = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", data["system"] + data["user"]))
    bad = sorted(found - set(PLACEHOLDERS))
    if bad:
        raise ValueError(f"Judge prompt file {name} uses unknown placeholder(s) {', '.join(bad)}; "
                         f"available: {', '.join(PLACEHOLDERS)}.")
    if "conversation" not in found:
        raise ValueError(f"Judge prompt file {name} never shows the conversation ({{{{conversation}}}}).")
    return JudgePrompt(source=name, system=data["system"].strip(), user=data["user"].strip())


def render_conversation(messages: Sequence[Mapping[str, Any]]) -> str:
    names = {"user": "Student", "assistant": "Tutor", "system": "System"}
    return "\n\n".join(f"[{names.get(m.get('role'), m.get('role'))}] {m.get('content')}" for m in messages)


def render(prompt: JudgePrompt, record: Mapping[str, Any], passage: str | None) -> list[dict[str, str]]:
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    values = {
        "passage": passage.strip() if passage else "(not available: score grounding as null)",
        "reference_answer": str(metadata.get("reference_answer") or "(not available)"),
        "conversation": render_conversation(record.get("messages") or []),
    }

    def fill(template: str) -> str:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values[m.group(1)], template)

    messages = []
    if prompt.system:
        messages.append({"role": "system", "content": fill(prompt.system)})
    messages.append({"role": "user", "content": fill(prompt.user)})
    return messages


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    answer_revealing: str
    scores: dict[str, int | None]
    rationale: str

    def as_quality(self) -> dict[str, Any]:
        return {"answer_revealing": self.answer_revealing, **self.scores, "rationale": self.rationale}


_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_verdict(text: str) -> Verdict:
    """The rubric JSON inside a judge reply (code fences and chatter around it tolerated)."""
    if not isinstance(text, str) or not text.strip():
        raise JudgeParseError("the judge returned an empty reply")
    candidates = [m.group(1) for m in _FENCE_RE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start >= 0 and end > start:
        candidates.append(text[start:end + 1])
    data = None
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            data = value
            break
    if data is None:
        raise JudgeParseError(f'no JSON object in the judge reply "{_snippet(text)}"')
    label = str(data.get("answer_revealing", "")).strip().lower().replace(" ", "_").replace("-", "_")
    aliases = {"reveals_right": "reveals_right_answer", "reveals_answer": "reveals_right_answer",
               "reveals_wrong": "reveals_wrong_answer", "guide": "guides", "guiding": "guides"}
    label = aliases.get(label, label)
    if label not in ANSWER_LABELS:
        raise JudgeParseError(f"answer_revealing must be one of {', '.join(ANSWER_LABELS)}, got {data.get('answer_revealing')!r}")
    scores: dict[str, int | None] = {}
    for name in SCORES:
        raw = data.get(name)
        if raw is None and name == "grounding":
            scores[name] = None
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise JudgeParseError(f"{name} must be a number from 1 to 5, got {raw!r}") from None
        if not 1 <= value <= 5:
            raise JudgeParseError(f"{name} must be from 1 to 5, got {raw!r}")
        scores[name] = int(round(value))
    rationale = str(data.get("rationale", "")).strip()
    return Verdict(label, scores, rationale[:500])


def decide(verdict: Verdict, options: JudgeOptions) -> list[dict[str, str]]:
    """Drop reasons for a verdict under the configured thresholds (empty: accept)."""
    reasons = []
    why = f" ({verdict.rationale})" if verdict.rationale else ""
    if verdict.answer_revealing == "reveals_right_answer":
        reasons.append(_reason(JUDGE_REVEALS_ANSWER, f"the judge found that a tutor turn reveals the answer{why}"))
    elif verdict.answer_revealing == "reveals_wrong_answer" and options.reject_wrong_answer:
        reasons.append(_reason(JUDGE_REVEALS_WRONG_ANSWER, f"the judge found that a tutor turn states a wrong answer{why}"))
    for name in SCORES:
        value = verdict.scores.get(name)
        minimum = getattr(options, f"min_{name}")
        if value is not None and value < minimum:
            reasons.append(_reason(JUDGE_LOW[name], f"the judge scored {name} {value}/5, below the minimum {minimum}{why}"))
    return reasons


def _reason(code: str, detail: str) -> dict[str, str]:
    return {"code": code, "layer": "judge", "detail": detail}


def _snippet(text: str, limit: int = 80) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


# --------------------------------------------------------------------------------------------
# Transport
# --------------------------------------------------------------------------------------------


def _fatal(exc: BaseException) -> str | None:
    """A one-line reason if ``exc`` means no request can ever succeed (auth, unknown model)."""
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return f"the judge endpoint refused the API key (HTTP {status}); check LLM_API_KEY"
    if status == 404:
        return f"the judge endpoint answered 404 ({_snippet(str(exc))}); check the endpoint URL (it should end in /v1) and the model name"
    return None


def _retryable(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None)
    return status not in (400, 413, 422)


def openai_complete(options: JudgeOptions) -> Complete:
    """The default ``complete``: chat completions on an OpenAI-compatible endpoint."""
    import openai

    base = (options.endpoint or os.environ.get("LLM_API_BASE", "")).strip().rstrip("/")
    key = (options.api_key or os.environ.get("LLM_API_KEY", "")).strip() or "EMPTY"
    model = (options.model or os.environ.get("LLM_MODEL", "")).strip()
    if not base:
        raise JudgeError("the judge needs an endpoint: pass --judge-endpoint (or set LLM_API_BASE) to an OpenAI-compatible base URL")
    if not base.startswith(("http://", "https://")):
        raise JudgeError(f"judge endpoint {base!r} is not an http(s) URL; it should look like http://host:8000/v1")
    client = openai.OpenAI(base_url=base, api_key=key, timeout=options.timeout, max_retries=0)
    if not model:
        try:
            served = [m.id for m in client.models.list()]
        except openai.APIConnectionError:
            raise JudgeError(f"cannot reach the judge endpoint at {base}") from None
        except openai.APIStatusError as exc:
            raise JudgeError(_fatal(exc) or f"the judge endpoint {base} failed to list models (HTTP {exc.status_code})") from None
        if not served:
            raise JudgeError(f"the judge endpoint {base} serves no model; pass --judge-model")
        model = served[0]

    def complete(messages: list[dict[str, str]]) -> str:
        response = client.chat.completions.create(
            model=model, messages=messages, temperature=options.temperature, max_tokens=options.max_tokens,
        )
        return response.choices[0].message.content or ""

    complete.model = model  # type: ignore[attr-defined]
    return complete


@dataclass
class JudgeOutcome:
    verdict: Verdict | None
    reasons: list[dict[str, str]]
    quality: dict[str, Any]
    attempts: int
    error: str | None = None


class Judge:
    """Scores records with the rubric, several at a time. Use as a context manager (or call close)."""

    def __init__(self, options: JudgeOptions | None = None, complete: Complete | None = None,
                 prompt: JudgePrompt | None = None, sleep: Callable[[float], None] = time.sleep):
        self.options = options or JudgeOptions()
        self.prompt = prompt or load_judge_prompt(self.options.prompt_path)
        self.complete = complete or openai_complete(self.options)
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=self.options.max_concurrency, thread_name_prefix="judge")
        self._lock = threading.Lock()
        self._consecutive = 0
        self._tripped: str | None = None
        self._rng = random.Random(1234)
        self.stats = {"calls": 0, "judged": 0, "retries": 0, "failures": 0, "unparsable": 0, "errors": 0}

    def __enter__(self) -> "Judge":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def judge_many(self, items: Sequence[tuple[Mapping[str, Any], str | None]]) -> list[JudgeOutcome]:
        """One outcome per (record, passage), in order. Raises JudgeError if the judge cannot work."""
        futures = [self._pool.submit(self._judge_one, record, passage) for record, passage in items]
        outcomes = [future.result() for future in futures]
        if self._tripped:
            raise JudgeError(self._tripped)
        return outcomes

    def _backoff(self, attempt: int) -> float:
        with self._lock:
            jitter = self._rng.uniform(0.5, 1.5)
        return min(self.options.backoff_max, self.options.backoff_base * (2 ** attempt)) * jitter

    def _judge_one(self, record: Mapping[str, Any], passage: str | None) -> JudgeOutcome:
        options = self.options
        messages = render(self.prompt, record, passage)
        attempts = 0
        transport_tries = 0
        parse_tries = 0
        last_error = ""
        code = JUDGE_ERROR
        while True:
            if self._tripped:
                return self._failure(JUDGE_ERROR, "the judge was stopped after repeated failures", attempts)
            attempts += 1
            with self._lock:
                self.stats["calls"] += 1
            try:
                reply = self.complete(messages)
            except Exception as exc:  # noqa: BLE001 - any client error is a judge failure, classified below
                fatal = _fatal(exc)
                if fatal:
                    with self._lock:
                        self._tripped = fatal
                    return self._failure(JUDGE_ERROR, fatal, attempts)
                last_error = f"{type(exc).__name__}: {_snippet(str(exc))}"
                code = JUDGE_ERROR
                if transport_tries < options.max_retries and _retryable(exc):
                    transport_tries += 1
                    with self._lock:
                        self.stats["retries"] += 1
                    self._sleep(self._backoff(transport_tries - 1))
                    continue
                break
            try:
                verdict = parse_verdict(reply)
            except JudgeParseError as exc:
                last_error = str(exc)
                code = JUDGE_UNPARSABLE
                if parse_tries < options.parse_retries:
                    parse_tries += 1
                    with self._lock:
                        self.stats["retries"] += 1
                    continue
                break
            with self._lock:
                self._consecutive = 0
                self.stats["judged"] += 1
            return JudgeOutcome(verdict, decide(verdict, options), verdict.as_quality(), attempts)
        return self._failure(code, last_error, attempts)

    def _failure(self, code: str, error: str, attempts: int) -> JudgeOutcome:
        options = self.options
        with self._lock:
            self.stats["failures"] += 1
            self.stats["unparsable" if code == JUDGE_UNPARSABLE else "errors"] += 1
            self._consecutive += 1
            if self._consecutive >= options.max_consecutive_failures and not self._tripped:
                self._tripped = (f"the judge failed {self._consecutive} times in a row (last: {error}); "
                                 "check the endpoint and model, or run without the judge")
        detail = f"the judge could not score this record after {attempts} attempt(s): {error}"
        reasons = [_reason(code, detail)] if options.on_error == "reject" else []
        return JudgeOutcome(None, reasons, {"error": code, "detail": detail}, attempts, error)
