"""Tokens and spans: a whitelisting tokenizer, and the runs of tokens that make up one piece of math.
"""

from __future__ import annotations

import re
from typing import NamedTuple


# --------------------------------------------------------------------------------------------
# Tokens and spans
# --------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?|\.\d+)(?:!(?=[)\]/*+\-^(]))?)"
    r"|(?P<name>[^\W\d_]+)"
    r"|(?P<op>\*\*|[-+*/^()\[\]=<>≤≥≠≈±∓%,°'])"
    r"|(?P<ws>\s+)"
    r"|(?P<other>.)",
    re.S,
)

FUNCS = frozenset({"sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
                   "ln", "log", "exp", "sqrt", "abs"})
_TRIG = frozenset({"sin", "cos", "tan", "sec", "csc", "cot"})
RELATIONS = frozenset({"=", "<", ">", "≤", "≥", "≠", "≈"})
_BINARY = frozenset({"+", "*", "/", "^", "**", "=", "<", ">", "≤", "≥", "≠", "≈", ","})
_OPEN, _CLOSE = frozenset("(["), frozenset(")]")

NUM, FUNC, CONST, VAR, WORD, OP, OTHER = range(7)


def classify_name(name: str) -> tuple[int, str]:
    """The token kind of a name (function, constant, variable or word); both tokenizers share it."""
    low = name.lower()
    if low in FUNCS:
        return FUNC, low
    if low == "pi" or name == "π" or name == "e":
        return CONST, name
    return (VAR if len(name) == 1 else WORD), name


class Token(NamedTuple):
    kind: int
    text: str
    start: int
    end: int
    space_before: bool


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    space = True
    for match in _TOKEN_RE.finditer(text):
        group = match.lastgroup
        value = match.group()
        if group == "ws":
            space = True
            continue
        if group == "num":
            kind = NUM
        elif group == "name":
            kind, value = classify_name(value)
        elif group == "op":
            kind = OP
        else:
            kind = OTHER
        tokens.append(Token(kind, value, match.start(), match.end(), space))
        space = False
    return tokens


def _var_in_math(tokens: list[Token], i: int) -> bool:
    """Is the one-letter word at ``i`` a variable (next to math) rather than 'a' or 'I' in prose?"""
    tok = tokens[i]
    prev = tokens[i - 1] if i > 0 else None
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    if prev is not None and not tok.space_before and (prev.kind in (NUM, CONST) or prev.text in _CLOSE):
        return True  # 2x, (x+1)x
    if prev is not None and prev.kind == OP and prev.text not in (",", "%", "°", "'") and prev.text not in _CLOSE:
        return True  # = x, + b, (x
    if prev is not None and prev.kind == FUNC:
        return True  # sin x
    if nxt is not None and nxt.kind == OP and nxt.text not in (",", "%", "°"):
        if nxt.text == "(" and nxt.space_before:
            return False  # "x (the unknown)"
        return True  # x =, a +, x^2, f(
    if nxt is not None and not nxt.space_before and nxt.kind in (NUM, VAR, CONST, FUNC):
        return True  # xy written as x y? rare, but "x2"
    return False


def _comma_joins(tokens: list[Token], i: int, depth: int) -> bool:
    """Does the comma at ``i`` separate items of one math list ("x = -2, 3", "(1, 2)") or end a clause?"""
    if depth > 0:
        return True
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    after = tokens[i + 2] if i + 2 < len(tokens) else None
    if nxt is None:
        return False
    if nxt.kind == NUM:
        return after is None or after.kind != WORD or after.space_before  # "2, 3 apples" still a list
    if nxt.text == "-" and after is not None and after.kind == NUM:
        return True
    return nxt.text in _OPEN


def spans(tokens: list[Token]) -> list[list[Token]]:
    """Maximal runs of math tokens: numbers, functions, constants, operators, variables next to math."""
    out: list[list[Token]] = []
    current: list[Token] = []
    depth = 0
    for i, tok in enumerate(tokens):
        keep = tok.kind in (NUM, FUNC, CONST)
        if tok.kind == OP:
            if tok.text == ",":
                keep = bool(current) and _comma_joins(tokens, i, depth)
            else:
                keep = True
        elif tok.kind == VAR:
            keep = _var_in_math(tokens, i)
        if keep:
            if tok.text in _OPEN:
                depth += 1
            elif tok.text in _CLOSE:
                depth = max(0, depth - 1)
            current.append(tok)
        elif current:
            out.append(current)
            current, depth = [], 0
        else:
            depth = 0
    if current:
        out.append(current)
    return [trimmed for span in out if (trimmed := _trim(span))]


def _trim(span: list[Token]) -> list[Token]:
    if span[0].text in ("^", "**"):
        return []  # "cm^2", "m^3": an exponent whose base was a word (a unit)
    start, end = 0, len(span)
    while start < end and span[start].kind == OP and (span[start].text in _BINARY or span[start].text in ("%", "°", "'")):
        start += 1
    while end > start and span[end - 1].kind == OP and span[end - 1].text not in _CLOSE and span[end - 1].text not in ("%", "°", "'"):
        end -= 1
    span = span[start:end]
    # A closer left over from a function of a word ("P(red) = 3/8", "3!) = 10"), an opener at the end.
    while span and span[0].text in _CLOSE:
        span = span[1:]
        while span and span[0].kind == OP and span[0].text in _BINARY:
            span = span[1:]
    while span and span[-1].text in _OPEN:
        span = span[:-1]
    # Drop unbalanced leading "(" / trailing ")" (a parenthetical remark around the math).
    while span and span[0].text in _OPEN and _balance(span) > 0:
        span = span[1:]
    while span and span[-1].text in _CLOSE and _balance(span) < 0:
        span = span[:-1]
    if not any(t.kind in (NUM, VAR, CONST) for t in span):
        return []
    return span


def _balance(span: list[Token]) -> int:
    balance = 0
    for tok in span:
        if tok.kind == OP:
            if tok.text in _OPEN:
                balance += 1
            elif tok.text in _CLOSE:
                balance -= 1
    return balance
