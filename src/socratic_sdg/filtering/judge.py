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

The rubric prompt is data: ``filtering/data/judge_prompt.yaml`` (or ``prompt_path``).

The rubric follows the taxonomy human annotators use in MRBench (Maurya et al., NAACL 2025), so that
its verdicts can be measured against human labels (``socratic-sdg evaluate --judge``):

* ``mistake_identification`` 1-5, or null when the student's latest message holds no mistake;
* ``answer_revealing`` (the taxonomy's "revealing of the answer"), asked as the label itself:
  ``no`` / ``yes_correct`` / ``yes_incorrect`` (the old ``guides`` / ``reveals_right_answer`` /
  ``reveals_wrong_answer`` are read as aliases);
* ``guidance`` and ``actionability`` 1-5; ``tone`` 1-5; ``grounding`` 1-5 or null (fit with the
  course passage: no human label, null without a passage).

:meth:`Verdict.labels` turns scores into the taxonomy's labels: 4-5 ``yes``, 3 ``partly`` ("to some
extent"), 1-2 ``no``; tone 4-5 ``encouraging``, 3 ``neutral``, 1-2 ``offensive``. The parser also
takes the label words in place of numbers ("Yes" 5, "To some extent" 3, "No" 1; "Encouraging" 5,
"Neutral" 3, "Offensive" 1) and the MRBench key names (``Providing_Guidance``, ...). :func:`decide`
applies a minimum per score (``min_<score>``, default 3: "partly" is accepted, "no" is not; a null
score is not judged) and rejects a revealed answer (a right one unless ``reject_revealed_answer``
is off, a wrong one unless ``reject_wrong_answer`` is off).

What is judged: the rubric asks about the FINAL tutor turn, as a reply to the student's latest
message, with the whole dialogue as context (as the human labels are given). A generated dialogue
ends with a tutor turn, but its earlier tutor turns are training targets too: ``graded_turns="all"``
asks once per tutor turn, each time with the dialogue cut right after that turn, and keeps the worst
verdict per dimension (one request per tutor turn); ``"last"`` (the default) asks once per record.
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

from ..endpoint import redact, register_secret
from ..errors import SocraticSdgError
from ..options import option

Complete = Callable[[list[dict[str, str]]], str]

# The taxonomy's "revealing of the answer" labels, and the rubric's older names for them.
REVEALING_LABELS = ("no", "yes_correct", "yes_incorrect")
ANSWER_LABELS = ("guides", "reveals_wrong_answer", "reveals_right_answer")  # version 1 of the rubric
_OLD_REVEALING = {"no": "guides", "yes_correct": "reveals_right_answer", "yes_incorrect": "reveals_wrong_answer"}
# Scores from 1 to 5; these may be null: no mistake to identify, no passage to ground in.
SCORES = ("mistake_identification", "guidance", "actionability", "grounding", "tone")
NULLABLE = frozenset({"mistake_identification", "grounding"})
# The dimensions Verdict.labels() reports, in the taxonomy's terms.
LABEL_DIMENSIONS = ("mistake_identification", "revealing", "guidance", "actionability", "tone")

JUDGE_REVEALS_ANSWER = "judge_reveals_answer"
JUDGE_REVEALS_WRONG_ANSWER = "judge_reveals_wrong_answer"
JUDGE_LOW = {name: f"judge_low_{name}" for name in SCORES}
JUDGE_UNPARSABLE = "judge_unparsable"
JUDGE_ERROR = "judge_error"
JUDGE_LEAK_CODES = frozenset({JUDGE_REVEALS_ANSWER, JUDGE_REVEALS_WRONG_ANSWER})
PLACEHOLDERS = ("passage", "reference_answer", "conversation")
# Appended to the rubric when a reply was not its JSON, for the one retry (``parse_retries``).
PARSE_REMINDER = ("\n\nYour previous reply was not this JSON object. Reply with the JSON object only, "
                  "starting with { and ending with }, and no other text.")


class JudgeError(SocraticSdgError, ValueError):
    """The judge cannot work at all (misconfigured or unreachable endpoint); one sentence says why."""


class JudgeParseError(ValueError):
    """The judge's reply is not the rubric's JSON."""


@dataclass(frozen=True)
class JudgeOptions:
    endpoint: str | None = option(None, "Judge base URL; empty uses LLM_API_BASE from the Secret. Setting it switches the judge on.")
    model: str | None = option(None, "Judge model; empty uses LLM_MODEL from the Secret (else the endpoint's first model).")
    prompt_path: str | None = option(None, "Rubric prompt YAML; empty uses the packaged one.", flag="--judge-prompt")
    max_concurrency: int = option(8, "Judge requests in flight at once.", changes_output=False)
    max_retries: int = option(3, "Retries per judge request.", changes_output=False)
    timeout_seconds: float = option(60.0, "Seconds per judge request.", changes_output=False, flag="--judge-timeout")
    min_mistake_identification: int = option(
        3, "Lowest judge score (1-5) accepted for noticing the student's mistake (3 = to some extent; 0 = off). Not scored when the student made none.")
    min_guidance: int = option(3, "Lowest judge score (1-5) accepted for guiding the student toward the solution.")
    min_actionability: int = option(3, "Lowest judge score (1-5) accepted for a clear next step for the student.")
    min_grounding: int = option(3, "Lowest judge score (1-5) accepted for staying with the source passage.")
    min_tone: int = option(3, "Lowest judge score (1-5) accepted for an encouraging tone.")
    reject_wrong_answer: bool = option(True, "Reject replies the judge says reveal a wrong answer.", flag="--judge-accept-wrong-answer")
    on_error: str = option("reject", "What a conversation the judge could not score becomes: reject or accept.", choices=("reject", "accept"))
    # Not parameters: the key comes from the Secret; the rest is tuning for tests and callers.
    api_key: str | None = field(default=None, repr=False)  # None: LLM_API_KEY
    complete: Callable[[list[dict[str, str]]], str] | None = field(default=None, repr=False, compare=False)  # a client instead of HTTP
    parse_retries: int = 1
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 20.0
    max_tokens: int = 400
    temperature: float = 0.0
    reject_revealed_answer: bool = True
    graded_turns: str = "last"  # "last": the final tutor turn | "all": each tutor turn (one request each); the filter sets its own
    # Ask the server to constrain the reply to the rubric's JSON schema (vLLM guided decoding,
    # llama.cpp grammars): small judges then always parse. Dropped for the run if the server refuses it.
    structured_output: bool = True
    max_consecutive_failures: int = 25

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"judge max_concurrency must be >= 1, got {self.max_concurrency}.")
        if self.max_retries < 0 or self.parse_retries < 0:
            raise ValueError("judge max_retries and parse_retries must be >= 0.")
        if self.timeout_seconds <= 0:
            raise ValueError(f"judge timeout must be > 0 seconds, got {self.timeout_seconds}.")
        for name in SCORES:
            value = getattr(self, f"min_{name}")
            if not 0 <= value <= 5:
                raise ValueError(f"judge min_{name} must be between 0 and 5, got {value}.")
        if self.graded_turns not in ("last", "all"):
            raise ValueError(f"judge graded_turns must be 'last' or 'all', got {self.graded_turns!r}.")
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
    return resources.files("socratic_sdg.filtering") / "data" / "judge_prompt.yaml"


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
    """A parsed judge reply: ``revealing`` (no / yes_correct / yes_incorrect), ``scores`` (1-5 or
    None for each of :data:`SCORES`) and a short rationale."""

    revealing: str
    scores: dict[str, int | None]
    rationale: str

    @property
    def answer_revealing(self) -> str:
        """The rubric's version-1 label (guides / reveals_right_answer / reveals_wrong_answer)."""
        return _OLD_REVEALING[self.revealing]

    def labels(self) -> dict[str, str]:
        """The verdict in the MRBench taxonomy's terms (the dimensions of :data:`LABEL_DIMENSIONS`).

        Scores 4-5 are ``yes``, 3 ``partly``, 1-2 ``no``; tone 4-5 ``encouraging``, 3 ``neutral``,
        1-2 ``offensive``. A dimension the judge scored null (no mistake to identify) is left out.
        """
        out: dict[str, str] = {}
        for name in LABEL_DIMENSIONS:
            if name == "revealing":
                out[name] = self.revealing
                continue
            value = self.scores.get(name)
            if value is None:
                continue
            if name == "tone":
                out[name] = "encouraging" if value >= 4 else "neutral" if value == 3 else "offensive"
            else:
                out[name] = "yes" if value >= 4 else "partly" if value == 3 else "no"
        return out

    def as_quality(self) -> dict[str, Any]:
        return {"revealing": self.revealing, **self.scores, "labels": self.labels(), "rationale": self.rationale}


_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_NUMBER_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:/\s*5|out of 5)?\s*$")

# Reply keys: the rubric's names, the MRBench annotation names, and near misses.
_KEY_ALIASES = {
    "revealing": "answer_revealing", "revealing_of_the_answer": "answer_revealing",
    "reveals_answer": "answer_revealing", "answer_reveal": "answer_revealing", "reveal": "answer_revealing",
    "mistake_identified": "mistake_identification", "identifies_mistake": "mistake_identification",
    "providing_guidance": "guidance", "tutor_tone": "tone",
}
_REVEALING_ALIASES = {
    "no": "no", "none": "no", "false": "no", "guides": "no", "guide": "no", "guiding": "no", "not_revealed": "no",
    "yes_correct": "yes_correct", "yes": "yes_correct", "true": "yes_correct", "reveals_right_answer": "yes_correct",
    "reveals_right": "yes_correct", "reveals_answer": "yes_correct", "reveals_correct_answer": "yes_correct",
    "yes_incorrect": "yes_incorrect", "yes_wrong": "yes_incorrect", "reveals_wrong_answer": "yes_incorrect",
    "reveals_wrong": "yes_incorrect", "reveals_incorrect_answer": "yes_incorrect",
}
_WORD_SCORES = {"yes": 5, "to_some_extent": 3, "some_extent": 3, "partly": 3, "partially": 3, "partial": 3,
                "somewhat": 3, "no": 1}
_TONE_WORDS = {"encouraging": 5, "neutral": 3, "offensive": 1}


def _slug(value: Any) -> str:
    return "_".join(re.sub(r"[^a-z0-9]+", " ", str(value).lower()).split())


def _revealing(raw: Any) -> str:
    if raw is None:  # not a "no": a judge that did not say is not trusted with a leak
        raise JudgeParseError(f"answer_revealing must be one of {', '.join(REVEALING_LABELS)}, got null")
    if isinstance(raw, bool):
        return "yes_correct" if raw else "no"
    slug = _slug(raw)
    if slug in _REVEALING_ALIASES:
        return _REVEALING_ALIASES[slug]
    # the annotation's long forms: "Yes (and the revealed answer is correct)", "Yes (but ... incorrect)"
    if slug.startswith("yes"):
        return "yes_incorrect" if ("incorrect" in slug or "wrong" in slug) else "yes_correct"
    if slug.startswith("no"):
        return "no"
    raise JudgeParseError(f"answer_revealing must be one of {', '.join(REVEALING_LABELS)}, got {raw!r}")


_NOT_JUDGED = frozenset({"null", "none", "n_a", "na", "not_applicable"})
_NO_MISTAKE = frozenset({"no_mistake", "no_mistakes", "no_error", "no_errors"})  # mistake_identification only


def _score(name: str, raw: Any) -> int | None:
    problem = f"{name} must be a number from 1 to 5, got {raw!r}"
    slug = _slug(raw) if isinstance(raw, str) else ""
    if raw is None or slug in _NOT_JUDGED or (name == "mistake_identification" and slug in _NO_MISTAKE):
        if name in NULLABLE:
            return None
        raise JudgeParseError(problem)
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise JudgeParseError(problem)
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif match := _NUMBER_RE.match(raw):  # "4", "4.0", "4/5", "4 out of 5"
        value = float(match.group(1))
    elif name == "tone":  # the taxonomy's words: "Encouraging", "Neutral", "Offensive"
        if slug.split("_")[0] not in _TONE_WORDS:
            raise JudgeParseError(problem)
        value = float(_TONE_WORDS[slug.split("_")[0]])
    elif slug in _WORD_SCORES:  # the taxonomy's words: "Yes", "To some extent", "No"
        value = float(_WORD_SCORES[slug])
    elif slug.split("_")[0] in ("yes", "no"):  # "Yes, clearly", "No guidance"
        value = float(_WORD_SCORES[slug.split("_")[0]])
    elif "some_extent" in slug:
        value = 3.0
    else:
        raise JudgeParseError(problem)
    if not 1 <= value <= 5:
        raise JudgeParseError(f"{name} must be from 1 to 5, got {raw!r}")
    return int(value + 0.5)  # half up: 4.5 is 5, not banker's 4


def parse_verdict(text: str) -> Verdict:
    """The rubric JSON inside a judge reply (code fences and chatter around it tolerated).

    Keys may use the MRBench names (``Revealing_of_the_Answer``, ``Providing_Guidance``,
    ``Tutor_Tone``, any case); scores may be label words ("Yes", "To some extent", "No",
    "Encouraging", "Neutral", "Offensive"). ``mistake_identification`` and ``grounding`` may be null
    or missing (not judged); the other scores and ``answer_revealing`` are required.
    """
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
    fields: dict[str, Any] = {}
    for key, value in data.items():
        slug = _slug(key)
        fields.setdefault(_KEY_ALIASES.get(slug, slug), value)
    if "answer_revealing" not in fields:
        raise JudgeParseError(f"answer_revealing is missing (one of {', '.join(REVEALING_LABELS)})")
    revealing = _revealing(fields["answer_revealing"])
    scores = {name: _score(name, fields.get(name)) for name in SCORES}
    rationale = str(fields.get("rationale") or "").strip()
    return Verdict(revealing, scores, rationale[:500])


_REVEAL_SEVERITY = {"no": 0, "yes_incorrect": 1, "yes_correct": 2}


def worst(verdicts: Sequence[Verdict], names: Sequence[str] | None = None) -> Verdict:
    """One verdict for several tutor turns: the most severe reveal, the lowest score per dimension
    (None only where every turn is None), the rationales of the turns that fall short, named."""
    if len(verdicts) == 1:
        return verdicts[0]
    names = list(names) if names is not None else [f"turn {i + 1}" for i in range(len(verdicts))]
    revealing = max((v.revealing for v in verdicts), key=_REVEAL_SEVERITY.__getitem__)
    scores: dict[str, int | None] = {}
    for name in SCORES:
        values = [v.scores.get(name) for v in verdicts if v.scores.get(name) is not None]
        scores[name] = min(values) if values else None

    def short(v: Verdict) -> bool:  # reveals, or holds a worst score below "yes"
        return v.revealing != "no" or any(v.scores.get(n) is not None and v.scores[n] == scores[n] < 4 for n in SCORES)

    notes = [f"{label}: {v.rationale}" for label, v in zip(names, verdicts) if v.rationale and short(v)]
    return Verdict(revealing, scores, "; ".join(notes)[:500])


def decide(verdict: Verdict, options: JudgeOptions) -> list[dict[str, str]]:
    """Drop reasons for a verdict under the configured thresholds (empty: accept).

    A revealed right answer is rejected (unless ``reject_revealed_answer`` is off), a revealed wrong
    one too (unless ``reject_wrong_answer`` is off); each score below its ``min_<name>`` is a
    ``judge_low_<name>`` reason. A null score (no mistake to identify, no passage) is not judged.
    """
    reasons = []
    why = f" ({verdict.rationale})" if verdict.rationale else ""
    if verdict.revealing == "yes_correct" and options.reject_revealed_answer:
        reasons.append(_reason(JUDGE_REVEALS_ANSWER, f"the judge found that the tutor reveals the answer{why}"))
    elif verdict.revealing == "yes_incorrect" and options.reject_wrong_answer:
        reasons.append(_reason(JUDGE_REVEALS_WRONG_ANSWER, f"the judge found that the tutor states a wrong answer{why}"))
    for name in SCORES:
        value = verdict.scores.get(name)
        minimum = getattr(options, f"min_{name}")
        if value is not None and value < minimum:
            label = name.replace("_", " ")
            reasons.append(_reason(JUDGE_LOW[name], f"the judge scored {label} {value}/5, below the minimum {minimum}{why}"))
    return reasons


def _reason(code: str, detail: str) -> dict[str, str]:
    return {"code": code, "layer": "judge", "detail": detail}


def _snippet(text: str, limit: int = 80) -> str:
    """One line of at most ``limit`` characters, credentials redacted first (an endpoint or proxy may
    echo the request's Authorization header in an error)."""
    flat = " ".join(redact(text).split())
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


_SCORE = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 5}, {"type": "null"}]}
# The rubric's reply (filtering/data/judge_prompt.yaml) as a JSON schema, for servers that constrain output.
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string", "maxLength": 300},
        "mistake_identification": _SCORE,
        "answer_revealing": {"type": "string", "enum": list(REVEALING_LABELS)},
        "guidance": {"type": "integer", "minimum": 1, "maximum": 5},
        "actionability": {"type": "integer", "minimum": 1, "maximum": 5},
        "tone": {"type": "integer", "minimum": 1, "maximum": 5},
        "grounding": _SCORE,
    },
    "required": ["rationale", "mistake_identification", "answer_revealing", "guidance", "actionability", "tone",
                 "grounding"],
}


def openai_complete(options: JudgeOptions) -> Complete:
    """The default ``complete``: chat completions on an OpenAI-compatible endpoint."""
    import openai

    base = (options.endpoint or os.environ.get("LLM_API_BASE", "")).strip().rstrip("/")
    key = (options.api_key or os.environ.get("LLM_API_KEY", "")).strip() or "EMPTY"
    register_secret(key)  # never in an error text or a rejection reason
    model = (options.model or os.environ.get("LLM_MODEL", "")).strip()
    if not base:
        raise JudgeError("the judge needs an endpoint: pass --judge-endpoint (or set LLM_API_BASE) to an OpenAI-compatible base URL")
    if not base.startswith(("http://", "https://")):
        raise JudgeError(f"judge endpoint {base!r} is not an http(s) URL; it should look like http://host:8000/v1")
    client = openai.OpenAI(base_url=base, api_key=key, timeout=options.timeout_seconds, max_retries=0)
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

    schema = {"type": "json_schema", "json_schema": {"name": "tutor_reply_verdict", "schema": VERDICT_SCHEMA}}
    structured = [options.structured_output]  # switched off for the run once the server refuses it

    def complete(messages: list[dict[str, str]]) -> str:
        extra = {"response_format": schema} if structured[0] else {}
        try:
            response = client.chat.completions.create(
                model=model, messages=messages, temperature=options.temperature, max_tokens=options.max_tokens, **extra,
            )
        except openai.BadRequestError:
            if not extra:
                raise
            structured[0] = False  # a server without JSON-schema output: plain requests from now on
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
        self.complete = complete or self.options.complete or openai_complete(self.options)
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
        return min(self.options.backoff_max_seconds, self.options.backoff_base_seconds * (2 ** attempt)) * jitter

    def _judge_one(self, record: Mapping[str, Any], passage: str | None) -> JudgeOutcome:
        options = self.options
        messages = list(record.get("messages") or [])
        cuts = [len(messages)]
        if options.graded_turns == "all":
            # every tutor turn, as the final turn of the dialogue so far
            cuts = [i + 1 for i, m in enumerate(messages) if isinstance(m, Mapping) and m.get("role") == "assistant"] or cuts
        verdicts: list[Verdict] = []
        attempts = 0
        for cut in cuts:
            view = record if cut == len(messages) else {**record, "messages": messages[:cut]}
            verdict, used, code, error = self._ask(render(self.prompt, view, passage))
            attempts += used
            if verdict is None:
                return self._failure(code, error if len(cuts) == 1 else f"tutor turn {len(verdicts) + 1}: {error}", attempts)
            verdicts.append(verdict)
        verdict = worst(verdicts, [f"tutor turn {i + 1}" for i in range(len(verdicts))])
        with self._lock:
            self._consecutive = 0
            self.stats["judged"] += 1
        return JudgeOutcome(verdict, decide(verdict, options), verdict.as_quality(), attempts)

    def _ask(self, messages: list[dict[str, str]]) -> tuple[Verdict | None, int, str, str]:
        """One verdict for one prompt, with retries: (verdict or None, attempts, failure code, error)."""
        options = self.options
        attempts = 0
        transport_tries = 0
        parse_tries = 0
        last_error = ""
        code = JUDGE_ERROR
        while True:
            if self._tripped:
                return None, attempts, JUDGE_ERROR, "the judge was stopped after repeated failures"
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
                    return None, attempts, JUDGE_ERROR, fatal
                last_error = f"{type(exc).__name__}: {_snippet(str(exc))}"
                code = JUDGE_ERROR
                if transport_tries < options.max_retries and _retryable(exc):
                    transport_tries += 1
                    with self._lock:
                        self.stats["retries"] += 1
                    self._sleep(self._backoff(transport_tries - 1))
                    continue
                return None, attempts, code, last_error
            try:
                return parse_verdict(reply), attempts, "", ""
            except JudgeParseError as exc:
                last_error = str(exc)
                code = JUDGE_UNPARSABLE
                if parse_tries < options.parse_retries:
                    parse_tries += 1
                    with self._lock:
                        self.stats["retries"] += 1
                    # The same prompt at temperature 0 gets the same reply: ask again with a reminder.
                    messages = messages[:-1] + [{**messages[-1], "content": messages[-1]["content"] + PARSE_REMINDER}]
                    continue
                return None, attempts, code, last_error

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
