"""The deterministic checks of one conversation, layer by layer (format, rules, leakage); the judge and dedup run in the stage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any


from . import dialogue as dialogue_layer
from . import leakage as leakage_layer
from .options import (
    BAD_MESSAGE, BAD_METADATA, BAD_ROLES, EMPTY_TURN, FilterOptions, LOW_GREEN_SCORE, MESSAGE_TOO_LONG, NO_GUIDING_QUESTION, NO_MESSAGES, ROLES,
    TURN_TOO_LONG, TURN_TOO_SHORT, WRONG_LANGUAGE
)
from .rules import Rule, Rules


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


def evaluate_conversation(
    record: Mapping[str, Any], rules: Rules, opts: FilterOptions
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Drop reasons from the per-record layers (format, rules, leakage), plus the quality summary.

    One pass over the turns runs the format and rules checks of each turn; the final tutor turn
    (the reply being graded) and the leakage layer then look at the whole dialogue."""
    reasons: list[dict[str, str]] = []
    quality: dict[str, Any] = {"green_flags": [], "green_score": 0, "ends_with_question": False}
    messages = _check_structure(record, opts, reasons)
    if messages is None:
        return reasons, quality  # roles and contents cannot be trusted past this point
    roles = [message["role"] for message in messages]
    problem = _role_problem(roles)
    if problem:
        reasons.append(_reason(BAD_ROLES, "format", problem))

    turns = _Turns(messages, rules)
    first_graded = len(messages) - 1 if opts.graded_turns == "last" else 0
    for index in range(first_graded, len(messages)):  # earlier turns are context, not training targets
        _check_turn(turns, index, rules, opts, reasons)
    quality["format"] = {"tutor_turns": turns.tutor_turns, "language": opts.language}
    if opts.check_rules and roles[-1] == "assistant" and messages[-1]["content"].strip():
        _check_final_turn(turns, rules, opts, reasons, quality)
    if opts.check_leakage and rules.leakage is not None and not problem:
        metadata = record.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        reference = metadata.get("reference_answer")
        findings, quality["leakage"] = _leakage(messages, reference if isinstance(reference, str) else None, rules, opts, turns.context)
        reasons.extend(findings)
        if rules.dialogue is not None and roles[-1] == "assistant":
            _check_dialogue(messages, metadata, rules, opts, reasons)
    return reasons, quality


def _check_structure(record: Mapping[str, Any], opts: FilterOptions, reasons: list[dict[str, str]]) -> list[dict[str, str]] | None:
    """The format layer's checks of the record's shape: the messages, or None when they cannot be read."""
    metadata = record.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        reasons.append(_reason(BAD_METADATA, "format", f"metadata must be a JSON object, got {type(metadata).__name__}"))
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        got = "missing" if messages is None else ("an empty list" if messages == [] else type(messages).__name__)
        reasons.append(_reason(NO_MESSAGES, "format", f"messages must be a non-empty list of {{role, content}}, got {got}"))
        return None
    malformed = False
    for index, message in enumerate(messages):
        if not (isinstance(message, dict) and isinstance(message.get("role"), str) and isinstance(message.get("content"), str)):
            malformed = True
            got = _snippet(json.dumps(message, ensure_ascii=False))
            reasons.append(_reason(BAD_MESSAGE, "format", f"message {index + 1} must be an object with string 'role' and 'content', got {got}"))
    if malformed:
        return None
    if opts.max_message_chars:
        for index, message in enumerate(messages):
            if len(message["content"]) > opts.max_message_chars:
                reasons.append(_reason(MESSAGE_TOO_LONG, "format", (
                    f"{_where(index, message['role'])} has {len(message['content']):,} characters, more than "
                    f"max_message_chars {opts.max_message_chars:,}; not checked further")))
                return None
    return messages


class _Turns:
    """What the pass over the turns leaves for the checks of the whole dialogue."""

    def __init__(self, messages: list[dict[str, str]], rules: Rules):
        self.messages = messages
        self.context = _Context(messages, rules)
        self.exempted: list[str] = []  # rules codes a tutor turn matched only by repeating the student's result
        self.tutor_turns = 0
        self.last_mask = 0  # the rule hints of the last tutor turn
        self.last_sentences: list[str] | None = None  # its sentences, when the rules layer split it


def _check_turn(turns: _Turns, index: int, rules: Rules, opts: FilterOptions, reasons: list[dict[str, str]]) -> None:
    """The format checks of one turn, and for a tutor turn its length, language and red rules."""
    message = turns.messages[index]
    role, content = message["role"], message["content"]
    where = _where(index, role)
    text = content.strip()
    if not text:
        reasons.append(_reason(EMPTY_TURN, "format", f"{where} is empty"))
        return
    hints = rules._hints
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
        return
    turns.tutor_turns += 1
    turns.last_mask = mask
    turns.last_sentences = None
    if opts.check_format:
        _check_tutor_format(text, where, rules, opts, reasons)
    if opts.check_rules:
        _check_red_rules(turns, index, text, where, mask, seen, rules, reasons)


def _check_tutor_format(text: str, where: str, rules: Rules, opts: FilterOptions, reasons: list[dict[str, str]]) -> None:
    if len(text) < opts.min_turn_chars:
        reasons.append(_reason(TURN_TOO_SHORT, "format", f"{where} has {len(text)} characters, fewer than the minimum {opts.min_turn_chars}"))
    elif len(text) > opts.max_turn_chars:
        reasons.append(_reason(TURN_TOO_LONG, "format", f"{where} has {len(text)} characters, more than the maximum {opts.max_turn_chars}"))
    if opts.language:
        why = _language_problem(text, opts.language, rules.languages)
        if why:
            reasons.append(_reason(WRONG_LANGUAGE, "format", f"{where} does not look written in '{opts.language}' ({why})"))


def _check_red_rules(turns: _Turns, index: int, text: str, where: str, mask: int, seen: set[str], rules: Rules,
                     reasons: list[dict[str, str]]) -> None:
    """Red rules of a tutor turn: on the whole turn, and on its statements (not its questions)."""
    hints = rules._hints
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
                turns.last_sentences = sentences(text)
                statements_lowered = [(s, s.lower()) for s in turns.last_sentences if not ends_with_question(s)]
            match = next((m for m in (rule.find(s, low) for s, low in statements_lowered) if m), None)
            if match:
                seen.add(rule.code)
                found.append((rule, match))
    for rule, match in found:
        # The tutor repeating the student's own result ("Nice work getting x = 3!") is not a leak.
        if rules.leakage is not None and leakage_layer.exempt_by_claims(_with_value(match), turns.context.student_before(index)):
            turns.exempted.append(rule.code)
            continue
        reasons.append(_matched(rule, "rules", where, match))


def _check_final_turn(turns: _Turns, rules: Rules, opts: FilterOptions, reasons: list[dict[str, str]], quality: dict[str, Any]) -> None:
    """The final tutor turn is the reply being graded: it must hand the thinking back to the student."""
    hints = rules._hints
    final = turns.messages[-1]["content"].strip()
    asks = ends_with_question(final)
    final_lower = final.lower()
    green = sorted({rule.code for rule in hints.pick("green", turns.last_mask) if rule.find(final, final_lower)})
    quality.update({"green_flags": green, "green_score": len(green), "ends_with_question": asks})
    quality["rules"] = {"green_flags": green, "exempted": sorted(set(turns.exempted))}
    where = _where(len(turns.messages) - 1, "assistant")
    if opts.require_question and not asks:
        reasons.append(_reason(
            NO_GUIDING_QUESTION, "rules",
            f'{where} ends with "{_snippet(final[-60:])}" instead of a question; a Socratic reply must end by asking the student something',
        ))
    elif opts.require_question and rules.weak_questions:
        questions = [s for s in (turns.last_sentences if turns.last_sentences is not None else sentences(final)) if ends_with_question(s)]
        weak_rules = hints.pick("weak", turns.last_mask)
        weak = [q for q in questions if any(rule.regex.search(q) for rule in weak_rules)]
        if questions and len(weak) == len(questions):
            reasons.append(_reason(
                NO_GUIDING_QUESTION, "rules",
                f'{where} only asks "{_snippet(weak[-1][-60:])}", a comprehension check rather than a question that guides the student\'s next step',
            ))
    if len(green) < opts.min_green_score:
        reasons.append(_reason(
            LOW_GREEN_SCORE, "rules",
            f"{where} matches {len(green)} guiding-move pattern(s) ({', '.join(green) or 'none'}), fewer than the required {opts.min_green_score}",
        ))


def _check_dialogue(messages: list[dict[str, str]], metadata: dict, rules: Rules, opts: FilterOptions, reasons: list[dict[str, str]]) -> None:
    """The dialogue checks of the leakage layer (false praise, answering the tutor's own question) per graded tutor turn."""
    graded = [len(messages) - 1] if opts.graded_turns == "last" else [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    for index in graded:
        for finding in dialogue_layer.check_reply(messages, index, metadata, rules.dialogue, rules.leakage):
            reasons.append(_reason(finding.code, "leakage", f'{_where(index, "assistant")}: "{_snippet(finding.quote)}" {finding.detail}'))


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


def check_conversation(record: Mapping[str, Any], rules: Rules, opts: FilterOptions) -> list[dict[str, str]]:
    """Drop reasons for one record from the per-record layers (format, rules, leakage); an empty
    list means those layers accept it. The judge and dedup layers need a whole run (:func:`run`)."""
    return evaluate_conversation(record, rules, opts)[0]
