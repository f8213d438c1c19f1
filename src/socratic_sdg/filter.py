"""Stage 4, filter: generated dialogues -> ``accepted.jsonl`` / ``rejected.jsonl`` + metrics.

The whole dataset exists to teach one behaviour: answer a student with a guiding question, never
with the answer. A generator model leaks answers often, and one leaked sample teaches the opposite
of what we want, so this stage is a cheap, strict gate in front of training:

* **format layer** (code + ``format_flags`` in the rules file): the record is a well-formed
  user/assistant dialogue ending on a tutor turn, with no prompt-template leftovers, speaker labels
  or refusal boilerplate;
* **rules layer** (``red_flags`` / ``green_flags`` in the rules file): no tutor turn states the
  answer (a leak anywhere in the conversation rejects all of it, because every tutor turn is a
  training target), and the final tutor turn ends with a question.

Patterns live in YAML (``rules/default_rules.yaml``) rather than code so they can be tuned from
rejected samples and swapped per pipeline run. Nothing is ever dropped silently: every input line
lands in exactly one output file, and rejected records carry machine-readable reasons
(``metadata.drop_reasons``) that also feed the per-code counts in ``filter_metrics.json``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .records import AtomicWriter, dumps, write_json

ACCEPTED_FILE = "accepted.jsonl"
REJECTED_FILE = "rejected.jsonl"
METRICS_FILE = "filter_metrics.json"

ROLES = frozenset({"system", "user", "assistant"})
SCOPES = frozenset({"turn", "statement"})

# Drop-reason codes produced by code (the rules file adds its own, e.g. states_answer).
INVALID_JSON = "invalid_json"
NO_MESSAGES = "no_messages"
BAD_MESSAGE = "bad_message"
BAD_METADATA = "bad_metadata"
BAD_ROLES = "bad_roles"
EMPTY_TURN = "empty_turn"
TURN_TOO_SHORT = "turn_too_short"
TURN_TOO_LONG = "turn_too_long"
NO_GUIDING_QUESTION = "no_guiding_question"
LOW_GREEN_SCORE = "low_green_score"


@dataclass(frozen=True)
class FilterOptions:
    """Knobs for one filter run.

    ``rules_path`` None means the packaged ``rules/default_rules.yaml``. The length bounds apply to
    tutor (assistant) turns only: a student may well write "help?", but a two-word tutor reply
    cannot guide and a 2000-character one is a lecture. ``min_green_score`` counts distinct
    green-flag codes in the final tutor turn, on top of the question mark ``require_question``
    already demands.
    """

    rules_path: str | None = None
    min_turn_chars: int = 20
    max_turn_chars: int = 2000
    require_question: bool = True
    min_green_score: int = 0

    def __post_init__(self) -> None:
        if self.min_turn_chars < 0 or self.max_turn_chars < self.min_turn_chars:
            raise ValueError(
                f"FilterOptions needs 0 <= min_turn_chars <= max_turn_chars, "
                f"got {self.min_turn_chars} and {self.max_turn_chars}."
            )
        if self.min_green_score < 0:
            raise ValueError(f"FilterOptions.min_green_score must be >= 0, got {self.min_green_score}.")


@dataclass
class FilterResult:
    """What one run did. ``reasons`` counts records per drop-reason code; a record rejected for two
    different codes counts under both, so the values may add up to more than ``rejected``."""

    total: int
    accepted: int
    rejected: int
    reasons: dict[str, int]
    accepted_path: str
    rejected_path: str
    metrics_path: str

    @property
    def acceptance_rate(self) -> float:
        return round(self.accepted / self.total, 4) if self.total else 0.0


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One compiled pattern from the rules file."""

    code: str
    pattern: str  # as written in the file (macros not expanded), for error messages and debugging
    regex: re.Pattern[str]
    explanation: str
    roles: frozenset[str] = frozenset({"assistant"})
    scope: str = "turn"


@dataclass(frozen=True)
class Rules:
    """A parsed and compiled rules file. Build it once (``load_rules``) and reuse it for every record:
    compiling ~40 regexes per record would dominate the run time."""

    source: str
    format_flags: tuple[Rule, ...] = ()
    red_flags: tuple[Rule, ...] = ()
    green_flags: tuple[Rule, ...] = ()
    # Derived once so check_record does not re-partition the red flags for every turn.
    _red_turn: tuple[Rule, ...] = field(default=(), repr=False, compare=False)
    _red_statement: tuple[Rule, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_red_turn", tuple(r for r in self.red_flags if r.scope == "turn"))
        object.__setattr__(self, "_red_statement", tuple(r for r in self.red_flags if r.scope == "statement"))


_CODE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_MACRO_RE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
_TOP_KEYS = frozenset({"version", "macros", "format_flags", "red_flags", "green_flags"})
_ENTRY_KEYS = {
    "format_flags": frozenset({"code", "pattern", "explanation", "roles"}),
    "red_flags": frozenset({"code", "pattern", "explanation", "scope"}),
    "green_flags": frozenset({"code", "pattern", "explanation"}),
}


def default_rules_path() -> Any:
    """The packaged rules file (a Traversable, so it also works from a wheel or zip)."""
    return resources.files("socratic_sdg") / "rules" / "default_rules.yaml"


def load_rules(path: str | os.PathLike[str] | None = None) -> Rules:
    """Read, validate and compile a rules file (None = the packaged default).

    Every problem raises ValueError with one sentence naming the file and the offending entry, so a
    typo in a hand-edited rules file fails the pipeline step up front instead of silently letting
    leaks through.
    """
    source = default_rules_path() if path is None else Path(path)
    name = str(source)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"Rules file {name} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"Rules file {name} cannot be read: {exc}.") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        if mark is not None:
            problem = f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
        raise ValueError(f"Rules file {name} is not valid YAML: {problem}.") from exc

    if data is None:
        raise ValueError(f"Rules file {name} is empty; it needs at least a red_flags list.")
    if not isinstance(data, dict):
        raise ValueError(f"Rules file {name} must be a YAML mapping at the top level, got {type(data).__name__}.")
    unknown = sorted(set(map(str, data)) - _TOP_KEYS)
    if unknown:
        raise ValueError(
            f"Rules file {name} has unknown top-level key(s) {', '.join(unknown)}; "
            f"expected only {', '.join(sorted(_TOP_KEYS))}."
        )
    if "red_flags" not in data:
        raise ValueError(f"Rules file {name} has no red_flags list.")

    macros = _parse_macros(name, data.get("macros"))
    sections = {
        section: _parse_section(name, section, data.get(section), macros)
        for section in ("format_flags", "red_flags", "green_flags")
    }
    return Rules(source=name, **sections)


def _parse_macros(name: str, raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"Rules file {name}: macros must be a mapping of NAME: regex, got {type(raw).__name__}.")
    macros: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", key):
            raise ValueError(f"Rules file {name}: macro name {key!r} must be UPPER_CASE letters, digits and _.")
        if not isinstance(value, str):
            raise ValueError(f"Rules file {name}: macro {key} must be a string regex.")
        macros[key] = value
    return macros


def _expand(name: str, where: str, pattern: str, macros: Mapping[str, str], depth: int = 0) -> str:
    """Replace ${NAME} with its macro, recursively (macros may use other macros)."""
    if depth > 10:
        raise ValueError(f"Rules file {name}: {where} expands macros more than 10 levels deep (a macro cycle?).")

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in macros:
            raise ValueError(f"Rules file {name}: {where} uses undefined macro ${{{key}}}.")
        return _expand(name, where, macros[key], macros, depth + 1)

    return _MACRO_RE.sub(substitute, pattern)


def _parse_section(name: str, section: str, raw: Any, macros: Mapping[str, str]) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError(f"Rules file {name}: {section} must be a list of entries, got {type(raw).__name__}.")
    rules = []
    for index, entry in enumerate(raw):
        where = f"{section}[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"Rules file {name}: {where} must be a mapping with code, pattern and explanation.")
        if isinstance(entry.get("code"), str):
            where = f"{section}[{index}] ({entry['code']})"
        unknown = sorted(set(map(str, entry)) - _ENTRY_KEYS[section])
        if unknown:
            raise ValueError(f"Rules file {name}: {where} has unknown key(s) {', '.join(unknown)}.")
        for key in ("code", "pattern", "explanation"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ValueError(f"Rules file {name}: {where} needs a non-empty string {key!r}.")
        code = entry["code"]
        if not _CODE_RE.match(code):
            raise ValueError(f"Rules file {name}: {where} code must be snake_case (a-z, 0-9, _).")
        expanded = _expand(name, where, entry["pattern"], macros)
        try:
            regex = re.compile(expanded, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"Rules file {name}: {where} pattern is not a valid regex ({exc}).") from exc
        if regex.search("") is not None:
            raise ValueError(f"Rules file {name}: {where} pattern matches empty text, so it would flag everything.")

        roles = frozenset({"assistant"})
        if section == "format_flags":
            raw_roles = entry.get("roles", sorted(ROLES))
            if (
                not isinstance(raw_roles, list)
                or not raw_roles
                or not all(isinstance(role, str) and role in ROLES for role in raw_roles)
            ):
                raise ValueError(
                    f"Rules file {name}: {where} roles must be a non-empty list drawn from {sorted(ROLES)}."
                )
            roles = frozenset(raw_roles)
        scope = entry.get("scope", "turn")
        if scope not in SCOPES:
            raise ValueError(f"Rules file {name}: {where} scope must be one of {sorted(SCOPES)}, got {scope!r}.")
        rules.append(
            Rule(code=code, pattern=entry["pattern"], regex=regex, explanation=entry["explanation"].strip(),
                 roles=roles, scope=scope)
        )
    return tuple(rules)


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

# Characters that may follow the question mark of a question: closing quotes and brackets,
# markdown emphasis, and the end of inline LaTeX ("... $x$?$", "\(x?\)").
_TRAILING_CLOSERS = "\"'\u201d\u2019\u00bb)]}*_`$\\ \t\r\n"
# Sentence ends: whitespace after . ! ? (so "3.5" is not split), or a line break.
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?\uff1f])\s+|\n+")


def ends_with_question(text: str) -> bool:
    """True when the last meaningful character is a question mark (closers ignored)."""
    return text.rstrip(_TRAILING_CLOSERS).endswith(("?", "\uff1f"))


def statements(text: str) -> list[str]:
    """The sentences of ``text`` that do not end with a question mark.

    Red flags with ``scope: statement`` only look here: "x = 4." asserts the answer, while
    "What happens if x = 4?" is a fair experiment to propose.
    """
    return [s for s in (part.strip() for part in _SENTENCE_SPLIT.split(text)) if s and not ends_with_question(s)]


def _snippet(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def _reason(code: str, detail: str) -> dict[str, str]:
    return {"code": code, "detail": detail}


def _matched(rule: Rule, where: str, match: re.Match[str]) -> dict[str, str]:
    """A drop reason that quotes the offending text, so a reviewer sees why without re-running."""
    return _reason(rule.code, f'{where}: "{_snippet(match.group(0))}" \u2014 {rule.explanation}')


def _where(index: int, role: str) -> str:
    return f"message {index + 1} ({role})"


def _first_match(rule: Rule, texts: Sequence[str]) -> re.Match[str] | None:
    for text in texts:
        match = rule.regex.search(text)
        if match:
            return match
    return None


def _role_problem(roles: Sequence[str]) -> str | None:
    """Describe the first way the role sequence breaks system? (user assistant)+, or None."""
    for index, role in enumerate(roles):
        if role not in ROLES:
            return f"message {index + 1} has unknown role {role!r}; expected user, assistant or system"
    start = 1 if roles and roles[0] == "system" else 0
    if start == len(roles):
        return "there is only a system message; a dialogue needs a user turn and an assistant turn"
    for offset, role in enumerate(roles[start:]):
        index = start + offset
        expected = "user" if offset % 2 == 0 else "assistant"
        if role == "system":
            return f"message {index + 1} is a system message, which is only allowed as the first message"
        if role != expected:
            return (
                f"message {index + 1} is {role!r} but {expected!r} was expected "
                "(turns must alternate, starting with user)"
            )
    if roles[-1] != "assistant":
        return "the conversation ends with a user turn; it must end with the tutor's (assistant) reply"
    return None


def _evaluate(
    record: Mapping[str, Any], rules: Rules, opts: FilterOptions
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """All drop reasons for one record, plus the quality summary of its final tutor turn."""
    reasons: list[dict[str, str]] = []
    quality: dict[str, Any] = {"green_flags": [], "green_score": 0, "ends_with_question": False}

    metadata = record.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        reasons.append(_reason(BAD_METADATA, f"metadata must be a JSON object, got {type(metadata).__name__}"))

    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        got = "missing" if messages is None else ("an empty list" if messages == [] else type(messages).__name__)
        reasons.append(_reason(NO_MESSAGES, f"messages must be a non-empty list of {{role, content}}, got {got}"))
        return reasons, quality

    malformed = False
    for index, message in enumerate(messages):
        if not (
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            malformed = True
            got = _snippet(json.dumps(message, ensure_ascii=False))
            reasons.append(_reason(
                BAD_MESSAGE, f"message {index + 1} must be an object with string 'role' and 'content', got {got}"
            ))
    if malformed:
        return reasons, quality  # roles and contents cannot be trusted past this point

    roles = [message["role"] for message in messages]
    problem = _role_problem(roles)
    if problem:
        reasons.append(_reason(BAD_ROLES, problem))

    for index, message in enumerate(messages):
        role, content = message["role"], message["content"]
        where = _where(index, role)
        text = content.strip()
        if not text:
            reasons.append(_reason(EMPTY_TURN, f"{where} is empty"))
            continue

        seen: set[str] = set()  # several patterns may share a code; one reason per code per turn is enough
        for rule in rules.format_flags:
            if role in rule.roles and rule.code not in seen:
                match = rule.regex.search(content)
                if match:
                    seen.add(rule.code)
                    reasons.append(_matched(rule, where, match))
        if role != "assistant":
            continue

        if len(text) < opts.min_turn_chars:
            reasons.append(_reason(
                TURN_TOO_SHORT, f"{where} has {len(text)} characters, fewer than the minimum {opts.min_turn_chars}"
            ))
        elif len(text) > opts.max_turn_chars:
            reasons.append(_reason(
                TURN_TOO_LONG, f"{where} has {len(text)} characters, more than the maximum {opts.max_turn_chars}"
            ))

        sentences: list[str] | None = None
        for rule in rules._red_turn:
            if rule.code not in seen:
                match = rule.regex.search(text)
                if match:
                    seen.add(rule.code)
                    reasons.append(_matched(rule, where, match))
        for rule in rules._red_statement:
            if rule.code not in seen:
                if sentences is None:
                    sentences = statements(text)
                match = _first_match(rule, sentences)
                if match:
                    seen.add(rule.code)
                    reasons.append(_matched(rule, where, match))

    # The final tutor turn is the reply being graded: it must hand the thinking back to the student.
    final = messages[-1]["content"].strip()
    if roles[-1] == "assistant" and final:
        asks = ends_with_question(final)
        green = sorted({rule.code for rule in rules.green_flags if rule.regex.search(final)})
        quality = {"green_flags": green, "green_score": len(green), "ends_with_question": asks}
        where = _where(len(messages) - 1, "assistant")
        if opts.require_question and not asks:
            reasons.append(_reason(
                NO_GUIDING_QUESTION,
                f'{where} ends with "{_snippet(final[-60:])}" instead of a question; '
                "a Socratic reply must end by asking the student something",
            ))
        if len(green) < opts.min_green_score:
            reasons.append(_reason(
                LOW_GREEN_SCORE,
                f"{where} matches {len(green)} guiding-move pattern(s) ({', '.join(green) or 'none'}), "
                f"fewer than the required {opts.min_green_score}",
            ))
    return reasons, quality


def check_record(record: Mapping[str, Any], rules: Rules, opts: FilterOptions) -> list[dict[str, str]]:
    """Drop reasons for one record (``[{"code", "detail"}, ...]``); an empty list means accept."""
    return _evaluate(record, rules, opts)[0]


# --------------------------------------------------------------------------------------------
# Run over files
# --------------------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """Yield (line number, decoded text or None if not UTF-8, best-effort text) per non-blank line.

    Read as bytes so one badly encoded line becomes one rejected record instead of aborting the
    run; read_jsonl would raise on the first bad line, which is right for trusted intermediate
    files but not for a gate whose job is to sort good from bad.
    """
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark from an editor, not content
            try:
                text: str | None = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            yield line_no, text, raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _parse_line(line_no: int, text: str | None) -> tuple[dict[str, Any] | None, str]:
    """The record on a line, or None and why it is not one."""
    if text is None:
        return None, f"line {line_no} is not valid UTF-8"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"line {line_no} is not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(value, dict):
        return None, f"line {line_no} is a JSON {type(value).__name__}, not an object"
    return value, ""


def _annotated(record: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``record`` with ``metadata[key] = value``; the input record is left untouched."""
    out = dict(record)
    metadata = record.get("metadata")
    if metadata is None:
        out["metadata"] = {key: value}
    elif isinstance(metadata, dict):
        out["metadata"] = {**metadata, key: value}
    else:  # keep the unusable original rather than lose it
        out["metadata"] = {"original_metadata": metadata, key: value}
    return out


def run(
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    opts: FilterOptions | None = None,
) -> FilterResult:
    """Split ``input_path`` (JSONL dialogues) into accepted and rejected files under ``output_dir``.

    Streams line by line, so memory does not grow with the input. Blank lines are not records and
    are skipped; every other line lands in exactly one output, in input order. Outputs are written
    through temp files and renamed into place, so a failed run never leaves half a dataset behind.
    """
    opts = opts or FilterOptions()
    rules = load_rules(opts.rules_path)  # fail on a bad rules file before touching any output
    input_path = Path(input_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"filter input {input_path} does not exist or is not a file")
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    accepted_path = out_dir / ACCEPTED_FILE
    rejected_path = out_dir / REJECTED_FILE
    metrics_path = out_dir / METRICS_FILE

    total = accepted = 0
    reason_counts: Counter[str] = Counter()
    with AtomicWriter(accepted_path) as accepted_out, AtomicWriter(rejected_path) as rejected_out:
        for line_no, text, best_effort in _lines(input_path):
            total += 1
            record, problem = _parse_line(line_no, text)
            if record is None:
                reason_counts[INVALID_JSON] += 1
                raw = {"raw": best_effort, "metadata": {"drop_reasons": [_reason(INVALID_JSON, problem)]}}
                rejected_out.write(dumps(raw) + "\n")
                continue
            reasons, quality = _evaluate(record, rules, opts)
            if reasons:
                reason_counts.update({reason["code"] for reason in reasons})
                rejected_out.write(dumps(_annotated(record, "drop_reasons", reasons)) + "\n")
            else:
                accepted += 1
                accepted_out.write(dumps(_annotated(record, "quality", quality)) + "\n")

    result = FilterResult(
        total=total,
        accepted=accepted,
        rejected=total - accepted,
        reasons=dict(sorted(reason_counts.items())),
        accepted_path=str(accepted_path),
        rejected_path=str(rejected_path),
        metrics_path=str(metrics_path),
    )
    write_json(metrics_path, {
        "total": result.total,
        "accepted": result.accepted,
        "rejected": result.rejected,
        "reasons": result.reasons,
        "acceptance_rate": result.acceptance_rate,
    })
    return result
