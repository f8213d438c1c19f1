"""Mentions: the values, expressions and tuples a text states (numerals, number words, equations).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import NamedTuple
from .expressions import evaluate_expr, to_expr
from .normalize import normalize
from .tokens import FUNCS, NUM, OP, OTHER, RELATIONS, Token, VAR, WORD, _CLOSE, _OPEN, _TOKEN_RE, classify_name, spans


# --------------------------------------------------------------------------------------------
# Mentions
# --------------------------------------------------------------------------------------------


class Mention(NamedTuple):
    """A value, expression or tuple stated somewhere in a text."""

    kind: str  # "value" | "expr" | "tuple"
    values: tuple  # value: (v,); expr: fingerprint at the sample points; tuple: components
    start: int  # character span in the normalized text
    end: int
    text: str  # the side as written (normalized)
    value_form: bool = True
    tol: float = 0.0  # rounding tolerance of a written decimal (0.1667 stands for 1/6)
    relation: str | None = None  # the relation this side is on the right of ("=", "<", ...)
    lhs: str | None = None  # the left side's text when it is a single variable ("x" in x = 4)
    lhs_kind: str | None = None  # "var" | "expr" | "value" for the side on the left
    relation_flipped: bool = False  # side was on the left of a relation whose right side is a variable
    integration_constant: bool = False
    py: str = ""  # the Python rendering (expressions), for sympy structural checks
    variables: tuple[str, ...] = ()
    word: bool = False  # written as number words ("seven eighths")
    chain_index: int = 0  # position among the sides of its relation chain (0 = leftmost)
    first_relation: str | None = None  # the first relation of the chain, if any
    item_index: int = 0


def _rounding_tol(decimals: int | None, value: float) -> float:
    if decimals is None:
        return 0.0
    if decimals >= 2 or (decimals >= 1 and abs(value) >= 10):
        return 0.5 * 10.0 ** (-decimals) + 1e-12
    return 0.0


def _split_top_level(tokens: list[Token], separators: frozenset[str], kind: str | None = None) -> tuple[list[list[Token]], list[str]]:
    """``tokens`` cut at the separators outside brackets (of ``kind``, when given): the parts and the separators."""
    parts: list[list[Token]] = [[]]
    found: list[str] = []
    depth = 0
    for tok in tokens:
        if tok.text in _OPEN:
            depth += 1
        elif tok.text in _CLOSE:
            depth -= 1
        if depth == 0 and tok.text in separators and (kind is None or tok.kind == kind):
            parts.append([])
            found.append(tok.text)
        else:
            parts[-1].append(tok)
    return parts, found


_COMMA = frozenset({","})


def _split_items(span: list[Token]) -> list[list[Token]]:
    """The comma-separated items of a span (empty ones dropped)."""
    return [part for part in _split_top_level(span, _COMMA)[0] if part]


def _split_relations(item: list[Token]) -> tuple[list[list[Token]], list[str]]:
    """The sides of an item and the relations (=, <, ≤, ...) between them."""
    return _split_top_level(item, RELATIONS, OP)


def _tuple_components(side: list[Token]) -> tuple[float, ...] | None:
    """(1, 2, 3) or [[2, 1], [4, 3]] flattened to constants; None if not a tuple of constants."""
    if len(side) < 5 or side[0].text not in _OPEN or side[-1].text not in _CLOSE:
        return None
    if not any(t.text == "," for t in side):
        return None
    values: list[float] = []
    current: list[Token] = []
    for tok in side:
        if tok.text in _OPEN or tok.text in _CLOSE or tok.text == ",":
            if current:
                expr = to_expr(current)
                if expr is None or expr.variables:
                    return None
                result = evaluate_expr(expr)
                if result is None or result[0] is None:
                    return None
                values.append(result[0])
                current = []
            continue
        current.append(tok)
    if current or len(values) < 2:
        return None
    return tuple(values)


def _expand_pm(side: list[Token]) -> list[list[Token]]:
    """x = ±7 -> [+7, -7] (one ± or ∓ only)."""
    for index, tok in enumerate(side):
        if tok.text in ("±", "∓"):
            plus = Token(OP, "+", tok.start, tok.end, tok.space_before)
            minus = Token(OP, "-", tok.start, tok.end, tok.space_before)
            head, tail = side[:index], side[index + 1:]
            if not head:
                return [tail, [minus] + tail]
            return [head + [plus] + tail, head + [minus] + tail]
    return [side]


def _side_text(text: str, side: list[Token]) -> str:
    return text[side[0].start:side[-1].end]


def _mentions_in_span(text: str, span: list[Token], item_offset: int) -> list[Mention]:
    if len(span) <= 2 and span[-1].kind == NUM and (len(span) == 1 or span[0].text == "-") and not span[-1].text.endswith("!"):
        literal = span[-1].text.replace(",", "")  # a lone number: the most common span in prose
        value = -float(literal) if len(span) == 2 else float(literal)
        decimals = len(literal.split(".", 1)[1]) if "." in literal else None
        return [_new(Mention, ("value", (value,), span[0].start, span[-1].end, text[span[0].start:span[-1].end], True,
                               _rounding_tol(decimals, value), None, None, None, False, False, repr(value), (), False,
                               0, None, item_offset))]
    if (3 <= len(span) <= 4 and span[0].kind == VAR and span[1].text == "=" and span[-1].kind == NUM
            and (len(span) == 3 or span[2].text == "-") and not span[-1].text.endswith("!")):
        literal = span[-1].text.replace(",", "")  # "x = 5", "x = -4": the next most common span
        value = -float(literal) if len(span) == 4 else float(literal)
        decimals = len(literal.split(".", 1)[1]) if "." in literal else None
        first = span[2]
        return [_new(Mention, ("value", (value,), first.start, span[-1].end, text[first.start:span[-1].end], True,
                               _rounding_tol(decimals, value), "=", span[0].text, "var", False, False, repr(value), (),
                               False, 1, "=", item_offset))]
    out: list[Mention] = []
    whole_tuple = _tuple_components(span)
    if whole_tuple is not None:
        return [Mention("tuple", whole_tuple, span[0].start, span[-1].end, _side_text(text, span), item_index=item_offset)]
    for item_number, item in enumerate(_split_items(span)):
        sides, rels = _split_relations(item)
        lhs_text: str | None = None
        if len(sides) > 1 and sides[0] and len(sides[0]) == 1 and sides[0][0].kind == VAR:
            lhs_text = sides[0][0].text
        elif len(sides) > 1 and sides[0] and len(sides[0]) >= 2 and sides[0][0].kind == VAR and sides[0][1].text in _OPEN \
                and sides[0][-1].text in _CLOSE and not any(t.kind == OP and t.text not in _OPEN | _CLOSE for t in sides[0]):
            lhs_text = _side_text(text, sides[0])  # f(x) = ...
        flipped_var = None
        if len(sides) == 2 and len(sides[1]) == 1 and sides[1][0].kind == VAR and rels[0] != "=":
            flipped_var = sides[1][0].text  # -4 > x
        if item_number > 0 and len(sides) == 1 and out and out[-1].relation is not None and out[-1].item_index == item_offset + item_number - 1:
            # "x = -2, 3": a bare continuation of the previous item's right side
            prev = out[-1]
            inherit = (prev.relation, prev.lhs, prev.lhs_kind)
        else:
            inherit = None
        for side_index, side in enumerate(sides):
            if not side:
                continue
            relation = rels[side_index - 1] if side_index > 0 else None
            if side_index == 0 and len(sides) > 1 and lhs_text is not None:
                continue  # the variable itself
            if side_index == 1 and flipped_var is not None:
                continue  # "-4 > x": the variable on the right
            side_lhs = lhs_text if side_index > 0 else None
            side_lhs_kind = None
            if side_index > 0:
                left = sides[side_index - 1]
                side_lhs_kind = "var" if (side_index == 1 and lhs_text) else ("expr" if left else None)
            if inherit is not None and side_index == 0:
                relation, side_lhs, side_lhs_kind = inherit
            tuple_values = _tuple_components(side)
            if tuple_values is not None:
                out.append(Mention("tuple", tuple_values, side[0].start, side[-1].end, _side_text(text, side),
                                   relation=relation, lhs=side_lhs, lhs_kind=side_lhs_kind,
                                   item_index=item_offset + item_number, chain_index=side_index,
                                   first_relation=rels[0] if rels else None))
                continue
            if (len(side) == 1 or (len(side) == 2 and side[0].text == "-")) and side[-1].kind == NUM \
                    and not side[-1].text.endswith("!"):
                # Fast path: a plain number, the most common side by far.
                literal = side[-1].text.replace(",", "")
                value = float(literal)
                if len(side) == 2:
                    value = -value
                decimals = len(literal.split(".", 1)[1]) if "." in literal else None
                flipped = flipped_var is not None and side_index == 0
                out.append(Mention(
                    "value", (value,), side[0].start, side[-1].end, _side_text(text, side), True,
                    _rounding_tol(decimals, value), _flip(rels[0]) if flipped else relation,
                    flipped_var if flipped else side_lhs, "var" if flipped else side_lhs_kind, flipped, False,
                    repr(value), (), False, side_index, rels[0] if rels else None, item_offset + item_number,
                ))
                continue
            for variant in _expand_pm(side):
                expr = to_expr(variant)
                if expr is None:
                    continue
                result = evaluate_expr(expr)
                if result is None:
                    continue
                flipped = flipped_var is not None and side_index == 0
                common = dict(
                    start=side[0].start, end=side[-1].end, text=_side_text(text, side), value_form=expr.value_form,
                    relation=_flip(rels[0]) if flipped else relation,
                    lhs=flipped_var if flipped else side_lhs,
                    lhs_kind="var" if flipped else side_lhs_kind, relation_flipped=flipped,
                    integration_constant=expr.integration_constant, py=expr.py, variables=expr.variables,
                    chain_index=side_index, first_relation=rels[0] if rels else None,
                    item_index=item_offset + item_number,
                )
                if expr.variables:
                    out.append(Mention("expr", result, **common))
                elif result[0] is not None:
                    out.append(Mention("value", result, tol=_rounding_tol(expr.decimals, result[0]), **common))
    return out


def _flip(relation: str) -> str:
    return {"<": ">", ">": "<", "≤": "≥", "≥": "≤"}.get(relation, relation)


# ---- number words ---------------------------------------------------------------------------

_UNITS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
          "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_DENOMS = {"half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4, "fourth": 4, "fourths": 4,
           "fifth": 5, "fifths": 5, "sixth": 6, "sixths": 6, "seventh": 7, "sevenths": 7, "eighth": 8, "eighths": 8,
           "ninth": 9, "ninths": 9, "tenth": 10, "tenths": 10, "twelfth": 12, "twelfths": 12}
_UNIT_ALT = "|".join(sorted(_UNITS, key=len, reverse=True))
_TENS_ALT = "|".join(_TENS)
_DENOM_ALT = "|".join(sorted(_DENOMS, key=len, reverse=True))
_CARDINAL = (rf"(?:(?:{_UNIT_ALT}|a)\s+hundred(?:\s+(?:and\s+)?(?:(?:{_TENS_ALT})(?:[-\s](?:{_UNIT_ALT}))?|{_UNIT_ALT}))?"
             rf"|(?:{_TENS_ALT})(?:[-\s](?:{_UNIT_ALT}))?|{_UNIT_ALT})")
_NUMBER_WORDS_RE = re.compile(
    rf"\b(?P<neg>negative\s+|minus\s+)?(?P<card>{_CARDINAL}|an?)(?:\s+(?P<den>{_DENOM_ALT})|(?P<andhalf>\s+and\s+a\s+half))?\b(?!-)"
    rf"|\b(?P<half>half)\b",
    re.IGNORECASE,
)


def _cardinal_value(words: str) -> int | None:
    words = words.lower().replace("-", " ")
    parts = words.split()
    total = 0
    current = 0
    for word in parts:
        if word == "and":
            continue
        if word in ("a", "an"):
            current = 1
        elif word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        else:
            return None
    return total + current


_UNIT_NAMES = {v: k for k, v in _UNITS.items()}
_TENS_NAMES = {v: k for k, v in _TENS.items()}
_DENOM_NAMES: dict[int, list[str]] = {}
for _name, _den in _DENOMS.items():
    _DENOM_NAMES.setdefault(_den, []).append(_name)


@lru_cache(maxsize=4096)
def number_word_parts(value: float) -> frozenset[str]:
    """The words that can spell ``value`` ("twenty", "six" for 26; "seven", "eighths" for 0.875)."""
    words: set[str] = set()
    magnitude = abs(value)
    whole = int(magnitude)
    fraction = magnitude - whole
    if magnitude <= 999 and (fraction < 1e-9 or abs(fraction - 0.5) < 1e-9):
        if whole >= 100:
            words.add("hundred")
            whole %= 100
        if whole in _UNIT_NAMES:
            words.add(_UNIT_NAMES[whole])
        elif whole:
            words.add(_TENS_NAMES[whole - whole % 10])
            if whole % 10:
                words.add(_UNIT_NAMES[whole % 10])
        if abs(fraction - 0.5) < 1e-9:
            words.add("half")
    elif 0 < magnitude < 1:
        for den, names in _DENOM_NAMES.items():
            num = magnitude * den
            if abs(num - round(num)) < 1e-9 and round(num) in _UNIT_NAMES:
                words.update(names)
                words.add(_UNIT_NAMES[round(num)])
    return frozenset(words)


def number_word_mentions(text: str) -> list[Mention]:
    """Numbers written as words: "twelve", "seventy-five", "seven eighths", "one half", "a third"."""
    out = []
    for match in _NUMBER_WORDS_RE.finditer(text):
        if match.group("half"):
            value = 0.5
        else:
            card = match.group("card")
            den = match.group("den")
            if card.lower() in ("a", "an") and not den:
                continue
            base = _cardinal_value(card)
            if base is None:
                continue
            value = base / _DENOMS[den.lower()] if den else float(base)
            if match.group("andhalf"):
                value += 0.5
            if match.group("neg"):
                value = -value
        out.append(Mention("value", (value,), match.start(), match.end(), match.group(0), word=True))
    return out


_QUICK_MATH = re.compile(r"[\d=+*/^π√]")
# Runs of characters that can make up math (digits, operators, brackets, one-letter words, function
# names, spaces between them). Only these runs are tokenized: prose in between is skipped at C speed.
_CORE_CHARS = frozenset("0123456789=+*/^<>≤≥≠≈±∓%°π-")
_SOFT_CHARS = frozenset(" \t\n(),.[]'!")
_RUN_WORDS = FUNCS | {"pi"}


_CORE_RUN_RE = re.compile(r"[\d=+*/^<>≤≥≠≈±∓%°π\-](?:[\s(),.\[\]'!]*[\d=+*/^<>≤≥≠≈±∓%°π\-])*[\s(),.\[\]'!]*")


def _math_windows(norm: str) -> list[tuple[int, int]]:
    """Regions of ``norm`` that may hold math: runs of math characters (found in C), extended over
    neighbouring spaces, brackets, one-letter words and function names; touching regions merged."""
    windows: list[tuple[int, int]] = []
    n = len(norm)
    pos = 0
    while True:
        match = _CORE_RUN_RE.search(norm, pos)
        if match is None:
            break
        start, end = match.start(), match.end()
        # left edge: soft characters, then one-letter words / function names, repeatedly
        while start > 0:
            ch = norm[start - 1]
            if ch in _SOFT_CHARS or ch in _CORE_CHARS:
                start -= 1
                continue
            if ch.isalpha():
                left = start - 1
                while left > 0 and norm[left - 1].isalpha():
                    left -= 1
                if start - left == 1 or norm[left:start].lower() in _RUN_WORDS:
                    start = left
                    continue
            break
        # right edge: one-letter words / function names, then more math
        while end < n and norm[end].isalpha():
            right = end + 1
            while right < n and norm[right].isalpha():
                right += 1
            if right - end == 1 or norm[end:right].lower() in _RUN_WORDS:
                end = right
                more = _CORE_RUN_RE.match(norm, end)
                if more is None:
                    while end < n and norm[end] in _SOFT_CHARS:
                        end += 1
                else:
                    end = more.end()
                continue
            break
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(end, windows[-1][1]))
        else:
            windows.append((start, end))
        pos = max(end, match.end())
    return windows


_NUMBER_WORDS = frozenset(_UNITS) | frozenset(_TENS) | frozenset(_DENOMS) | {"hundred"}
_WORDS_RE = re.compile(r"[a-z]+")


_SPACED_TOKEN_RE = re.compile(r"(\s*)(?:" + _TOKEN_RE.pattern.replace(r"|(?P<ws>\s+)", "").replace("?P<num>", "").replace(
    "?P<name>", "").replace("?P<op>", "").replace("?P<other>", "") + ")", re.S)
_new = tuple.__new__


def _tokenize_runs(norm: str, windows: list[tuple[int, int]] | None = None) -> list[Token]:
    tokens: list[Token] = []
    append = tokens.append
    for offset, stop in (windows if windows is not None else _math_windows(norm)):
        pos = offset
        first = True
        for ws, num, name, op, other in _SPACED_TOKEN_RE.findall(norm, offset, stop):
            space = first or bool(ws)
            first = False
            pos += len(ws)
            if num:
                value, kind = num, NUM
            elif name:
                kind, value = classify_name(name)
            elif op:
                value, kind = op, OP
            else:
                value, kind = other, OTHER
            end = pos + len(num or name or op or other)
            append(_new(Token, (kind, value, pos, end, space)))
            pos = end
        append(_new(Token, (WORD, "", stop, stop, True)))  # window boundary: prose
    return tokens


def _assigns_variable(span: list[Token]) -> bool:
    """Does the span contain "x =" / "x <" (a one-letter variable followed by a relation)?"""
    return any(tok.kind == VAR and nxt.kind == OP and nxt.text in RELATIONS for tok, nxt in zip(span, span[1:]))


def mentions(text: str, *, words: bool = True, final_only: bool = False,
             normalized: str | None = None) -> tuple[str, list[Mention]]:
    """(normalized text, every value/expression/tuple mention in it, in text order).

    ``final_only``: only what a result can be read from, for reference answers: the last span that
    yields a mention (not a lone letter), plus spans assigning a variable ("x = 2 or x = 3").
    Evaluating the rest of a worked solution is wasted work. ``normalized``: ``normalize(text)``, if
    the caller already has it.
    """
    norm = normalized if normalized is not None else normalize(text)
    return norm, _result_mentions(norm, words) if final_only else list(iter_mentions(norm, words=words))


def _result_mentions(norm: str, words: bool) -> list[Mention]:
    """``mentions(..., final_only=True)``: see there."""
    found: list[Mention] = []
    if _QUICK_MATH.search(norm) or "sqrt" in norm:
        # (window, index in it, offset, index in the text) of every span, last first
        refs = [(window, local, start, index + local) for window, start, index, count in _windows(norm)
                for local in range(count)]
        chosen: set[int] = set()
        for ref in reversed(refs):
            got = _span_mentions(*ref)
            if any(not (m.kind == "expr" and len(m.variables) == 1 and m.py == m.variables[0]) for m in got):
                chosen.add(ref[3])
                found = got
                break
        for ref in refs:
            if ref[3] not in chosen and _window_parse(ref[0])[ref[1]][1]:
                found.extend(_span_mentions(*ref))
        found.sort(key=lambda m: m.start)
    if words and not _NUMBER_WORDS.isdisjoint(_WORDS_RE.findall(norm.lower())):
        found.extend(number_word_mentions(norm))
        found.sort(key=lambda m: m.start)
    return found


def iter_mentions(norm: str, *, words: bool = True) -> Iterator[Mention]:
    """The mentions of ``mentions(text)`` for a normalized text, lazily and in the same order: a
    caller that has found what it looks for stops, and the rest of the text is not parsed."""
    pending: list[Mention] = []
    if words and not _NUMBER_WORDS.isdisjoint(_WORDS_RE.findall(norm.lower())):
        pending = number_word_mentions(norm)
    next_word = 0
    if _QUICK_MATH.search(norm) or "sqrt" in norm:
        for window, start, index, count in _windows(norm):
            for local in range(count):
                for mention in _span_mentions(window, local, start, index + local):
                    # Span mentions come in text order; a number word goes before the first one after it.
                    while next_word < len(pending) and pending[next_word].start < mention.start:
                        yield pending[next_word]
                        next_word += 1
                    yield mention
    yield from pending[next_word:]


def _windows(norm: str) -> Iterator[tuple[str, int, int, int]]:
    """(text, offset, index of its first span in the whole text, number of spans) per math window.

    Spans never cross a window (prose separates windows), so each window is parsed on its own and
    cached by its text: a record states the same math in the problem, the reference answer and the
    tutor's turns ("2x + 3 = 11", "x = 4")."""
    index = 0
    for start, stop in _math_windows(norm):
        # Leading spaces and trailing punctuation and spaces never belong to a span: the cache key
        # without them is the same for "so x = 4." and "x = 4,".
        stop = _WINDOW_TAIL.search(norm, start, stop).start()
        while norm[start].isspace():
            start += 1
        window = norm[start:stop]
        count = len(_window_parse(window))
        yield window, start, index, count
        index += count


_WINDOW_TAIL = re.compile(r"[\s.,!]*\Z")


# A window that is one number, perhaps negative, then punctuation (" 28, ", " -3.5. "): by far the
# most common window in prose, whose single span is known without running the tokenizer. The number
# is the tokenizer's own "num" pattern (without a factorial: no "!" before a closer or operator can
# follow), and what may follow it never joins a span (see spans and _comma_joins).
_LONE_NUMBER_WINDOW = re.compile(r"\s*(?:(-)(\s*))?(\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?|\.\d+)[\s.,!]*")


def _window_spans(window: str) -> list[list[Token]]:
    """The math spans of one window (positions relative to it); see :func:`_math_windows`."""
    lone = _LONE_NUMBER_WINDOW.fullmatch(window)
    if lone is None:
        return spans(_tokenize_runs(window, [(0, len(window))]))
    number = Token(NUM, lone.group(3), lone.start(3), lone.end(3), lone.group(1) is None or bool(lone.group(2)))
    if lone.group(1) is None:
        return [[number]]
    return [[Token(OP, "-", lone.start(1), lone.end(1), True), number]]


# Mentions are kept as plain tuples of strings and numbers, which the garbage collector stops
# tracking once it has seen them (it never untracks named tuples): a full cache does not slow every
# later collection down.
@lru_cache(maxsize=4096)
def _window_parse(window: str) -> tuple[tuple[tuple[tuple, ...], bool], ...]:
    """Per span of one window: its mentions (positions relative to the window, items numbered as if
    the window were the whole text) and whether it assigns a variable."""
    return tuple((tuple(map(tuple, _mentions_in_span(window, span, local * 1000))), _assigns_variable(span))
                 for local, span in enumerate(_window_spans(window)))


_START, _END, _ITEM = (Mention._fields.index(name) for name in ("start", "end", "item_index"))


def _span_mentions(window: str, local: int, offset: int, index: int) -> list[Mention]:
    """The mentions of span ``index`` of a text (the ``local``-th of the window at ``offset``), with
    the positions and item numbers that parsing the whole text at once gives."""
    items = (index - local) * 1000
    out = []
    for cached in _window_parse(window)[local][0]:
        fields = list(cached)
        fields[_START] += offset
        fields[_END] += offset
        fields[_ITEM] += items
        out.append(_new(Mention, fields))
    return out


def literal_numbers(text: str) -> list[float]:
    """Every number literal in the text (as written, sign ignored), cheap."""
    return literal_numbers_normalized(normalize(text))


def literal_numbers_normalized(norm: str) -> list[float]:
    return [float(m.group().replace(",", "")) for m in _NUM_LITERAL_RE.finditer(norm)]


_NUM_LITERAL_RE = re.compile(r"(?=[.\d])(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?|\.\d+)")
