"""The leakage layer: does a tutor turn state the final answer?

The rules layer catches the *wording* of a leak ("the answer is", "so x ="); this layer catches the
*content*: it reads the hidden ``metadata.reference_answer``, works out what its final result is
(the boxed value, else the last stated result: a value, several values, a tuple, an inequality or
an expression), and looks for that result in every tutor turn, however it is written: ``x = 4``,
``4``, ``8/2`` on the right of an equation, ``\\frac{7}{8}``, ``0.875``, ``87.5%``, ``seven eighths``,
``2x·sin x + x²·cos x``. Without a reference answer it solves the equation in the student's first
message (numerically: degree by finite differences, roots checked) or evaluates the arithmetic
the student asked about.

Not every occurrence is a leak. How strong the evidence must be depends on the value:

* the student already stated it (a claim: ``I got x = 3``, ``12 ÷ 3 = 4``, ``Is it 4?``): never a
  leak, the tutor may confirm the student's own result;
* a distinctive value (not in the problem, not trivial): any mention is a leak, even inside a
  question ("What happens if you try x = 4?", "Is it 60 km every hour?");
* a weak value (also a number in the problem, or a trivial one like 0, 1, 2): only a mention that
  asserts it counts: ``x = 3`` in a statement, "is it 3", "the median is 5", a computation ending
  in ``= 2``. "What do you notice about the 3?" is fine.

Expressions are compared numerically (fingerprints at sample points, up to a constant for
antiderivatives); when the problem itself contains an expression equivalent to the answer
("factor x^2 + 7x + 12"), only the answer's own structure counts (sympy canonical form).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

from . import math as fm

LEAK_VALUE = "leaks_answer_value"
LEAK_EXPRESSION = "leaks_answer_expression"
LEAK_CODES = frozenset({LEAK_VALUE, LEAK_EXPRESSION})

_TRAILING = "\"'\u201d\u2019\u00bb)]}*_`$\\ \t\r\n"
_INEQUALITIES = frozenset({"<", ">", "≤", "≥"})

# The cheap pre-checks (may_state_values and innocent per record, _could_match per tutor turn) skip
# work that cannot produce a finding. False runs the full analysis everywhere: the tests compare
# both ways, and benchmarks/bench_filter.py measures what the pre-checks save.
PRECHECKS = True


@dataclass(frozen=True)
class LeakageRules:
    """The data part of the layer (``leakage:`` in the rules file), compiled."""

    trivial_values: frozenset[float]
    assert_before: re.Pattern[str]
    offer_before: re.Pattern[str]
    answer_nouns: re.Pattern[str]
    claim_before: re.Pattern[str]
    tag_question: re.Pattern[str]
    verification: re.Pattern[str]
    problem_cues: re.Pattern[str]

    def __post_init__(self) -> None:
        # The rules are part of every cache key in this module: hash the fields once, not per lookup.
        object.__setattr__(self, "_hash", hash(tuple(getattr(self, f.name) for f in fields(self))))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Target:
    """One final result to look for."""

    kind: str  # "value" | "expr" | "tuple" | "relation"
    values: tuple
    text: str
    source: str  # "reference_answer" | "problem"
    tol: float = 0.0
    var: str | None = None
    relation: str | None = None
    integration_constant: bool = False
    py: str = ""
    variables: tuple[str, ...] = ()
    value_form: bool = True

    def describe(self) -> str:
        if self.kind == "relation":
            return f"{self.var} {self.relation} {self.text}"
        if self.var and self.kind in ("value", "expr"):
            return f"{self.var} = {self.text}"
        return self.text


# --------------------------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------------------------


_SENTENCE_MARK = re.compile(r"[\n!?.]")


def _sentences(norm: str) -> tuple[tuple[int, int], ...]:
    """(start, end) of each sentence; a period between digits (3.5) does not end one."""
    bounds = []
    start = 0
    n = len(norm)
    i = 0  # marks before i were consumed by a run of marks ("?!", "...")
    for mark in _SENTENCE_MARK.finditer(norm):
        i = max(i, mark.start())
        if i != mark.start():
            continue
        ch = norm[i]
        if ch == "." and 0 < i < n - 1 and norm[i - 1].isdigit() and norm[i + 1].isdigit():
            continue
        j = i + 1
        while j < n and norm[j] in ".!?":
            j += 1
        if ch == "\n" or j >= n or norm[j].isspace() or norm[j] in "\"')]":
            bounds.append((start, j))
            start = j
            i = j
    if start < n:
        bounds.append((start, n))
    return tuple((s, e) for s, e in bounds if norm[s:e].strip())


def _sentence_of(bounds: Sequence[tuple[int, int]], pos: int) -> tuple[int, int]:
    for start, end in bounds:
        if start <= pos < end:
            return start, end
    return (0, 0)


def _is_question(sentence: str) -> bool:
    return sentence.rstrip(_TRAILING).endswith(("?", "\uff1f"))


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


def _final_mentions(mentions: Sequence[fm.Mention]) -> list[fm.Mention]:
    """The result(s) a sentence ends on: the last mention, the rest of its relation chain, and
    parallel solutions of the same variable (x = 2 or x = 3, λ = 2 and λ = 5)."""
    # A lone letter is a unit or a name here ("60 km/h", "at point P"), not a result.
    mentions = [m for m in mentions if not (m.kind == "expr" and len(m.variables) == 1 and m.py == m.variables[0])]
    if not mentions:
        return []
    last = mentions[-1]
    chosen = [last]
    if last.kind == "value" and last.relation is not None:
        chosen += [m for m in mentions if m is not last and m.item_index == last.item_index and m.kind == "value"
                   and m.chain_index >= 1]
    if last.lhs is not None:
        chosen += [m for m in mentions if m is not last and m.lhs == last.lhs and m.relation == last.relation
                   and m.kind == last.kind and m not in chosen]
    # Values the unknown is given elsewhere in the sentence: "x = 4 satisfies 2x + 3 = 11".
    chosen += [m for m in mentions if m.lhs is not None and len(m.lhs) == 1 and m.relation == "="
               and m.kind in ("value", "tuple") and m not in chosen]
    return chosen


def _target_from(mention: fm.Mention, source: str, text: str | None = None) -> list[Target]:
    shown = text or mention.text.strip()
    if mention.kind == "tuple":
        out = [Target("tuple", mention.values, shown, source)]
        out += [Target("value", (v,), _fmt(v), source) for v in dict.fromkeys(mention.values)]
        return out
    if mention.kind == "expr":
        if len(mention.variables) == 1 and mention.py == mention.variables[0]:
            return []  # just "x"
        return [Target("expr", mention.values, shown, source, var=mention.lhs if mention.lhs_kind == "var" else None,
                       integration_constant=mention.integration_constant, py=mention.py, variables=mention.variables)]
    if mention.relation in _INEQUALITIES and mention.lhs is not None and len(mention.lhs) == 1:
        return [Target("relation", mention.values, shown, source, tol=mention.tol, var=mention.lhs,
                       relation=mention.relation)]
    var = mention.lhs if mention.lhs_kind == "var" and mention.lhs and len(mention.lhs) == 1 else None
    return [Target("value", mention.values, shown, source, tol=mention.tol, var=var, value_form=mention.value_form)]


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _dedup_targets(targets: list[Target], limit: int) -> list[Target]:
    out: list[Target] = []
    for target in targets:
        duplicate = False
        for kept in out:
            if kept.kind == target.kind and len(kept.values) == len(target.values):
                if target.kind == "expr":
                    duplicate = fm.same_fingerprint(kept.values, target.values) and kept.py == target.py
                else:
                    duplicate = all(fm.close(a, b) for a, b in zip(kept.values, target.values)) and kept.relation == target.relation
                    if duplicate and target.tol == 0.0 and (kept.tol > 0.0 or (target.value_form and not kept.value_form)):
                        out[out.index(kept)] = target  # prefer the exact, bare form (25π over 78.54 or π(5)^2)
                        break
            if duplicate:
                break
        if not duplicate:
            out.append(target)
    return out[:limit]


_ANSWER_WORD_RE = re.compile(r"\b(?:answer|solution|result)\b", re.IGNORECASE)
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+")


# A final sentence that ends on one plain number: "..., so x = 5.", "the mean is 15.", "each friend
# gets 4 cookies.", "... = $60." The number must follow "=" or a word (not an operator, so 3/8 or
# 2^5 or x < -4 take the full path), and may be followed by a few unit words.
_PLAIN_END_RE = re.compile(
    r"(?:(?<![^\W\d_])(?P<var>[^\W\d_])\s*=\s*|=\s*|(?<=[^\W\d_])\s+)[$€£]?\s*(?P<num>-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?)"
    r"(?P<unit>(?:\s*%|\s*°|(?:\s+[A-Za-z]+){0,3}))\s*[.!]?\s*$")
_NOT_PLAIN_CHARS = re.compile(r"[±∓<>≤≥≈\\$(){}\[\]π√]")
_ONE_LETTER_ASSIGN = re.compile(r"(?<![^\W\d_])[^\W\d_]\s*=")
_NOT_PLAIN_WORDS = re.compile(r"(?<![a-z])(?:or|pi|sqrt)(?![a-z])")  # as whole [a-z] words: "x = 2 or 3"
_PLAIN_RUN_CHARS = frozenset("=$€£-,.")


def _plain_end_match(sentence: str) -> re.Match[str] | None:
    """``_PLAIN_END_RE.search(sentence, max(0, len(sentence) - 80))``, started where a match can start.

    A match ends on the sentence's last digit, and only spaces, "=", a currency sign and the
    number's own characters (plus a one-letter variable) come before that digit: no match starts
    before that run, so trying every earlier position is wasted.
    """
    last = len(sentence) - 1
    while last >= 0 and not sentence[last].isdecimal():  # what \d matches
        last -= 1
    if last < 0:
        return None
    first = last
    while first > 0 and (sentence[first - 1].isdecimal() or sentence[first - 1].isspace()
                         or sentence[first - 1] in _PLAIN_RUN_CHARS):
        first -= 1
    return _PLAIN_END_RE.search(sentence, max(0, len(sentence) - 80, first - 1))


def _plain_final(sentence: str) -> Target | None:
    """The target of a final sentence that ends on a plain number, without tokenizing; None when
    the sentence needs the full parse (relations, several results, fractions, units like km/h)."""
    match = _plain_end_match(sentence)
    if match is None or match.group("unit").strip().lower() in fm._NUMBER_WORDS or _NOT_PLAIN_CHARS.search(sentence):
        return None
    if _NOT_PLAIN_WORDS.search(sentence.lower()) or len(_ONE_LETTER_ASSIGN.findall(sentence)) > 1:
        return None
    unit = match.group("unit")
    if "%" in unit:
        return None
    literal = match.group("num").replace(",", "")
    value = float(literal)
    decimals = len(literal.split(".", 1)[1]) if "." in literal else None
    var = match.group("var")
    shown = match.group("num")
    return Target("value", (value,), shown, "reference_answer", tol=fm._rounding_tol(decimals, value), var=var)


def targets_from_reference(reference: str, rules: LeakageRules, limit: int = 8) -> list[Target]:
    """The final result(s) of a worked reference answer.

    The boxed value(s) if any; else the result the last sentence with math ends on (skipping
    sentences that only check the result), plus any sentence announcing "the answer/solution/result".
    Sentences are parsed from the end and parsing stops at the first usable one: a reference answer
    is mostly working, and only its end matters.
    """
    if not reference or not reference.strip():
        return []
    boxed = fm.boxed_contents(reference)
    found: list[Target] = []
    if boxed:
        for content in boxed:
            _, ms = fm.mentions(content, words=False, final_only=True)
            for mention in _final_mentions(ms):
                found += _target_from(mention, "reference_answer")
        if found:
            return _dedup_targets(found, limit)
    parts = [p for p in _SENTENCE_SPLIT_RE.split(reference) if p.strip()]
    if (parts and "\\" not in parts[-1] and not any(_ANSWER_WORD_RE.search(p) for p in parts[:-1])
            and not rules.verification.search(parts[-1])):
        plain = _plain_final(fm.normalize(parts[-1]))
        if plain is not None:
            return [plain]
    final_found = False
    fallback: list[Target] = []
    for position in range(len(parts) - 1, -1, -1):
        part = parts[position]
        announces = bool(_ANSWER_WORD_RE.search(part))
        if final_found and not announces:
            continue
        _, ms = fm.mentions(part, words=False, final_only=True)
        finals = _final_mentions(ms)
        if not finals:
            continue
        targets = [t for m in finals for t in _target_from(m, "reference_answer")]
        if not final_found and rules.verification.search(part):
            fallback = fallback or targets
            continue
        found += targets
        final_found = True
    if not found:
        found = fallback
    if not found:
        _, ms = fm.mentions(reference, words=True)  # "the answer is seven"
        for mention in _final_mentions(ms):
            found += _target_from(mention, "reference_answer")
    return _dedup_targets(found, limit)


def targets_from_problem(problem: str, rules: LeakageRules, limit: int = 8) -> list[Target]:
    """Without a reference answer: solve the student's equation, or evaluate the asked arithmetic."""
    if not problem or not rules.problem_cues.search(problem):
        return []
    norm = fm.normalize(problem)
    found: list[Target] = []
    for span in fm.spans(fm.tokenize(norm)):
        for item in fm._split_items(span):
            sides, rels = fm._split_relations(item)
            if rels == ["="] and sides[0] and sides[1]:
                left, right = fm.to_expr(sides[0]), fm.to_expr(sides[1])
                if left is None or right is None:
                    continue
                variables = set(left.variables) | set(right.variables)
                if len(variables) != 1:
                    continue
                var = next(iter(variables))
                if (left.py == var and not right.variables) or (right.py == var and not left.variables):
                    continue  # a given ("at x = 2"), not an equation to solve
                for root in fm.solve_equation(left.py, right.py, var):
                    found.append(Target("value", (root,), _fmt(root), "problem", var=var))
            elif not rels and len(sides) == 1:
                expr = fm.to_expr(sides[0])
                if expr is None or expr.variables or (expr.value_form and "/" not in expr.py):
                    continue
                if not any(t.kind == fm.OP and t.text in "+-*/^" for t in sides[0][1:]):
                    continue
                result = fm.evaluate_expr(expr)
                if result and result[0] is not None:
                    found.append(Target("value", (result[0],), _fmt(result[0]), "problem"))
    return _dedup_targets(found, limit)


# --------------------------------------------------------------------------------------------
# What the student has said
# --------------------------------------------------------------------------------------------


_COMPLEX_STUDENT = re.compile(r"[/%√π^]|sqrt|\\frac|\bpi\b")


class StudentState:
    """What the student's turns so far contain: numbers (problem values) and claims (stated results).

    Parsing is lazy: ``add`` only records the text and its plain numbers (one C-level regex); the
    full parse (claims, expressions, tuples, fractions) runs the first time a question cannot be
    answered from the plain numbers, which for most tutor turns is never.
    """

    def __init__(self, rules: LeakageRules | None = None):
        self.rules = rules
        self.texts: list[str] = []
        self.literals: list[float] = []  # absolute values of every number written
        self._digits: set[str] = set()  # integer parts of those numbers
        self._complex = False  # some text has fractions, percentages, roots or number words
        self._parsed = False
        self._claims: list[fm.Mention] = []
        self._exprs: list[fm.Mention] = []
        self._tuples: list[fm.Mention] = []
        self._value_forms: list[float] = []

    @property
    def turns(self) -> int:
        return len(self.texts)

    def add(self, text: str, rules: LeakageRules) -> None:
        self.rules = rules
        literals, digits, complex_ = _student_numbers(text)
        self.literals.extend(literals)
        self._digits.update(digits)
        self._complex = self._complex or complex_
        self.texts.append(text)
        self._parsed = False

    def copy(self) -> "StudentState":
        other = StudentState(self.rules)
        other.texts = list(self.texts)
        other.literals = list(self.literals)
        other._digits = set(self._digits)
        other._complex = self._complex
        return other

    def _parse(self) -> None:
        if self._parsed:
            return
        self._claims, self._exprs, self._tuples, self._value_forms = [], [], [], []
        for index, text in enumerate(self.texts):
            value_forms, exprs, tuples, claims = _student_turn(text, index == 0, self.rules)
            self._value_forms += value_forms
            self._exprs += exprs
            self._tuples += tuples
            self._claims += claims
        self._parsed = True

    @property
    def claims(self) -> list[fm.Mention]:
        self._parse()
        return self._claims

    @property
    def exprs(self) -> list[fm.Mention]:
        self._parse()
        return self._exprs

    @property
    def tuples(self) -> list[fm.Mention]:
        self._parse()
        return self._tuples

    @staticmethod
    def _is_claim(norm: str, bounds, mention: fm.Mention, first: bool, rules: LeakageRules) -> bool:
        start, end = _sentence_of(bounds, mention.start)
        before = norm[max(start, mention.start - 40):mention.start]
        if rules.claim_before.search(before):
            return True
        if mention.relation is not None and mention.chain_index >= 1:
            # x = 3 is a claim anywhere; 2x + 7 = 13 or f(x) = x^3 in the first message is the problem.
            return not first or (mention.lhs_kind == "var" and mention.lhs is not None and len(mention.lhs) == 1)
        if not first:
            sentence = norm[start:end].strip().rstrip(".!?").strip()
            return sentence == mention.text.strip()  # a sentence that is just the value ("60.", "4?")
        return False

    def _may_contain(self, value: float, tol: float) -> bool:
        """False only when no parse could find ``value`` in the student's text (cheap)."""
        if self._complex:
            return True
        low, high = abs(value) - tol, abs(value) + tol
        return any(str(int(v)) in self._digits for v in (abs(value), max(0.0, low), high))

    def claimed_value(self, value: float, tol: float = 0.0) -> bool:
        if not self.texts or not self._may_contain(value, tol):
            return False
        return any(m.kind == "value" and m.relation not in _INEQUALITIES and fm.close(m.values[0], value, max(tol, m.tol))
                   for m in self.claims)

    def in_problem(self, value: float, tol: float = 0.0) -> bool:
        magnitude = abs(value)
        if any(fm.close(v, magnitude, tol) for v in self.literals):
            return True
        if not self._complex:
            return False  # without fractions, roots or words, the plain numbers are all there is
        self._parse()
        return any(fm.close(v, magnitude, tol) for v in self._value_forms)


# A state is rebuilt for every tutor turn from all the student turns before it, and a student's
# question recurs across records: what each student turn contributes is cached per text.
@lru_cache(maxsize=2048)
def _student_numbers(text: str) -> tuple[tuple[float, ...], frozenset[str], bool]:
    """(every number literal's value, their integer parts, whether the text is "complex")."""
    norm = fm.normalize(text)
    literals: list[float] = []
    digits: set[str] = set()
    for literal in fm._NUM_LITERAL_RE.findall(norm):
        clean = literal.replace(",", "")
        literals.append(float(clean))
        digits.add(clean.split(".", 1)[0] or "0")
    complex_ = bool(_COMPLEX_STUDENT.search(norm)) or not fm._NUMBER_WORDS.isdisjoint(fm._WORDS_RE.findall(norm.lower()))
    return tuple(literals), frozenset(digits), complex_


@lru_cache(maxsize=2048)
def _student_turn(text: str, first: bool, rules: LeakageRules | None) -> tuple[tuple, tuple, tuple, tuple]:
    """(bare values, expressions, tuples, claims) one student turn states; ``first``: the turn that
    poses the problem, whose equations are not claims."""
    value_forms, exprs, tuples, claims = [], [], [], []
    norm, ms = fm.mentions(text)
    bounds = _sentences(norm)
    for mention in ms:
        if mention.kind == "value" and mention.value_form:
            value_forms.append(abs(mention.values[0]))
        elif mention.kind == "expr":
            exprs.append(mention)
        elif mention.kind == "tuple":
            tuples.append(mention)
        if rules is not None and StudentState._is_claim(norm, bounds, mention, first, rules):
            claims.append(mention)
    return tuple(value_forms), tuple(exprs), tuple(tuples), tuple(claims)


# --------------------------------------------------------------------------------------------
# Checking tutor turns
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    code: str
    target: Target
    mention: fm.Mention
    sentence: str


def _matches(mention: fm.Mention, target: Target) -> bool:
    if target.kind == "value":
        if mention.kind != "value" or not fm.close(mention.values[0], target.values[0], max(mention.tol, target.tol)):
            return False
        if mention.relation in _INEQUALITIES:
            return False
        on_rhs = mention.relation in ("=", "≈") and mention.chain_index >= 1
        if on_rhs:
            return True
        if not mention.value_form:
            return False  # "What is (11 - 3)/2?" asks for a computation
        if "/" in mention.py and float(mention.values[0]).is_integer() and not mention.word:
            return False  # "8/2" written as a fraction with an integer value is a division to do
        return True
    if target.kind == "tuple":
        return mention.kind == "tuple" and len(mention.values) == len(target.values) and all(
            fm.close(a, b) for a, b in zip(mention.values, target.values))
    if target.kind == "expr":
        if mention.kind != "expr" or (len(mention.variables) == 1 and mention.py == mention.variables[0]):
            return False
        return fm.same_fingerprint(mention.values, target.values,
                                   up_to_constant=target.integration_constant or mention.integration_constant)
    if target.kind == "relation":
        return (mention.kind == "value" and mention.relation == target.relation and mention.lhs == target.var
                and fm.close(mention.values[0], target.values[0], max(mention.tol, target.tol)))
    return False


def _claimed(target: Target, student: StudentState) -> bool:
    if target.kind == "value":
        return student.claimed_value(target.values[0], target.tol)
    if target.kind == "relation":
        return any(m.relation == target.relation and m.lhs == target.var and fm.close(m.values[0], target.values[0])
                   for m in student.claims)
    if target.kind == "tuple":
        return any(_matches(m, target) for m in student.tuples)
    if target.kind == "expr":
        probe = fm.Mention("expr", target.values, 0, 0, target.text, py=target.py, variables=target.variables)
        return any(m.kind == "expr" and _matches(m, target) and fm.same_structure(m, probe) for m in student.claims)
    return False


def _weak(target: Target, student: StudentState, rules: LeakageRules) -> tuple[bool, bool]:
    """(weak, in_problem) for a target: a value the text may mention innocently."""
    if target.kind == "value":
        value = target.values[0]
        in_problem = student.in_problem(value, target.tol)
        trivial = float(value).is_integer() and value in rules.trivial_values
        return in_problem or trivial, in_problem
    if target.kind == "relation":
        return False, False
    if target.kind == "tuple":
        return any(_matches(m, target) for m in student.tuples), True
    in_problem = any(_matches(m, target) for m in student.exprs)
    return in_problem, in_problem


# Operators that can produce a value not written as a literal (8/2, 2^5, 3·4, 37.5%, √16, 25π, ±7,
# 11 - 3, 2(4)). A relation sign does not: "x = 5" still shows the literal 5.
_COMPUTING = re.compile(r"[/^*%√π±∓]|sqrt|\bpi\b|\d\s*[+\-]\s*\d|\d\s*\(")


# An expression with a variable: a letter next to a digit, an operator, a power or a bracket, or a
# function name ("4x^3", "x + 1", "2 + x", "sin x", "x²" normalised to "x^2"). Every way the
# parser can form an expression mention involves one of these.
_VARIABLE_MATH = re.compile(
    r"\d\s*[^\W\d_]|[^\W\d_]\s*[\^(*/+=\-]|[-+*/^=()]\s*[^\W\d_]"
    r"|\b(?:sin|cos|tan|sec|csc|cot|arcsin|arccos|arctan|sinh|cosh|tanh|ln|log|exp|sqrt|abs|pi)\b|π", re.IGNORECASE)


def _anchors(targets: Sequence[Target]) -> tuple[frozenset[str], frozenset[str]]:
    """(integer parts of the value targets, number words that can spell them)."""
    digits: set[str] = set()
    words: set[str] = set()
    for target in targets:
        if target.kind == "expr":
            continue
        for value in target.values:
            digits.add(str(int(abs(value))))
            words.update(fm.number_word_parts(value))
    return frozenset(digits), frozenset(words)


def _could_match(norm: str, targets: Sequence[Target], facts: tuple | None = None) -> bool:
    """Cheap pre-check before parsing a tutor turn: can any of its numbers equal a target value?

    A value can be written as a plain number (its integer part then appears: "4", "4.0", "78.5"),
    as a computation or a form with an operator (8/2, 2^5, sqrt 16, 25π, 37.5%, x = ...), or in
    words; an expression needs a variable next to math. Turns with none of these for any target
    cannot leak it and are not parsed.
    """
    if any(target.kind == "expr" for target in targets) and _VARIABLE_MATH.search(norm):
        return True
    if all(target.kind == "expr" for target in targets):
        return False
    if _COMPUTING.search(norm):
        return True
    digits, words = _anchors(targets)
    literals = facts[3] if facts is not None else fm._NUM_LITERAL_RE.findall(norm)
    for literal in literals:
        if literal.replace(",", "").split(".", 1)[0] in digits or (literal.startswith(".") and "0" in digits):
            return True
    if not words:
        return False
    text_words = facts[2] if facts is not None else fm._WORDS_RE.findall(norm.lower())
    return not words.isdisjoint(text_words)


def check_turn(text: str, targets: Sequence[Target], student: StudentState | Callable[[], StudentState],
               rules: LeakageRules) -> list[Finding]:
    """Leaks of ``targets`` in one tutor turn, given what the student said before it (a state, or a
    callable building it: it is only needed when some value in the turn matches a target)."""
    if not targets:
        return []
    facts = _facts(text)
    norm = facts[0]
    if PRECHECKS and not _could_match(norm, targets, facts):
        return []
    bounds: Sequence[tuple[int, int]] | None = None
    findings: list[Finding] = []
    seen_targets: set[int] = set()
    state: StudentState | None = student if isinstance(student, StudentState) else None
    for mention in fm.iter_mentions(norm):
        for index, target in enumerate(targets):
            if index in seen_targets or not _matches(mention, target):
                continue
            if state is None:
                state = student()  # type: ignore[operator]
            if _claimed(target, state):
                continue
            if bounds is None:
                bounds = _sentences(norm)
            start, end = _sentence_of(bounds, mention.start)
            sentence = norm[start:end].strip()
            weak, in_problem = _weak(target, state, rules)
            weak = weak or mention.word  # "cut in half", "three sides": words count only when asserted
            if weak and not _asserted(norm, start, end, mention, target, state, in_problem, rules):
                continue
            code = LEAK_EXPRESSION if target.kind == "expr" else LEAK_VALUE
            findings.append(Finding(code, target, mention, sentence))
            seen_targets.add(index)
        if len(seen_targets) == len(targets):
            break  # every target found: the rest of the turn cannot add a finding, so it is not parsed
    return findings


_VAR_IS_RE = re.compile(r"(?<![\w\\])([^\W\d_])\s+(?:is|equals|must\s+be|should\s+be|has\s+to\s+be|would\s+be)\s+"
                        r"(?:(?:about|exactly|just|then|now|still)\s+)?$", re.IGNORECASE)


_COMPUTED_BEFORE = re.compile(
    r"\b(?:add|adding|subtract|subtracting|multiply|multiplying|divide|dividing|times|plus|minus|square|squaring|"
    r"cube|cubing|double|doubling|halve|halving|simplify|simplifying|cancel|cancelling|canceling)\b", re.IGNORECASE)
_QUANTITY_AFTER = re.compile(r"\s*(?:[^\W\d_]+\s+){0,2}?(?:each|apiece|per\b|in\s+(?:each|all|total)|altogether|left\b)",
                             re.IGNORECASE)


def _asserted(norm: str, start: int, end: int, mention: fm.Mention, target: Target, student: StudentState,
              in_problem: bool, rules: LeakageRules) -> bool:
    """Does the sentence assert this (weak) value as a result, rather than just mention it?"""
    sentence = norm[start:end]
    before = norm[start:mention.start]
    question = _is_question(sentence) and not rules.tag_question.search(sentence)
    if target.kind == "expr":
        probe = fm.Mention("expr", target.values, 0, 0, target.text, py=target.py, variables=target.variables)
        if not fm.same_structure(mention, probe):
            return False
        return not any(fm.same_structure(m, probe) for m in student.exprs)
    if target.kind == "tuple":
        return not question
    on_rhs = mention.relation in ("=", "≈") and mention.chain_index >= 1
    var_is = _VAR_IS_RE.search(before[-30:])
    assigned = mention.lhs if (on_rhs and mention.lhs_kind == "var") else (var_is.group(1) if var_is else None)
    if assigned is not None and target.var is not None and assigned == target.var:
        return True  # "x = 4" with the unknown's own name, even as a hypothetical ("what if x = 4?")
    if rules.offer_before.search(before[-40:]):
        return True  # "is it 3", "it's 12", "the answer is 2", even in a question
    if question:
        return False
    if assigned is not None:
        if target.var and assigned != target.var and in_problem:
            return False  # "r = 5" when the answer is x = 5 and 5 is given in the problem
        return True
    if on_rhs and mention.lhs_kind == "expr" and mention.first_relation == "=":
        return True  # "(80 - 70)/5 = 2."
    after = norm[mention.end:end]
    if rules.assert_before.search(before[-40:]):
        trivial = float(target.values[0]).is_integer() and target.values[0] in rules.trivial_values
        if not in_problem or trivial or rules.answer_nouns.search(before):
            return True
        # A value the problem also contains is still a result when a computation produces it
        # ("subtract 17·-1 to get 17") or the quantity follows it ("there are 9 in each group").
        return bool(_COMPUTED_BEFORE.search(before) or _QUANTITY_AFTER.match(after))
    if mention.word and not in_problem and _QUANTITY_AFTER.match(after):
        return True  # "twelve each", "seven in total"
    return False


_NOT_INNOCENT_CHARS = re.compile(r"[=/^*%√π≈±∓<>≤≥(\[]")
_ARITHMETIC = re.compile(r"\d\s*[+\-]\s*\d")
_DIGIT_RUN = re.compile(r"\d+")
# Words that may assert the number after them (a superset of assert_before/offer_before: when one of
# these is among the five words before a number, the turn is not cleared cheaply).
_ASSERT_WORDS = frozenset(
    "is are was were be equal equals equaling get gets getting got make makes making give gives giving leave leaves "
    "leaving take takes took need needs come comes work works total totals with pay pays cost costs has have had it "
    "answer solution result about approximately roughly exactly just only".split())


def _number_asserted(norm: str, lowered: str) -> bool:
    for match in _DIGIT_RUN.finditer(norm):
        start = match.start()
        window = lowered[max(0, start - 48):start]
        cut = max(window.rfind("."), window.rfind("?"), window.rfind("!"))
        if cut >= 0 and not (cut == len(window) - 1 and start > 0 and norm[start - 1] == "."):
            window = window[cut + 1:]
        if ":" in window[-3:] or not _ASSERT_WORDS.isdisjoint(fm._WORDS_RE.findall(window)[-5:]):
            return True
    return False


def innocent(messages: Sequence[Mapping[str, Any]]) -> bool:
    """True when no tutor turn can leak under this layer's rules, decided cheaply (no parsing): the
    tutor only repeats numbers the student wrote, with no operator, relation, bracket, number word
    or assertion around them ("What do you notice about the + 5?"). Distinctive values must be
    absent from the student's text to leak, and weak ones must be asserted, so nothing is missed;
    tests/test_filter_leakage.py checks this against the full analysis."""
    student: set[str] | None = None
    for message in messages:
        if message.get("role") != "assistant":
            continue
        norm, lowered, words, literals = _facts(message["content"])
        if _NOT_INNOCENT_CHARS.search(norm) or "sqrt" in lowered or _ARITHMETIC.search(norm):
            return False
        if "pi" in words or not _TRIGGER_WORDS.isdisjoint(words):
            return False
        if literals and _number_asserted(norm, lowered):
            return False
        if literals:
            if student is None:
                student = set()
                for other in messages:
                    if other.get("role") == "user":
                        student.update(v.replace(",", "") for v in _facts(other["content"])[3])
            if any(literal.replace(",", "") not in student for literal in literals):
                return False
    return True


@lru_cache(maxsize=1024)
def _facts(text: str) -> tuple[str, str, frozenset[str], tuple[str, ...]]:
    """(normalized, lower-cased, words, number literals) of a text, shared by the cheap pre-checks
    that look at the same tutor turn one after another."""
    norm = fm.normalize(text)
    lowered = norm.lower()
    return norm, lowered, frozenset(fm._WORDS_RE.findall(lowered)), tuple(fm._NUM_LITERAL_RE.findall(norm))


def may_state_values(text: str) -> bool:
    """Cheap test: could this text state a value at all (digits, math symbols, number words)?"""
    norm, _, words, literals = _facts(text)
    if literals or fm._QUICK_MATH.search(norm) or "sqrt" in norm:
        return True
    return not _TRIGGER_WORDS.isdisjoint(words)


# "one" alone is everywhere in prose ("the other one") and only ever spells a trivial value.
_TRIGGER_WORDS = fm._NUMBER_WORDS - {"one"}


def targets_for(messages: Sequence[Mapping[str, Any]], reference: str | None, rules: LeakageRules, *,
                use_problem: bool = True) -> tuple[list[Target], str | None]:
    """The final results to look for, and where they came from ("reference_answer" / "problem")."""
    if reference:
        targets = _reference_targets(reference, rules)
        if targets:
            return list(targets), "reference_answer"
    if use_problem:
        first_user = next((m.get("content") for m in messages if m.get("role") == "user"), "")
        if isinstance(first_user, str) and first_user:
            targets = _problem_targets(first_user, rules)
            if targets:
                return list(targets), "problem"
    return [], None


# A generated dataset repeats reference answers and questions (several dialogues per question, a
# retried generation), and working out their results is the costliest step for a record: cached
# per text. Targets are frozen, so sharing them is safe.
@lru_cache(maxsize=4096)
def _reference_targets(reference: str, rules: LeakageRules) -> tuple[Target, ...]:
    return tuple(targets_from_reference(reference, rules))


@lru_cache(maxsize=4096)
def _problem_targets(problem: str, rules: LeakageRules) -> tuple[Target, ...]:
    return tuple(targets_from_problem(problem, rules))


def _snapshot(student: StudentState) -> StudentState:
    return student.copy()


def exempt_by_claims(match_text: str, student: StudentState) -> bool:
    """A rules-layer match is the tutor repeating the student's own result when every number in it
    is a value the student claimed or a number from the problem, and at least one is a claim:
    "Nice work getting x = 3!" after "I got x = 3" is praise, not a leak."""
    if not student.texts:
        return False
    if not student._complex:
        # Cheap exit: a number whose digits the student never wrote is neither a claim nor a problem
        # number, so the match cannot be exempt (no parse needed).
        for literal in fm._NUM_LITERAL_RE.findall(fm.normalize(match_text)):
            if literal.replace(",", "").split(".", 1)[0] not in student._digits:
                return False
    _, ms = fm.mentions(match_text)
    values = [m.values[0] for m in ms if m.kind == "value"]
    # Exempt needs a value the student claimed, so one the student may have written: check that
    # (cheap) before parsing what the student claimed.
    if not values or not any(student._may_contain(value, 0.0) for value in values) or not student.claims:
        return False
    any_claim = False
    for value in values:
        if student.claimed_value(value):
            any_claim = True
        elif not student.in_problem(value):
            return False
    return any_claim
