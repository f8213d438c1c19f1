"""The rules file: phrase rules per layer, the leakage and dialogue patterns, the languages; loaded and compiled once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import reduce
from importlib import resources
from operator import or_
from pathlib import Path
from typing import Any

import yaml

from . import dialogue as dialogue_layer
from . import leakage as leakage_layer
from .options import ROLES, SCOPES


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
    # Derived once so check_conversation does not re-partition the red flags for every turn.
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
    return resources.files("socratic_sdg.filtering") / "data" / "default_rules.yaml"


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
