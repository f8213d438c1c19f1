"""Stage 4, filter: generated dialogues -> ``accepted.jsonl`` / ``rejected.jsonl`` + metrics.

The whole dataset exists to teach one behaviour: answer a student with a guiding question, never
with the answer. A generator model leaks answers often, and one leaked sample teaches the opposite
of what we want, so this stage is a strict, explainable gate in front of training. Layers, each
over every tutor (assistant) turn of every conversation and each configurable:

1. **format** (code + ``format_flags`` in the rules file): a well-formed user/assistant dialogue
   ending on a tutor turn; tutor turns within length bounds; no prompt-template leftovers, speaker
   labels or refusal boilerplate; optionally, tutor turns in the expected language.
2. **rules** (``red_flags`` / ``green_flags`` / ``weak_questions``): no tutor turn words an answer
   ("the answer is", "so x =", a walkthrough to the result...); the final tutor turn ends with a
   question that guides (not just "Does that make sense?").
3. **leakage** (:mod:`.filter_leakage`, data in ``leakage:``): no tutor turn states the final result
   of the hidden ``metadata.reference_answer`` (or of the student's own equation when there is no
   reference), as a value, fraction, decimal, expression or final equation, unless the student
   already stated it.
4. **judge** (:mod:`.filter_judge`, optional, needs an endpoint): an LLM scores a rubric.
5. **dedup** (:mod:`.filter_dedup`): exact and near-duplicate student questions and conversations;
   the first accepted occurrence wins.

A leak anywhere rejects the whole conversation, because every tutor turn is a training target.
Nothing is ever dropped silently: every input line lands in exactly one output file; rejected
records keep all their fields plus ``metadata.drop_reasons`` (``[{code, layer, detail}]``), accepted
ones carry ``metadata.quality`` (the scores of every layer that ran); ``filter_metrics.json``
counts records per reason and per layer.

Records stream through in blocks (``block_size``): memory holds one block plus what dedup indexes
(signatures of accepted records).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from importlib import resources
from operator import or_
from pathlib import Path
from typing import Any

import yaml

from . import filter_dialogue as dialogue_layer
from . import filter_leakage as leakage_layer
from .records import (
    AtomicFileSet,
    JsonlError,
    check_complete,
    dumps,
    iter_json_lines,
    parse_json_line,
    remove_stale_temps,
    require_input,
)
from . import artifacts

ACCEPTED_FILE = artifacts.ACCEPTED_FILE
REJECTED_FILE = artifacts.REJECTED_FILE
METRICS_FILE = artifacts.FILTER_METRICS_FILE
OUTPUT_FILES = (ACCEPTED_FILE, REJECTED_FILE, METRICS_FILE)  # written as one set (records.AtomicFileSet)
PRODUCER = "the filter (socratic-sdg filter, or the pipeline's filter step)"
INPUT_MADE_BY = "the conversations.jsonl that `socratic-sdg generate` (the pipeline's generate step) writes"

ROLES = frozenset({"system", "user", "assistant"})
SCOPES = frozenset({"turn", "statement"})
LAYERS = ("format", "rules", "leakage", "judge", "dedup")

# Drop-reason codes produced by code (the rules file adds its own, e.g. states_answer).
INVALID_JSON = "invalid_json"
NO_MESSAGES = "no_messages"
BAD_MESSAGE = "bad_message"
BAD_METADATA = "bad_metadata"
BAD_ROLES = "bad_roles"
EMPTY_TURN = "empty_turn"
TURN_TOO_SHORT = "turn_too_short"
TURN_TOO_LONG = "turn_too_long"
MESSAGE_TOO_LONG = "message_too_long"
WRONG_LANGUAGE = "wrong_language"
NO_GUIDING_QUESTION = "no_guiding_question"
LOW_GREEN_SCORE = "low_green_score"
LEAK_VALUE = leakage_layer.LEAK_VALUE
LEAK_EXPRESSION = leakage_layer.LEAK_EXPRESSION


@dataclass(frozen=True)
class FilterOptions:
    """Knobs for one filter run, grouped by layer. Every layer can be switched off.

    ``rules_path`` None means the packaged ``rules/default_rules.yaml``. The length bounds apply to
    tutor (assistant) turns only: a student may well write "help?", but a tutor reply under 10
    characters ("Why?", "Ok.") is a broken generation rather than a move, while a short question
    ("What is 6 × 2?", the move human tutors make most) guides; a 2000-character one is a lecture. ``min_green_score`` counts distinct
    green-flag codes in the final tutor turn, on top of the question ``require_question`` demands.

    The judge runs when ``judge`` is true, ``judge_endpoint`` is set or ``judge_complete`` (a
    ``complete(messages) -> str`` callable, for tests or other clients) is given; its endpoint,
    key and model default to ``LLM_API_BASE`` / ``LLM_API_KEY`` / ``LLM_MODEL``. ``chunks_path``
    (chunks.jsonl) gives the judge the source passage of each record (by ``metadata.chunk_id``).
    """

    rules_path: str | None = None
    # Which tutor turns are graded: "all" (every tutor turn of a generated dialogue is a training
    # target) or "last" (earlier turns are given context, e.g. a human tutor's history in a labelled set).
    graded_turns: str = "all"
    # format
    min_turn_chars: int = 10  # "What is 6 × 2?" is a whole Socratic move; shorter is a broken generation
    max_turn_chars: int = 2000
    # Any message (student turns too) longer than this rejects the record before a pattern runs:
    # a 50 MB turn took 16 s and 1.9 GB through the checks. 0 = no limit.
    max_message_chars: int = 100_000
    check_format: bool = True  # pattern checks and length bounds; the dialogue structure is always checked
    language: str | None = None  # e.g. "en": reject tutor turns written in another language
    # rules
    check_rules: bool = True
    require_question: bool = True
    min_green_score: int = 0
    # leakage
    check_leakage: bool = True
    leakage_use_problem: bool = True  # without a reference answer, solve the student's equation
    # judge (optional, needs an endpoint)
    judge: bool = False
    judge_endpoint: str | None = None
    judge_model: str | None = None
    judge_api_key: str | None = field(default=None, repr=False)
    judge_prompt_path: str | None = None
    judge_max_concurrency: int = 8
    judge_max_retries: int = 3
    judge_timeout: float = 60.0
    judge_min_mistake_identification: int = 3
    judge_min_guidance: int = 3
    judge_min_actionability: int = 3
    judge_min_grounding: int = 3
    judge_min_tone: int = 3
    judge_reject_wrong_answer: bool = True
    judge_on_error: str = "reject"
    judge_complete: Callable[[list[dict[str, str]]], str] | None = field(default=None, repr=False, compare=False)
    chunks_path: str | None = None
    # dedup
    dedup: bool = True
    dedup_questions: bool = True
    dedup_conversations: bool = True
    dedup_near: bool = True
    dedup_question_threshold: float = 0.8
    dedup_conversation_threshold: float = 0.8
    dedup_num_perm: int = 64
    dedup_bands: int = 16
    dedup_numbers_must_match: bool = True
    # streaming
    block_size: int = 512

    def __post_init__(self) -> None:
        if self.min_turn_chars < 0 or self.max_turn_chars < self.min_turn_chars:
            raise ValueError(
                f"FilterOptions needs 0 <= min_turn_chars <= max_turn_chars, "
                f"got {self.min_turn_chars} and {self.max_turn_chars}."
            )
        if self.max_message_chars < 0:
            raise ValueError(f"FilterOptions.max_message_chars must be >= 0 (0 = no limit), got {self.max_message_chars}.")
        if self.min_green_score < 0:
            raise ValueError(f"FilterOptions.min_green_score must be >= 0, got {self.min_green_score}.")
        if self.graded_turns not in ("all", "last"):
            raise ValueError(f"FilterOptions.graded_turns must be 'all' or 'last', got {self.graded_turns!r}.")
        if self.block_size < 1:
            raise ValueError(f"FilterOptions.block_size must be >= 1, got {self.block_size}.")
        if self.language is not None and not re.fullmatch(r"[a-z]{2,3}", self.language):
            raise ValueError(f"FilterOptions.language must be a language code such as 'en', got {self.language!r}.")
        if self.dedup:
            self.dedup_options()  # validates thresholds and LSH shape
        if self.judge_enabled:
            self.judge_options()

    @property
    def judge_enabled(self) -> bool:
        return bool(self.judge or self.judge_endpoint or self.judge_complete is not None)

    def judge_options(self):
        from .filter_judge import JudgeOptions

        return JudgeOptions(
            endpoint=self.judge_endpoint, model=self.judge_model, api_key=self.judge_api_key,
            prompt_path=self.judge_prompt_path, max_concurrency=self.judge_max_concurrency,
            max_retries=self.judge_max_retries, timeout=self.judge_timeout,
            min_mistake_identification=self.judge_min_mistake_identification, min_guidance=self.judge_min_guidance,
            min_actionability=self.judge_min_actionability,
            min_grounding=self.judge_min_grounding, min_tone=self.judge_min_tone,
            reject_wrong_answer=self.judge_reject_wrong_answer, on_error=self.judge_on_error,
            graded_turns=self.graded_turns,
        )

    def dedup_options(self):
        from .filter_dedup import DedupOptions

        return DedupOptions(
            questions=self.dedup_questions, conversations=self.dedup_conversations, near=self.dedup_near,
            question_threshold=self.dedup_question_threshold, conversation_threshold=self.dedup_conversation_threshold,
            num_perm=self.dedup_num_perm, bands=self.dedup_bands, numbers_must_match=self.dedup_numbers_must_match,
        )

    def layers(self) -> list[str]:
        """The layers this configuration runs, in order."""
        enabled = {"format": True, "rules": self.check_rules, "leakage": self.check_leakage,
                   "judge": self.judge_enabled, "dedup": self.dedup}
        return [layer for layer in LAYERS if enabled[layer]]


@dataclass
class FilterResult:
    """What one run did. ``reasons`` counts records per drop-reason code; a record rejected for two
    different codes counts under both, so the values may add up to more than ``rejected``.
    ``layers`` counts, per layer, the records it rejected (again, a record may count under several)."""

    total: int
    accepted: int
    rejected: int
    reasons: dict[str, int]
    accepted_path: str
    rejected_path: str
    metrics_path: str
    layers: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

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
    # Speed hint: the pattern can only match text containing one of these (lower-case) strings, so
    # the regex is skipped when none occurs. Empty: always run the regex.
    requires: tuple[str, ...] = ()
    requires_set: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    # The same pattern compiled without IGNORECASE, for lower-cased text (Python's re is ~30% faster
    # that way); None when the pattern has case-sensitive parts or upper-case letters.
    lower_regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "requires_set", frozenset(self.requires))
        expanded = self.regex.pattern
        if "(?-i" not in expanded and not re.search(r"[A-Z]", re.sub(r"\\.", "", expanded)):
            try:
                object.__setattr__(self, "lower_regex", re.compile(expanded, self.regex.flags & ~re.IGNORECASE))
            except re.error:
                pass

    def find(self, text: str, lowered: str) -> re.Match[str] | None:
        """Search ``text`` (``lowered`` is ``text.lower()``), through the faster variant if any."""
        if self.lower_regex is not None and len(lowered) == len(text):
            if self.lower_regex.search(lowered) is None:
                return None
        return self.regex.search(text)

    def search(self, text: str, lowered: str, present: frozenset[str] | None = None) -> re.Match[str] | None:
        """Search ``text``; ``present`` (from :meth:`Rules.present`) makes the hint check cheap."""
        if self.requires:
            if present is not None:
                if present.isdisjoint(self.requires_set):
                    return None
            elif not any(literal in lowered for literal in self.requires):
                return None
        return self.regex.search(text)


_HINT_WORD_RE = re.compile(r"[a-z]+")


class _Hints:
    """Which rules a text may match, by their ``requires`` hints: a bitmask over the rules (bit ``i``
    for rule ``i`` of ``Rules.all_rules``; rules without hints always set).

    Equivalent to testing every literal with ``in`` (:meth:`Rules.present`), but faster: a literal
    of letters only occurs inside one run of letters of the text, so each distinct word is matched
    against the ~90 word literals once and remembered; other one-character literals are found with
    one character-class scan, and only the few remaining literals are searched. The rules to run for
    a section and a mask are remembered too, so a turn never loops over rules it cannot match.
    """

    _MAX_ENTRIES = 50_000  # remembered words and picks: a bound on memory, not a tuning knob

    def __init__(self, rules: Rules):
        every = rules.all_rules
        always = 0
        by_literal: dict[str, int] = {}
        for index, rule in enumerate(every):
            if not rule.requires:
                always |= 1 << index
            for literal in rule.requires:
                by_literal[literal] = by_literal.get(literal, 0) | 1 << index
        self.always = always
        self.word_literals = tuple((lit, m) for lit, m in by_literal.items() if _HINT_WORD_RE.fullmatch(lit))
        singles = {lit: m for lit, m in by_literal.items() if len(lit) == 1 and not _HINT_WORD_RE.fullmatch(lit)}
        self.char_masks = singles
        self.char_re = re.compile("[" + "".join(re.escape(ch) for ch in singles) + "]") if singles else None
        self.other_literals = tuple((lit, m) for lit, m in by_literal.items()
                                    if len(lit) > 1 and not _HINT_WORD_RE.fullmatch(lit))
        format_literals = {lit for rule in rules.format_flags for lit in rule.requires}
        self.format_literals = tuple((lit, m) for lit, m in by_literal.items() if lit in format_literals)
        self.words: dict[str, int] = {}
        bits = {id(rule): 1 << index for index, rule in enumerate(every)}
        self.sections: dict[str, tuple[tuple[Rule, int], ...]] = {
            name: tuple((rule, bits[id(rule)]) for rule in section)
            for name, section in (("red_turn", rules._red_turn), ("red_statement", rules._red_statement),
                                  ("green", rules.green_flags), ("weak", rules.weak_questions))
        }
        for role in ROLES:
            self.sections["format:" + role] = tuple((rule, bits[id(rule)]) for rule in rules.format_flags
                                                    if role in rule.roles)
        self.section_masks = {name: sum(bit for _, bit in section) for name, section in self.sections.items()}
        self.picks: dict[tuple[str, int], tuple[Rule, ...]] = {}

    def mask(self, lowered: str, *, format_only: bool = False) -> int:
        """The hint mask of a lower-cased text (``format_only``: only format flags' bits are exact)."""
        mask = self.always
        if format_only:
            for literal, bits in self.format_literals:
                if literal in lowered:
                    mask |= bits
            return mask
        words = self.words
        found = _HINT_WORD_RE.findall(lowered)
        try:
            mask = reduce(or_, map(words.__getitem__, found), mask)
        except KeyError:  # a word not seen yet: work out (and remember) which literals each word holds
            if len(words) >= self._MAX_ENTRIES:
                words.clear()
            for word in found:
                bits = words.get(word)
                if bits is None:
                    bits = words[word] = reduce(or_, (b for literal, b in self.word_literals if literal in word), 0)
                mask |= bits
        if self.char_re is not None:
            for ch in set(self.char_re.findall(lowered)):
                mask |= self.char_masks[ch]
        for literal, bits in self.other_literals:
            if bits & ~mask and literal in lowered:
                mask |= bits
        return mask

    def pick(self, section: str, mask: int) -> tuple[Rule, ...]:
        """The rules of ``section`` (in file order) whose hint holds under ``mask``."""
        key = (section, mask & self.section_masks.get(section, 0))
        rules = self.picks.get(key)
        if rules is None:
            rules = tuple(rule for rule, bit in self.sections.get(section, ()) if mask & bit)
            if len(self.picks) >= self._MAX_ENTRIES:
                self.picks.clear()
            self.picks[key] = rules
        return rules


@dataclass(frozen=True)
class Rules:
    """A parsed and compiled rules file. Build it once (``load_rules``) and reuse it for every record:
    compiling ~60 regexes per record would dominate the run time."""

    source: str
    format_flags: tuple[Rule, ...] = ()
    red_flags: tuple[Rule, ...] = ()
    green_flags: tuple[Rule, ...] = ()
    weak_questions: tuple[Rule, ...] = ()
    leakage: leakage_layer.LeakageRules | None = None
    dialogue: dialogue_layer.DialogueRules | None = None
    languages: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Derived once so check_record does not re-partition the red flags for every turn.
    _red_turn: tuple[Rule, ...] = field(default=(), repr=False, compare=False)
    _red_statement: tuple[Rule, ...] = field(default=(), repr=False, compare=False)
    _literals: tuple[str, ...] = field(default=(), repr=False, compare=False)
    _format_literals: tuple[str, ...] = field(default=(), repr=False, compare=False)
    _hints: _Hints | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_red_turn", tuple(r for r in self.red_flags if r.scope == "turn"))
        object.__setattr__(self, "_red_statement", tuple(r for r in self.red_flags if r.scope == "statement"))
        every = self.all_rules
        object.__setattr__(self, "_literals", tuple(sorted({lit for rule in every for lit in rule.requires})))
        object.__setattr__(self, "_format_literals", tuple(sorted({lit for rule in self.format_flags for lit in rule.requires})))
        object.__setattr__(self, "_hints", _Hints(self))

    @property
    def all_rules(self) -> tuple[Rule, ...]:
        """Every pattern rule, in the order the hint masks number them."""
        return self.format_flags + self.red_flags + self.green_flags + self.weak_questions

    def present(self, lowered: str, *, format_only: bool = False) -> frozenset[str]:
        """The ``requires`` strings that occur in a (lower-cased) text: computed once per turn."""
        literals = self._format_literals if format_only else self._literals
        return frozenset([literal for literal in literals if literal in lowered])


_CODE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_MACRO_RE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
_TOP_KEYS = frozenset({"version", "macros", "format_flags", "red_flags", "green_flags", "weak_questions",
                       "leakage", "dialogue", "languages"})
_ENTRY_KEYS = {
    "format_flags": frozenset({"code", "pattern", "explanation", "roles", "requires"}),
    "red_flags": frozenset({"code", "pattern", "explanation", "scope", "requires"}),
    "green_flags": frozenset({"code", "pattern", "explanation", "requires"}),
    "weak_questions": frozenset({"code", "pattern", "explanation", "requires"}),
}
_LEAKAGE_PATTERNS = ("assert_before", "offer_before", "answer_nouns", "claim_before", "tag_question", "verification",
                     "problem_cues")
_LEAKAGE_KEYS = frozenset({"trivial_values", *_LEAKAGE_PATTERNS})


def default_rules_path() -> Any:
    """The packaged rules file (a Traversable, so it also works from a wheel or zip)."""
    return resources.files("socratic_sdg") / "rules" / "default_rules.yaml"


def _read_rules_yaml(source: Any) -> tuple[str, Any]:
    name = str(source)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"Rules file {name} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"Rules file {name} cannot be read: {exc}.") from exc
    try:
        return name, yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        if mark is not None:
            problem = f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
        raise ValueError(f"Rules file {name} is not valid YAML: {problem}.") from exc


_DEFAULT_DATA: dict[str, Any] | None = None


def _default_data() -> dict[str, Any]:
    """The packaged file's data sections (leakage, languages), for rules files that omit them."""
    global _DEFAULT_DATA
    if _DEFAULT_DATA is None:
        name, data = _read_rules_yaml(default_rules_path())
        _DEFAULT_DATA = {"name": name, "leakage": data.get("leakage"), "dialogue": data.get("dialogue"),
                         "languages": data.get("languages")}
    return _DEFAULT_DATA


def load_rules(path: str | os.PathLike[str] | None = None) -> Rules:
    """Read, validate and compile a rules file (None = the packaged default).

    Every problem raises ValueError with one sentence naming the file and the offending entry, so a
    typo in a hand-edited rules file fails the pipeline step up front instead of silently letting
    leaks through. The pattern sections (format/red/green flags, weak questions) come from the file
    as written; the data of the other layers (``leakage``, ``languages``) falls back to the packaged
    defaults when the file has none, so a custom rules file never switches the leakage layer off.
    """
    source = default_rules_path() if path is None else Path(path)
    name, data = _read_rules_yaml(source)

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
        for section in ("format_flags", "red_flags", "green_flags", "weak_questions")
    }
    if data.get("leakage") is not None:
        leakage = _parse_leakage(name, data["leakage"], macros)
    else:
        defaults = _default_data()
        leakage = _parse_leakage(defaults["name"], defaults["leakage"], {})
    if data.get("dialogue") is not None:
        dialogue = _parse_dialogue(name, data["dialogue"], macros, leakage)
    else:
        defaults = _default_data()
        dialogue = _parse_dialogue(defaults["name"], defaults["dialogue"], {}, leakage)
    raw_languages = data["languages"] if data.get("languages") is not None else _default_data()["languages"]
    languages = _parse_languages(name, raw_languages)
    return Rules(source=name, leakage=leakage, dialogue=dialogue, languages=languages, **sections)


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


def _compile(name: str, where: str, pattern: str, macros: Mapping[str, str]) -> re.Pattern[str]:
    expanded = _expand(name, where, pattern, macros)
    try:
        regex = re.compile(expanded, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"Rules file {name}: {where} pattern is not a valid regex ({exc}).") from exc
    if regex.search("") is not None and not where.startswith("leakage"):
        raise ValueError(f"Rules file {name}: {where} pattern matches empty text, so it would flag everything.")
    return regex


def _parse_requires(name: str, where: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw or not all(isinstance(item, str) and item for item in raw):
        raise ValueError(f"Rules file {name}: {where} requires must be a non-empty list of strings.")
    return tuple(item.lower() for item in raw)


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
        regex = _compile(name, where, entry["pattern"], macros)

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
                 roles=roles, scope=scope, requires=_parse_requires(name, where, entry.get("requires")))
        )
    return tuple(rules)


def _parse_leakage(name: str, raw: Any, macros: Mapping[str, str]) -> leakage_layer.LeakageRules:
    if not isinstance(raw, dict):
        raise ValueError(f"Rules file {name}: leakage must be a mapping of settings, got {type(raw).__name__}.")
    unknown = sorted(set(map(str, raw)) - _LEAKAGE_KEYS)
    if unknown:
        raise ValueError(f"Rules file {name}: leakage has unknown key(s) {', '.join(unknown)}.")
    missing = sorted(_LEAKAGE_KEYS - set(raw))
    if missing:
        raise ValueError(f"Rules file {name}: leakage needs {', '.join(missing)}.")
    trivial = raw["trivial_values"]
    if not isinstance(trivial, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in trivial):
        raise ValueError(f"Rules file {name}: leakage.trivial_values must be a list of numbers.")
    patterns = {}
    for key in _LEAKAGE_PATTERNS:
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise ValueError(f"Rules file {name}: leakage.{key} must be a non-empty regex string.")
        patterns[key] = _compile(name, f"leakage.{key}", raw[key], macros)
    return leakage_layer.LeakageRules(trivial_values=frozenset(float(v) for v in trivial), **patterns)


_DIALOGUE_PATTERNS = ("affirmation", "qualifier", "pending_question", "states_about")


def _parse_dialogue(name: str, raw: Any, macros: Mapping[str, str],
                    leakage: leakage_layer.LeakageRules) -> dialogue_layer.DialogueRules:
    if not isinstance(raw, dict):
        raise ValueError(f"Rules file {name}: dialogue must be a mapping of patterns, got {type(raw).__name__}.")
    unknown = sorted(set(map(str, raw)) - set(_DIALOGUE_PATTERNS))
    if unknown:
        raise ValueError(f"Rules file {name}: dialogue has unknown key(s) {', '.join(unknown)}.")
    patterns = {}
    for key in _DIALOGUE_PATTERNS:
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ValueError(f"Rules file {name}: dialogue.{key} must be a non-empty regex string.")
        patterns[key] = _compile(name, f"dialogue.{key}", raw[key], macros)
    if "subject" not in patterns["pending_question"].groupindex:
        raise ValueError(f"Rules file {name}: dialogue.pending_question needs a (?P<subject>...) group.")
    return dialogue_layer.DialogueRules(tag_question=leakage.tag_question, **patterns)


def _parse_languages(name: str, raw: Any) -> dict[str, frozenset[str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(code, str) and isinstance(words, list) and words and all(isinstance(w, str) for w in words)
        for code, words in raw.items()
    ):
        raise ValueError(f"Rules file {name}: languages must map a language code to a list of common words.")
    return {code: frozenset(word.lower() for word in words) for code, words in raw.items()}


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

# Characters that may follow the question mark of a question: closing quotes and brackets,
# markdown emphasis, and the end of inline LaTeX ("... $x$?$", "\(x?\)").
_TRAILING_CLOSERS = "\"'\u201d\u2019\u00bb)]}*_`$\\ \t\r\n"
# Sentence ends: whitespace after . ! ? (so "3.5" is not split), or a line break.
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?\uff1f])\s+|\n+")
_WORD_RE = re.compile(r"[^\W\d_]+")


def ends_with_question(text: str) -> bool:
    """True when the last meaningful character is a question mark (closers ignored)."""
    return text.rstrip(_TRAILING_CLOSERS).endswith(("?", "\uff1f"))


def sentences(text: str) -> list[str]:
    return [s for s in (part.strip() for part in _SENTENCE_SPLIT.split(text)) if s]


def statements(text: str) -> list[str]:
    """The sentences of ``text`` that do not end with a question mark.

    Red flags with ``scope: statement`` only look here: "x = 4." asserts the answer, while
    "What happens if x = 4?" is a fair experiment to propose.
    """
    return [s for s in sentences(text) if not ends_with_question(s)]


def _snippet(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def _reason(code: str, layer: str, detail: str) -> dict[str, str]:
    return {"code": code, "layer": layer, "detail": detail}


def _matched(rule: Rule, layer: str, where: str, match: re.Match[str]) -> dict[str, str]:
    """A drop reason that quotes the offending text, so a reviewer sees why without re-running."""
    return _reason(rule.code, layer, f'{where}: "{_snippet(match.group(0))}" \u2014 {rule.explanation}')


def _where(index: int, role: str) -> str:
    return f"message {index + 1} ({role})"


_VALUE_TAIL_RE = re.compile(r"[\d.,/]*(?:\s*[%°])?")


def _with_value(match: re.Match[str]) -> str:
    """The matched text, extended to the end of a number it cuts ("the sum is 6" -> "... 60")."""
    end = match.end()
    tail = _VALUE_TAIL_RE.match(match.string, end)
    if tail and match.group(0)[-1:].isdigit():
        end = tail.end()
    return match.string[match.start():end].rstrip(".,")


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


def _language_problem(text: str, expected: str, languages: Mapping[str, frozenset[str]]) -> str | None:
    """Why ``text`` looks written in another language than ``expected``, or None.

    Counts common function words per language: a tutor turn of five or more words with clearly more
    of another language's words than of the expected one's is in the wrong language. Scripts other
    than Latin count as foreign for Latin-script languages.
    """
    words = _WORD_RE.findall(text.lower())
    if len(words) < 5:
        return None
    letters = [ch for word in words for ch in word]
    latin = sum(1 for ch in letters if ch < "\u0250")
    if latin < 0.5 * len(letters):
        return "most of its letters are not in the Latin script"
    hits = {code: sum(1 for w in words if w in vocab) for code, vocab in languages.items()}
    own = hits.get(expected, 0)
    other_code, other = max(((c, h) for c, h in hits.items() if c != expected), key=lambda kv: kv[1], default=("", 0))
    if other >= 2 and (own == 0 or other >= 2 * own + 2):
        return f"{other} common '{other_code}' words against {own} '{expected}' ones"
    return None


class _Context:
    """Per-record state shared by the layers: what the student said before each message (lazily)."""

    def __init__(self, messages: Sequence[Mapping[str, Any]], rules: Rules):
        self.messages = messages
        self.rules = rules
        self._states: list[leakage_layer.StudentState] = []  # built on first use: most records never ask
        self._done = 0  # messages folded into _states[-1]

    def student_before(self, index: int) -> leakage_layer.StudentState:
        if self.rules.leakage is None:
            return leakage_layer.StudentState()
        if not self._states or index < self._done:  # first use, or an earlier message after a later one
            self._states = [leakage_layer.StudentState(self.rules.leakage)]
            self._done = 0
        state = self._states[-1]
        if self._done < index:
            state = leakage_layer._snapshot(state)
            for message in self.messages[self._done:index]:
                if message["role"] == "user":
                    state.add(message["content"], self.rules.leakage)
            self._states.append(state)
            self._done = index
        return state


def _evaluate(
    record: Mapping[str, Any], rules: Rules, opts: FilterOptions
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Drop reasons from the per-record layers (format, rules, leakage), plus the quality summary."""
    reasons: list[dict[str, str]] = []
    quality: dict[str, Any] = {"green_flags": [], "green_score": 0, "ends_with_question": False}

    metadata = record.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        reasons.append(_reason(BAD_METADATA, "format", f"metadata must be a JSON object, got {type(metadata).__name__}"))

    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        got = "missing" if messages is None else ("an empty list" if messages == [] else type(messages).__name__)
        reasons.append(_reason(NO_MESSAGES, "format", f"messages must be a non-empty list of {{role, content}}, got {got}"))
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
                BAD_MESSAGE, "format", f"message {index + 1} must be an object with string 'role' and 'content', got {got}"
            ))
    if malformed:
        return reasons, quality  # roles and contents cannot be trusted past this point
    if opts.max_message_chars:
        for index, message in enumerate(messages):
            if len(message["content"]) > opts.max_message_chars:
                reasons.append(_reason(MESSAGE_TOO_LONG, "format", (
                    f"{_where(index, message['role'])} has {len(message['content']):,} characters, more than "
                    f"max_message_chars {opts.max_message_chars:,}; not checked further")))
                return reasons, quality

    roles = [message["role"] for message in messages]
    problem = _role_problem(roles)
    if problem:
        reasons.append(_reason(BAD_ROLES, "format", problem))

    context = _Context(messages, rules)
    hints = rules._hints
    exempted: list[str] = []
    tutor_turns = 0
    last_mask = 0
    last_sentences: list[str] | None = None
    first_graded = len(messages) - 1 if opts.graded_turns == "last" else 0
    for index, message in enumerate(messages):
        role, content = message["role"], message["content"]
        where = _where(index, role)
        text = content.strip()
        if index < first_graded:
            continue  # context, not a training target
        if not text:
            reasons.append(_reason(EMPTY_TURN, "format", f"{where} is empty"))
            continue

        mask = hints.mask(content.lower(), format_only=role != "assistant" or not opts.check_rules)
        seen: set[str] = set()  # several patterns may share a code; one reason per code per turn is enough
        if opts.check_format:
            for rule in hints.pick("format:" + role, mask):
                if rule.code not in seen:
                    match = rule.regex.search(content)
                    if match:
                        seen.add(rule.code)
                        reasons.append(_matched(rule, "format", where, match))
        if role != "assistant":
            continue
        tutor_turns += 1
        last_mask = mask
        last_sentences = None

        if opts.check_format:
            if len(text) < opts.min_turn_chars:
                reasons.append(_reason(
                    TURN_TOO_SHORT, "format",
                    f"{where} has {len(text)} characters, fewer than the minimum {opts.min_turn_chars}",
                ))
            elif len(text) > opts.max_turn_chars:
                reasons.append(_reason(
                    TURN_TOO_LONG, "format",
                    f"{where} has {len(text)} characters, more than the maximum {opts.max_turn_chars}",
                ))
            if opts.language:
                why = _language_problem(text, opts.language, rules.languages)
                if why:
                    reasons.append(_reason(
                        WRONG_LANGUAGE, "format", f"{where} does not look written in '{opts.language}' ({why})"
                    ))

        if not opts.check_rules:
            continue
        lowered = text.lower()
        found: list[tuple[Rule, re.Match[str]]] = []
        for rule in hints.pick("red_turn", mask):
            if rule.code not in seen:
                match = rule.find(text, lowered)
                if match:
                    seen.add(rule.code)
                    found.append((rule, match))
        statements_lowered: list[tuple[str, str]] | None = None
        for rule in hints.pick("red_statement", mask):
            if rule.code not in seen:
                if statements_lowered is None:
                    last_sentences = sentences(text)
                    statements_lowered = [(s, s.lower()) for s in last_sentences if not ends_with_question(s)]
                match = next((m for m in (rule.find(s, low) for s, low in statements_lowered) if m), None)
                if match:
                    seen.add(rule.code)
                    found.append((rule, match))
        for rule, match in found:
            # The tutor repeating the student's own result ("Nice work getting x = 3!") is not a leak.
            if rules.leakage is not None and leakage_layer.exempt_by_claims(_with_value(match), context.student_before(index)):
                exempted.append(rule.code)
                continue
            reasons.append(_matched(rule, "rules", where, match))

    quality["format"] = {"tutor_turns": tutor_turns, "language": opts.language}

    # The final tutor turn is the reply being graded: it must hand the thinking back to the student.
    final = messages[-1]["content"].strip()
    if opts.check_rules and roles[-1] == "assistant" and final:
        asks = ends_with_question(final)
        final_lower = final.lower()
        green = sorted({rule.code for rule in hints.pick("green", last_mask) if rule.find(final, final_lower)})
        quality.update({"green_flags": green, "green_score": len(green), "ends_with_question": asks})
        quality["rules"] = {"green_flags": green, "exempted": sorted(set(exempted))}
        where = _where(len(messages) - 1, "assistant")
        if opts.require_question and not asks:
            reasons.append(_reason(
                NO_GUIDING_QUESTION, "rules",
                f'{where} ends with "{_snippet(final[-60:])}" instead of a question; '
                "a Socratic reply must end by asking the student something",
            ))
        elif opts.require_question and rules.weak_questions:
            questions = [s for s in (last_sentences if last_sentences is not None else sentences(final))
                         if ends_with_question(s)]
            weak_rules = hints.pick("weak", last_mask)
            weak = [q for q in questions if any(rule.regex.search(q) for rule in weak_rules)]
            if questions and len(weak) == len(questions):
                reasons.append(_reason(
                    NO_GUIDING_QUESTION, "rules",
                    f'{where} only asks "{_snippet(weak[-1][-60:])}", a comprehension check rather than a question '
                    "that guides the student's next step",
                ))
        if len(green) < opts.min_green_score:
            reasons.append(_reason(
                LOW_GREEN_SCORE, "rules",
                f"{where} matches {len(green)} guiding-move pattern(s) ({', '.join(green) or 'none'}), "
                f"fewer than the required {opts.min_green_score}",
            ))

    if opts.check_leakage and rules.leakage is not None and not problem:
        reference = metadata.get("reference_answer") if isinstance(metadata, dict) else None
        findings, leak_quality = _leakage(messages, reference if isinstance(reference, str) else None, rules, opts, context)
        reasons.extend(findings)
        quality["leakage"] = leak_quality
        if rules.dialogue is not None and roles[-1] == "assistant":
            graded = [len(messages) - 1] if opts.graded_turns == "last" else [
                i for i, m in enumerate(messages) if m["role"] == "assistant"]
            for index in graded:
                for finding in dialogue_layer.check_reply(messages, index, metadata if isinstance(metadata, dict) else {},
                                                          rules.dialogue, rules.leakage):
                    reasons.append(_reason(finding.code, "leakage",
                                           f'{_where(index, "assistant")}: "{_snippet(finding.quote)}" {finding.detail}'))
    return reasons, quality


def _leakage(messages, reference, rules: Rules, opts: FilterOptions, context: _Context):
    if leakage_layer.PRECHECKS:
        if not any(message["role"] == "assistant" and leakage_layer.may_state_values(message["content"])
                   for message in messages):
            return [], {"targets": [], "target_source": None, "skipped": "no tutor turn states a number or expression"}
        if leakage_layer.innocent(messages):
            return [], {"targets": [], "target_source": None, "skipped": "the tutor only repeats the student's numbers"}
    targets, source = leakage_layer.targets_for(messages, reference, rules.leakage, use_problem=opts.leakage_use_problem)
    reasons = []
    first_graded = len(messages) - 1 if opts.graded_turns == "last" else 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or not targets or index < first_graded:
            continue
        findings = leakage_layer.check_turn(message["content"], targets, lambda i=index: context.student_before(i),
                                            rules.leakage)
        for finding in findings:
            origin = ("the hidden reference answer" if finding.target.source == "reference_answer"
                      else "the solution of the student's own problem")
            what = "expression" if finding.target.kind == "expr" else "result"
            reasons.append(_reason(
                finding.code, "leakage",
                f'{_where(index, "assistant")}: "{_snippet(finding.sentence)}" states {finding.mention.text.strip()}, '
                f"the final {what} of {origin} ({finding.target.describe()}), which the student has not given",
            ))
    return reasons, {"targets": [t.describe() for t in targets], "target_source": source}


def check_record(record: Mapping[str, Any], rules: Rules, opts: FilterOptions) -> list[dict[str, str]]:
    """Drop reasons for one record from the per-record layers (format, rules, leakage); an empty
    list means those layers accept it. The judge and dedup layers need a whole run (:func:`run`)."""
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
    value, problem = parse_json_line(text)  # also a line nested too deeply to parse, or a 5000-digit number
    if problem is not None:
        return None, f"line {line_no} is not valid JSON ({problem})"
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


def _blocks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    block: list[Any] = []
    for item in items:
        block.append(item)
        if len(block) >= size:
            yield block
            block = []
    if block:
        yield block


def load_passages(path: str | os.PathLike[str]) -> dict[str, str]:
    """chunk_id -> text from a chunks.jsonl (for the judge's grounding score)."""
    passages: dict[str, str] = {}
    path = require_input(path, "chunks file", "the chunks.jsonl that `socratic-sdg chunk` (the pipeline's chunk step) writes")
    for _, chunk in iter_json_lines(path):  # a line that is not UTF-8 or not JSON: an error naming file and line
        if isinstance(chunk, dict) and isinstance(chunk.get("chunk_id"), str) and isinstance(chunk.get("text"), str):
            passages[chunk["chunk_id"]] = chunk["text"]
    return passages


@dataclass
class _Entry:
    line_no: int
    record: dict[str, Any] | None
    raw: str
    reasons: list[dict[str, str]]
    quality: dict[str, Any]

    @property
    def name(self) -> str:
        rid = self.record.get("id") if self.record is not None else None
        return str(rid) if isinstance(rid, (str, int)) and str(rid) else f"line {self.line_no}"


def run(
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    opts: FilterOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> FilterResult:
    """Split ``input_path`` (JSONL dialogues) into accepted and rejected files under ``output_dir``.

    Streams in blocks of ``opts.block_size`` lines. Blank lines are not records and are skipped;
    every other line lands in exactly one output, in input order. The three outputs are one
    :class:`~.records.AtomicFileSet`: written through temp files and switched together, so a failed
    run (a broken rules file, an unusable judge endpoint) never leaves half a dataset behind, and a
    run killed between the switches leaves the set marked incomplete, which the export refuses.
    Temp files a killed earlier run left in ``output_dir`` are removed first. An input in which no
    line is a JSON record (a PDF, a text file) is an error, not a result: a JsonlError naming it.
    """
    opts = opts or FilterOptions()
    started = time.perf_counter()
    rules = load_rules(opts.rules_path)  # fail on a bad rules file before touching any output
    if opts.language and opts.language not in rules.languages:
        raise ValueError(f"language {opts.language!r} has no word list in the rules file "
                         f"(available: {', '.join(sorted(rules.languages)) or 'none'}).")
    input_path = require_input(input_path, "filter input", INPUT_MADE_BY)
    check_complete(input_path)  # a conversations.jsonl whose writer was killed half way through its set
    passages = load_passages(opts.chunks_path) if (opts.judge_enabled and opts.chunks_path) else {}
    judge = None
    if opts.judge_enabled:
        from .filter_judge import Judge

        judge = Judge(opts.judge_options(), complete=opts.judge_complete)
    dedup = None
    if opts.dedup:
        from .filter_dedup import Deduplicator

        dedup = Deduplicator(opts.dedup_options())

    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir, OUTPUT_FILES)
    layer_names = opts.layers()

    total = accepted = parsed = 0
    first_problem = ""
    reason_counts: Counter[str] = Counter()
    layer_counts: Counter[str] = Counter()
    try:
        with AtomicFileSet(out_dir, OUTPUT_FILES, kind="filter", producer=PRODUCER) as outputs:
            accepted_out, rejected_out = outputs[ACCEPTED_FILE], outputs[REJECTED_FILE]
            for block in _blocks(_lines(input_path), opts.block_size):
                entries: list[_Entry] = []
                for line_no, text, best_effort in block:
                    record, problem = _parse_line(line_no, text)
                    if record is None:
                        first_problem = first_problem or problem
                        entries.append(_Entry(line_no, None, best_effort, [_reason(INVALID_JSON, "format", problem)], {}))
                        continue
                    parsed += 1
                    reasons, quality = _evaluate(record, rules, opts)
                    quality["layers"] = layer_names
                    entries.append(_Entry(line_no, record, "", reasons, quality))

                if judge is not None:
                    pending = [e for e in entries if e.record is not None and not e.reasons]
                    if pending:
                        outcomes = judge.judge_many([
                            (e.record, passages.get(str((e.record.get("metadata") or {}).get("chunk_id", ""))))
                            for e in pending
                        ])
                        for entry, outcome in zip(pending, outcomes):
                            entry.reasons.extend(outcome.reasons)
                            entry.quality["judge"] = outcome.quality

                if dedup is not None:
                    from .filter_dedup import DedupCandidate

                    pending = [e for e in entries if e.record is not None and not e.reasons]
                    if pending:
                        results = dedup.check_block([DedupCandidate(e.name, e.record["messages"]) for e in pending])
                        for entry, (reason, dedup_quality) in zip(pending, results):
                            if reason is not None:
                                entry.reasons.append(reason)
                            entry.quality["dedup"] = dedup_quality

                for entry in entries:
                    total += 1
                    if entry.reasons:
                        reason_counts.update({reason["code"] for reason in entry.reasons})
                        layer_counts.update({reason.get("layer", "format") for reason in entry.reasons})
                        if entry.record is None:
                            out = {"raw": entry.raw, "metadata": {"drop_reasons": entry.reasons}}
                        else:
                            out = _annotated(entry.record, "drop_reasons", entry.reasons)
                        rejected_out.write(dumps(out) + "\n")
                    else:
                        accepted += 1
                        accepted_out.write(dumps(_annotated(entry.record, "quality", entry.quality)) + "\n")
                if progress is not None:
                    progress(f"[filter] {total} records, {accepted} accepted")
            if total and not parsed:  # before the switch: the outputs of an earlier run stay
                raise _not_records(input_path, total, first_problem)
            result, metrics = _result(out_dir, total, accepted, reason_counts, layer_counts, layer_names,
                                      rules, judge, dedup, started)
            json.dump(metrics, outputs[METRICS_FILE], ensure_ascii=False, indent=2, sort_keys=True)
            outputs[METRICS_FILE].write("\n")
    finally:
        if judge is not None:
            judge.close()
    return result


def _not_records(path: Path, lines: int, first_problem: str) -> JsonlError:
    """The error for an input in which no line is a JSON record."""
    with path.open("rb") as handle:
        head = handle.read(5)
    if head == b"%PDF-":
        return JsonlError(f"{path} is a PDF, not JSONL: the filter reads {INPUT_MADE_BY}, so convert, chunk and "
                          "generate from the PDF first")
    return JsonlError(f"{path} has no JSON record on any of its {lines} non-blank lines ({first_problem}), so it is not "
                      f"the filter's input: pass {INPUT_MADE_BY}")


def _result(out_dir: Path, total: int, accepted: int, reason_counts: Counter[str], layer_counts: Counter[str],
            layer_names: list[str], rules: Rules, judge: Any, dedup: Any, started: float) -> tuple[FilterResult, dict[str, Any]]:
    """The run's FilterResult and the content of filter_metrics.json."""
    accepted_path, rejected_path, metrics_path = (out_dir / name for name in OUTPUT_FILES)
    seconds = time.perf_counter() - started
    result = FilterResult(
        total=total,
        accepted=accepted,
        rejected=total - accepted,
        reasons=dict(sorted(reason_counts.items())),
        accepted_path=str(accepted_path),
        rejected_path=str(rejected_path),
        metrics_path=str(metrics_path),
        layers={layer: layer_counts.get(layer, 0) for layer in LAYERS},
        seconds=round(seconds, 3),
    )
    metrics: dict[str, Any] = {
        "total": result.total,
        "accepted": result.accepted,
        "rejected": result.rejected,
        "reasons": result.reasons,
        "acceptance_rate": result.acceptance_rate,
        "rejected_by_layer": result.layers,
        "layers": layer_names,
        "seconds": result.seconds,
        "records_per_second": round(total / seconds, 1) if seconds > 0 and total else 0.0,
        "rules": rules.source,
    }
    if judge is not None:
        metrics["judge"] = dict(judge.stats)
    if dedup is not None:
        metrics["dedup"] = dedup.metrics()
    return result, metrics
