"""Checks that read the tutor's reply against the dialogue it answers (part of the leakage layer).

A reply can be wrong for a tutor without stating the final answer, and what makes it wrong is in the
turns before it:

* **praise of a wrong result** (``praises_wrong_answer``): the student's latest turn is wrong and
  the reply tells them they are right ("Great job!", "That's correct!", "Exactly") with nothing that
  qualifies it ("but", "not quite", "let's check"). A student who hears that a wrong result is right
  stops looking for the mistake. Praise of effort ("Good try", "Nice start") is fine. The student's
  turn counts as wrong when the record says so (``metadata.wrong_student_turns``: the generation
  flows plant wrong attempts and record where), or when it ends on a number of their own that
  appears neither in the worked reference (``reference_answer`` / ``reference_solution``) nor in
  the problem and is not the result of a correct computation they wrote out (so only a worked
  reference with its intermediate values can convict an intermediate step).
* **answering the question the student was asked** (``answers_pending_question``): the tutor's
  last question before the student's turn was "What is X?", and the reply states "X is ..."
  (or "X has ...") itself, in a statement or a leading question. That is the telling move: the
  student's part of the exchange is done for them. Restating the student's own answer is exempt.

Patterns are data (``dialogue:`` in the rules file); the logic is here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import math as fm

PRAISES_WRONG_ANSWER = "praises_wrong_answer"
ANSWERS_PENDING_QUESTION = "answers_pending_question"
DIALOGUE_CODES = frozenset({PRAISES_WRONG_ANSWER, ANSWERS_PENDING_QUESTION})


@dataclass(frozen=True)
class DialogueRules:
    """The ``dialogue:`` section of the rules file, compiled."""

    affirmation: re.Pattern[str]  # tells the student they are right
    qualifier: re.Pattern[str]  # words that take the affirmation back or point at a problem
    pending_question: re.Pattern[str]  # "What is X?" with the subject in group "subject"
    states_about: re.Pattern[str]  # the verbs that state something about the subject ("is", "has")
    tag_question: re.Pattern[str]  # "..., right?": a statement asking for agreement


@dataclass(frozen=True)
class Finding:
    code: str
    index: int  # message index of the tutor turn
    quote: str
    detail: str


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
# A statement with a question tacked on after a comma or dash ("X is Y, can you check ...?"): the
# part before still states something.
_TACKED_QUESTION = re.compile(r"[,;:\u2014\u2013]\s*(?:-\s*)?(?=(?:so\s+|and\s+|now\s+)?(?:can|could|would|will|do|does|did|"
                              r"what|how|why|which|where|when|is|are)\b)|\s+-\s+(?=\w)", re.IGNORECASE)
_NUMBER_RE = re.compile(r"(?<![\w.])[-−]?\d[\d,]*(?:\.\d+)?(?![\d])")
_WORD_RE = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an the of to in on at for and or is are was were be it its this that these those with by as "
                  "also all any some your you we our they their he she his her has have had".split())
_ARITHMETIC_RE = re.compile(
    r"(?P<a>\d[\d,]*(?:\.\d+)?)\s*(?P<op>[-+−x×*/÷]|plus|minus|times|divided\s+by|multiplied\s+by)\s*"
    r"(?P<b>\d[\d,]*(?:\.\d+)?)\s*(?:=|equals|is(?:\s+equal\s+to)?|was|makes|gives(?:\s+(?:me|us|you))?)\s*[$€£]?\s*"
    r"(?P<c>\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if s.strip()]


def _is_question(sentence: str) -> bool:
    return sentence.rstrip("\"'\u201d\u2019)]*_` ").endswith("?")


def _numbers(text: str) -> list[float]:
    out = []
    for literal in _NUMBER_RE.findall(text.replace("\u2212", "-")):
        try:
            out.append(abs(float(literal.replace(",", ""))))
        except ValueError:
            continue
    return out


def _close(a: float, b: float) -> bool:
    return fm.close(a, b, 0.0) or abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def _computed_correctly(text: str, value: float) -> bool:
    """True when ``text`` writes out a computation "a op b = value" that is right."""
    for match in _ARITHMETIC_RE.finditer(text.replace("\u2212", "-")):
        try:
            a, b, c = (float(match.group(k).replace(",", "")) for k in ("a", "b", "c"))
        except ValueError:
            continue
        if not _close(c, value):
            continue
        op = match.group("op").lower()
        if op in ("+", "plus"):
            result = a + b
        elif op in ("-", "−", "minus"):
            result = a - b
        elif op in ("x", "×", "*", "times") or op.startswith("multiplied"):
            result = a * b
        else:
            result = a / b if b else None
        if result is not None and abs(result - c) <= max(0.01, 0.005 * abs(c)):
            return True
    return False


def _own_results(messages: Sequence[Mapping[str, Any]], index: int, leakage_rules: Any) -> list[float]:
    """The values the student's turn at ``index`` states as results: its claims ("I got 4", "x = 4",
    a turn that is just "12?"), else (after the first turn, whose numbers are the problem's) the
    numbers it brings that no earlier turn had."""
    from .leakage import _student_turn

    latest = messages[index]["content"]
    claims = [abs(m.values[0]) for m in _student_turn(latest, index == 0, leakage_rules)[3] if m.kind == "value"]
    if claims or index == 0:
        return claims
    known = [v for m in messages[:index] for v in _numbers(m["content"])]
    return [v for v in _numbers(latest) if not any(_close(v, k) for k in known)]


_OPS = {"+": lambda a, b: a + b, "plus": lambda a, b: a + b, "-": lambda a, b: a - b, "minus": lambda a, b: a - b,
        "x": lambda a, b: a * b, "*": lambda a, b: a * b, "times": lambda a, b: a * b,
        "multiplied by": lambda a, b: a * b,
        "divided by": lambda a, b: a / b if b else None}
_NUM = r"(\d[\d,]*(?:\.\d+)?)"
# No "/": "what is 1/3?" asks for a fraction of something, not for a division.
_OP = r"\s*([-+x*]|plus|minus|times|multiplied\s+by|divided\s+by)\s*"
# "What is 85 - 77?", "85 - 77 = ?", "what is 6 times 2?"; "What times 3 is 24?" (24 / 3).
_ASKED_RESULT = re.compile(r"(?:what\s+is|what's|how\s+much\s+is|calculate|compute)\s+" + _NUM + _OP + _NUM
                           + r"\s*(?:=\s*)?\?|^\W*" + _NUM + _OP + _NUM + r"\s*=\s*\?", re.IGNORECASE)
_ASKED_FACTOR = re.compile(r"what(?:\s+number)?\s+times\s+" + _NUM + r"\s+(?:is|equals|gives(?:\s+us)?|makes)\s+"
                           + _NUM + r"\s*\?", re.IGNORECASE)


def _asked_value(question: str) -> float | None:
    """The number a plain arithmetic question asks for, or None."""
    normal = question.replace("\u00d7", "x").replace("\u2212", "-").replace("\u00f7", " divided by ")
    match = _ASKED_RESULT.search(normal)
    if match:
        groups = [g for g in match.groups() if g is not None]
        a, op, b = float(groups[0].replace(",", "")), " ".join(groups[1].lower().split()), float(groups[2].replace(",", ""))
        return _OPS[op](a, b)
    match = _ASKED_FACTOR.search(normal)
    if match:
        a, b = (float(g.replace(",", "")) for g in match.groups())
        return b / a if a else None
    return None


def _pending_question(messages: Sequence[Mapping[str, Any]], index: int) -> str | None:
    """The tutor's last question before the student's turn at ``index``."""
    if index >= 1:
        questions = [s for s in _sentences(messages[index - 1]["content"]) if _is_question(s)]
        return questions[-1] if questions else None
    if index == 0:  # a transcript whose opening tutor turns were folded into the student's first turn
        questions = [s for s in _sentences(messages[0]["content"])[:-1] if _is_question(s)]
        return questions[-1] if questions else None
    return None


def student_is_wrong(messages: Sequence[Mapping[str, Any]], index: int, metadata: Mapping[str, Any],
                     leakage_rules: Any) -> str | None:
    """Why the student turn at ``index`` is wrong, or None when nothing shows it."""
    marked = metadata.get("wrong_student_turns")
    if isinstance(marked, list) and index in marked:
        return "the generation flow planted a mistake in it"
    question = _pending_question(messages, index)
    asked = _asked_value(question) if question else None
    sentences = _sentences(messages[index]["content"])
    if asked is not None and sentences:
        answered = _numbers(sentences[-1])
        if answered and not _close(answered[-1], abs(asked)):
            return f'it answers "{question}" with {answered[-1]:g}, not {asked:g}'
    texts = [metadata.get(key) for key in ("reference_solution", "reference_answer")]
    reference = "\n".join(t for t in texts if isinstance(t, str) and t.strip())
    if not reference:
        return None
    reference_values = _numbers(reference)
    if len(set(reference_values)) < 2:
        return None  # only a final value: an intermediate result cannot be judged against it
    latest = messages[index]["content"]
    own = _own_results(messages, index, leakage_rules)
    if not own:
        return None
    result = own[-1]
    if any(_close(result, v) for v in reference_values) or _computed_correctly(latest, result):
        return None
    return f"its result {result:g} is not a value of the worked reference"


def _words(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.lower()) if w not in _STOP}


def _pending_subject(messages: Sequence[Mapping[str, Any]], reply_index: int, rules: DialogueRules) -> str | None:
    """The X of the last "What is X?" put to the student before their latest turn."""
    for index in range(reply_index - 1, max(-1, reply_index - 4), -1):
        for sentence in reversed(_sentences(messages[index]["content"])):
            if not _is_question(sentence):
                continue
            match = rules.pending_question.search(sentence)
            if match:
                subject = " ".join(match.group("subject").split()).strip(" ,.;:")
                subject = re.sub(r"^(?:a|an|the)\s+", "", subject, flags=re.IGNORECASE)
                return subject if len(subject) >= 2 else None
            if messages[index]["role"] == "assistant":
                return None  # the tutor's latest question is another kind: nothing pending to compare
    return None


def check_reply(messages: Sequence[Mapping[str, Any]], index: int, metadata: Mapping[str, Any],
                rules: DialogueRules, leakage_rules: Any = None) -> list[Finding]:
    """Findings for the tutor turn at ``index`` (the student's turn is ``index - 1``)."""
    if index < 1 or messages[index - 1].get("role") != "user":
        return []
    reply = messages[index]["content"]
    findings: list[Finding] = []
    sentences = _sentences(reply)
    statements = []
    for sentence in sentences:
        if not _is_question(sentence) or rules.tag_question.search(sentence):
            statements.append(sentence)
        else:
            statements += [part for part in _TACKED_QUESTION.split(sentence)[:-1] if part.strip()]

    opening = " ".join(s for s in sentences[:2] if not _is_question(s))
    affirmation = rules.affirmation.search(opening)
    if affirmation and not rules.qualifier.search(reply):
        why = student_is_wrong(messages, index - 1, metadata, leakage_rules)
        if why:
            findings.append(Finding(PRAISES_WRONG_ANSWER, index, affirmation.group(0),
                                    f"tells the student they are right, but their last turn is wrong ({why})"))

    subject = _pending_subject(messages, index, rules)
    if subject:
        student_words = _words(messages[index - 1]["content"])
        pattern = re.compile(r"(?<![\w])" + r"\s+".join(map(re.escape, subject.split())) + r"(?![\w])"
                             + rules.states_about.pattern, re.IGNORECASE)
        for sentence in statements:
            match = pattern.search(sentence)
            if not match:
                continue
            predicate = _words(sentence[match.end():])
            if predicate and predicate <= student_words:
                continue  # restates the student's own answer
            findings.append(Finding(ANSWERS_PENDING_QUESTION, index, sentence,
                                    f'answers the question the student was asked ("what is {subject}?") itself'))
            break
    return findings
