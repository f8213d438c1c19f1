"""Math in prose, for the quality filter's leakage layer: find the values, expressions and equations
a piece of text states, and compare them.

A tutor reply, a student message or a reference answer is prose with math inside ("so x = 4",
"about 78.54 square units", "$\\frac{7}{8}$", "2x·sin x + x²·cos x", "seven eighths"). This module
turns such text into :class:`Mention` objects (one per value, expression or tuple, with where it
sits, what relation it is on the right of, and whether it is a bare value or a computation), and
decides whether two mentions are the same quantity.

Speed matters (the filter must do thousands of records a second), so the hot path never calls
sympy: a whitelisting tokenizer rewrites each math span into a tiny Python expression (numbers,
``+ - * / **``, parentheses, a fixed set of functions and one-letter variables, nothing else), which
is compiled once (cached) and evaluated numerically. Expressions with variables are compared by
their values at three fixed sample points (equal polynomials and elementary functions agree there;
unequal ones essentially never do); the student's equation is solved numerically
(:func:`solve_equation`: degree by finite differences, roots by numpy, each root checked).
sympy is used where exactness is worth its cost and the work is rare and cached: structural
comparison of expressions (:func:`same_structure`) when the problem itself already contains an
expression equivalent to the answer ("factor x^2 + 7x + 12": only the factored form is a leak,
and "(x^3)^2 * x^4" quoted from the problem is not "x^10"). The tests use sympy as the oracle for
the fast evaluator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

# --------------------------------------------------------------------------------------------
# Normalisation: LaTeX and unicode math -> plain text math, same sentence structure
# --------------------------------------------------------------------------------------------

_UNICODE = str.maketrans({
    "\u2212": "-",  # minus sign
    "\u00d7": "*", "\u00b7": "*", "\u22c5": "*", "\u2219": "*", "\u2217": "*",
    "\u00f7": "/", "\u2044": "/", "\u2215": "/",
    "\u2264": "≤", "\u2265": "≥",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ",
})
_SUPERSCRIPTS = {"\u00b2": "^2", "\u00b3": "^3", "\u00b9": "^1", "\u2074": "^4", "\u2075": "^5", "\u2070": "^0"}
_VULGAR = {"\u00bd": "(1/2)", "\u2153": "(1/3)", "\u2154": "(2/3)", "\u00bc": "(1/4)", "\u00be": "(3/4)",
           "\u215b": "(1/8)", "\u2155": "(1/5)"}
_MATH_CHARS = frozenset("{\\$\u2212\u00d7\u00b7\u22c5\u00f7\u2044\u221a\u03c0\u00b2\u00b3\u00b9\u2074\u2075\u2070"
                        "\u00bd\u2153\u2154\u00bc\u00be\u215b\u2155\u2264\u2265\u2260\u2248\u00b1\u00b0\u2219\u2217\u2215"
                        "\u00a0\u2009\u202f")

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "theta": "θ", "lambda": "λ",
    "mu": "μ", "sigma": "σ", "phi": "φ", "omega": "ω", "rho": "ρ", "tau": "τ", "pi": "π",
}
_LATEX_FUNCS = ("arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "sin", "cos", "tan", "sec", "csc", "cot",
                "ln", "log", "exp")
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_FRAC_SHORT_RE = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_SQRT_N_RE = re.compile(r"\\sqrt\s*\[([^\]]*)\]\s*\{([^{}]*)\}")
_SQRT_RE = re.compile(r"\\sqrt\s*\{([^{}]*)\}")
_TEXT_RE = re.compile(r"\\(?:text|mathrm|mathbf|mathit|operatorname|mbox|textbf|textit)\s*\{([^{}]*)\}")
_LATEX_CMD_RE = re.compile(r"\\([A-Za-z]+)")
_LATEX_SIMPLE = {
    "cdot": "*", "times": "*", "ast": "*", "div": "/", "pm": "±", "mp": "∓", "le": "≤", "leq": "≤",
    "ge": "≥", "geq": "≥", "neq": "≠", "ne": "≠", "approx": "≈", "sim": "≈", "to": " to ", "infty": " infinity ",
    "left": "", "right": "", "quad": " ", "qquad": " ", "displaystyle": "", "circ": "°", "degree": "°",
    "int": " integral ", "sum": " sum ", "lim": " limit ", "cdots": " ", "ldots": " ", "dots": " ",
    "boxed": "", "fbox": "", "percent": "%",
}


def boxed_contents(text: str) -> list[str]:
    """The contents of every ``\\boxed{...}`` (balanced braces), in order."""
    out = []
    start = 0
    while True:
        index = text.find("\\boxed", start)
        if index < 0:
            index = text.find("\\fbox", start)
            if index < 0:
                return out
        brace = text.find("{", index)
        if brace < 0:
            return out
        depth = 0
        for pos in range(brace, len(text)):
            if text[pos] == "{":
                depth += 1
            elif text[pos] == "}":
                depth -= 1
                if depth == 0:
                    out.append(text[brace + 1:pos])
                    break
        else:
            return out
        start = brace + 1


def _latex_command(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in _LATEX_SIMPLE:
        return _LATEX_SIMPLE[name]
    if name in _GREEK:
        return _GREEK[name]
    if name in _LATEX_FUNCS:
        return " " + name + " "
    if name == "sqrt":
        return "√"
    return " "


@lru_cache(maxsize=4096)  # a record's texts are normalized by several checks in turn
def normalize(text: str) -> str:
    """LaTeX and unicode math rewritten as plain ASCII-like math, sentences left intact.

    ``\\frac{7}{8}`` -> ``((7)/(8))``, ``x²`` -> ``x^2``, ``3 × 4`` -> ``3 * 4``, ``$``/``\\(`` delimiters
    dropped. Text without any of these characters is returned unchanged (the common case).
    """
    if _MATH_CHARS.isdisjoint(text):
        return text
    if "\\" in text:
        text = text.replace("\\(", " ").replace("\\)", " ").replace("\\[", " ").replace("\\]", " ")
        text = text.replace("\\,", " ").replace("\\;", " ").replace("\\!", "").replace("\\:", " ")
        text = text.replace("\\%", "%").replace("\\$", "$").replace("\\{", "(").replace("\\}", ")")
        text = _TEXT_RE.sub(r" \1 ", text)
        for _ in range(6):  # nested fractions and roots, innermost first
            new = _FRAC_RE.sub(r"((\1)/(\2))", text)
            new = _FRAC_SHORT_RE.sub(r"((\1)/(\2))", new)
            new = _SQRT_N_RE.sub(r"((\2)^(1/(\1)))", new)
            new = _SQRT_RE.sub(r"sqrt(\1)", new)
            if new == text:
                break
            text = new
        text = _LATEX_CMD_RE.sub(_latex_command, text)
        text = text.replace("{", "(").replace("}", ")")
    elif "$" in text or "^{" in text or "_{" in text:
        text = text.replace("{", "(").replace("}", ")")  # $3x^{2}$ without any command
    text = text.replace("$", " ").translate(_UNICODE)
    for sup, rep in _SUPERSCRIPTS.items():
        if sup in text:
            text = text.replace(sup, rep)
    for frac, rep in _VULGAR.items():
        if frac in text:
            text = text.replace(frac, rep)
    if "√" in text:
        text = text.replace("√", " sqrt ")
    if "π" in text:
        text = text.replace("π", " π ")
    return text


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


# --------------------------------------------------------------------------------------------
# Expressions: tokens -> whitelisted Python -> value or fingerprint
# --------------------------------------------------------------------------------------------

_PY_FUNCS = {
    "sin": "_sin", "cos": "_cos", "tan": "_tan", "sec": "_sec", "csc": "_csc", "cot": "_cot",
    "arcsin": "_asin", "arccos": "_acos", "arctan": "_atan", "sinh": "_sinh", "cosh": "_cosh", "tanh": "_tanh",
    "ln": "_ln", "log": "_log", "exp": "_exp", "sqrt": "_sqrt", "abs": "_abs",
}
_NAMESPACE = {
    "__builtins__": {},
    "_sin": math.sin, "_cos": math.cos, "_tan": math.tan,
    "_sec": lambda v: 1 / math.cos(v), "_csc": lambda v: 1 / math.sin(v), "_cot": lambda v: 1 / math.tan(v),
    "_asin": math.asin, "_acos": math.acos, "_atan": math.atan,
    "_sinh": math.sinh, "_cosh": math.cosh, "_tanh": math.tanh,
    "_ln": math.log, "_log": math.log10, "_exp": math.exp, "_sqrt": math.sqrt, "_abs": abs,
    "_pi": math.pi, "_e": math.e,
}
_MAX_EXPR_TOKENS = 60


@dataclass(frozen=True, slots=True)
class Expr:
    """One side of a relation, rewritten as a whitelisted Python expression."""

    py: str  # e.g. "2.0*x*_sin(x)+x**2.0*_cos(x)"
    variables: tuple[str, ...]
    value_form: bool  # a bare value (4, -3.5, 7/8, 25π, 2√3, 16.7%) rather than a computation
    decimals: int | None  # decimal places of a bare decimal literal in value scale, for rounding tolerance
    integration_constant: bool = False  # a trailing "+ C" was dropped
    # The same expression with its numbers as parameters ("_n0*x*_sin(x)+x**_n1*_cos(x)", (2.0, 2.0)):
    # compiled once per shape, so records with different numbers share the compiled code.
    template: str = ""
    params: tuple[float, ...] = ()


def _atom_end(tokens: list[Token], i: int) -> int:
    """Index after the atom starting at ``i`` (a number, variable, constant or a power of one), for
    function arguments written without parentheses: sin x, sqrt 3, sin 30°."""
    if i >= len(tokens):
        return i
    j = i + 1
    if tokens[i].text in _OPEN:
        depth = 1
        while j < len(tokens) and depth:
            if tokens[j].text in _OPEN:
                depth += 1
            elif tokens[j].text in _CLOSE:
                depth -= 1
            j += 1
        return j
    while j < len(tokens) and tokens[j].text == "°":
        j += 1
    if j < len(tokens) and tokens[j].text == "^" and j + 1 < len(tokens):
        return _atom_end(tokens, j + 1)
    return j


def to_expr(tokens: list[Token]) -> Expr | None:
    """Rewrite one side's tokens as a Python expression, or None if it is not an expression we trust."""
    if not tokens or len(tokens) > _MAX_EXPR_TOKENS:
        return None
    parts: list[str] = []
    variables: set[str] = set()
    prev_kind: str | None = None  # "operand" (can be followed by implicit multiplication), "op", None
    nums = 0
    decimals: int | None = None
    percent = False
    integration_constant = False
    i = 0
    n = len(tokens)
    close_after: list[int] = []  # token indexes after which a ")" must be emitted (function args)

    params: list[float] = []

    def emit_operand(text) -> None:
        nonlocal prev_kind
        if prev_kind == "operand":
            parts.append("*")
        parts.append(text)
        prev_kind = "operand"

    while i < n:
        tok = tokens[i]
        kind, text = tok.kind, tok.text
        if kind == NUM:
            if prev_kind == "operand" and parts and isinstance(parts[-1], int):
                return None  # "2 3": two numbers side by side is not an expression
            clean = text.replace(",", "")
            nums += 1
            if clean.endswith("!"):
                base = float(clean[:-1])
                if not base.is_integer() or base > 30:
                    return None
                clean = str(math.factorial(int(base)))
            if "." in clean:
                decimals = len(clean.split(".", 1)[1])
            in_trig_degrees = i + 1 < n and tokens[i + 1].text == "°" and any(
                tokens[k].kind == FUNC and tokens[k].text in _TRIG for k in range(max(0, i - 2), i))
            params.append(float(clean))
            if in_trig_degrees:
                emit_operand("(")
                parts.append(len(params) - 1)
                parts.append("*_pi/180.0)")
            else:
                emit_operand(len(params) - 1)
        elif kind == CONST:
            emit_operand("_pi" if text in ("π", "pi", "Pi", "PI") else "_e")
        elif kind == VAR:
            if text == "C" and i == n - 1 and parts and parts[-1] == "+":
                parts.pop()  # "+ C": constant of integration
                integration_constant = True
                prev_kind = "operand"
            else:
                variables.add(text)
                emit_operand(text)
        elif kind == FUNC:
            name = _PY_FUNCS[text]
            if i + 1 < n and tokens[i + 1].text == "(":
                emit_operand(name)
                parts.append("(")
                prev_kind = "op"
                i += 2
                continue
            end = _atom_end(tokens, i + 1)
            if end == i + 1:
                return None
            emit_operand(name)
            parts.append("(")
            prev_kind = "op"
            close_after.append(end - 1)
        elif kind == OP:
            if text in ("(", "["):
                if prev_kind == "operand":
                    parts.append("*")
                parts.append("(")
                prev_kind = "op"
            elif text in (")", "]"):
                parts.append(")")
                prev_kind = "operand"
            elif text in ("+", "-"):
                parts.append(text)
                prev_kind = "op"
            elif text in ("*", "/"):
                if prev_kind != "operand":
                    return None
                parts.append(text)
                prev_kind = "op"
            elif text in ("^", "**"):
                if prev_kind != "operand":
                    return None
                parts.append("**")
                prev_kind = "op"
            elif text == "%":
                if prev_kind != "operand":
                    return None
                parts.append("*0.01")
                percent = True
            elif text == "°":
                pass  # degrees: a plain angle value (trig arguments were converted above)
            else:
                return None  # relations, ±, commas, primes: handled by the caller or not an expression
        else:
            return None
        while close_after and close_after[-1] == i:
            close_after.pop()
            parts.append(")")
            prev_kind = "operand"
        i += 1
    if close_after or prev_kind != "operand":
        return None
    template = "".join(f"_n{p}" if isinstance(p, int) else p for p in parts)
    if template.count("(") != template.count(")"):
        return None
    py = "".join(repr(params[p]) if isinstance(p, int) else p for p in parts)
    value_form = _is_value_form(tokens, nums)
    if decimals is not None and percent:
        decimals += 2
    elif percent and decimals is None:
        decimals = 2
    if nums != 1 or not value_form:
        decimals = None if nums != 1 else decimals
    return Expr(py=py, variables=tuple(sorted(variables)), value_form=value_form, decimals=decimals,
                integration_constant=integration_constant, template=template, params=tuple(params))


def _is_value_form(tokens: list[Token], nums: int) -> bool:
    """A bare value: sign, number, optional /number, %, one constant or root factor. Not 11 - 3."""
    if nums > 2:
        return False
    ops = [t.text for t in tokens if t.kind == OP and t.text not in ("(", ")", "[", "]", "°")]
    if any(t.kind == VAR for t in tokens):
        return False
    funcs = [t.text for t in tokens if t.kind == FUNC]
    if funcs and funcs != ["sqrt"]:
        return False
    if ops and ops[0] == "-" and tokens[0].text in ("-", "(") :
        ops = ops[1:]
    if ops.count("/") > 1 or any(op not in ("/", "%", "*") for op in ops):
        return False
    if nums == 2 and "/" not in ops and not funcs:
        return False
    return True


@lru_cache(maxsize=16384)
def _compiled(py: str):
    try:
        return compile(py, "<math>", "eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _sample_values(variables: tuple[str, ...], k: int) -> dict[str, float]:
    return {v: 0.5 + ((ord(v) * 0.7548776662466927 + k * 0.5698402909980532) % 1.0) * 1.5 for v in variables}


_SAMPLES = 3


_SAMPLE_SCOPES: dict[tuple[str, ...], list[dict[str, float]]] = {}


def _scopes(variables: tuple[str, ...]) -> list[dict[str, float]]:
    scopes = _SAMPLE_SCOPES.get(variables)
    if scopes is None:
        rounds = 1 if not variables else _SAMPLES
        scopes = []
        for k in range(rounds):
            scope = dict(_NAMESPACE)
            scope.update(_sample_values(variables, k))
            scopes.append(scope)
        if len(_SAMPLE_SCOPES) < 4096:
            _SAMPLE_SCOPES[variables] = scopes
    return scopes


@lru_cache(maxsize=16384)
def evaluate(py: str, variables: tuple[str, ...], params: tuple[float, ...] = ()) -> tuple[float | None, ...] | None:
    """Value (one-tuple) of a constant expression, or values at the sample points (None where the
    expression is undefined there); None if it cannot be evaluated at all. ``py`` may be a template
    whose numbers ``_n0, _n1, ...`` are given in ``params``."""
    code = _compiled(py)
    if code is None:
        return None
    values: list[float | None] = []
    bound = {f"_n{index}": param for index, param in enumerate(params)} if params else None
    for scope in _scopes(variables):
        if bound:
            scope = {**scope, **bound}
        try:
            value = eval(code, scope)  # noqa: S307 - built from whitelisted tokens only (see to_expr)
        except (ArithmeticError, ValueError, TypeError, NameError, RecursionError, MemoryError):
            values.append(None)
            continue
        if isinstance(value, complex) or not isinstance(value, (int, float)) or not math.isfinite(value):
            values.append(None)
        else:
            values.append(float(value))
    if all(v is None for v in values) or (variables and sum(v is not None for v in values) < 2):
        return None
    return tuple(values)


def evaluate_expr(expr: Expr) -> tuple[float | None, ...] | None:
    return evaluate(expr.template, expr.variables, expr.params)


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


def _split_items(span: list[Token]) -> list[list[Token]]:
    items: list[list[Token]] = []
    current: list[Token] = []
    depth = 0
    for tok in span:
        if tok.text in _OPEN:
            depth += 1
        elif tok.text in _CLOSE:
            depth -= 1
        if tok.text == "," and depth == 0:
            if current:
                items.append(current)
            current = []
        else:
            current.append(tok)
    if current:
        items.append(current)
    return items


def _split_relations(item: list[Token]) -> tuple[list[list[Token]], list[str]]:
    sides: list[list[Token]] = [[]]
    rels: list[str] = []
    depth = 0
    for tok in item:
        if tok.text in _OPEN:
            depth += 1
        elif tok.text in _CLOSE:
            depth -= 1
        if depth == 0 and tok.kind == OP and tok.text in RELATIONS:
            sides.append([])
            rels.append(tok.text)
        else:
            sides[-1].append(tok)
    return sides, rels


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


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------


def close(a: float, b: float, tol: float = 0.0) -> bool:
    return abs(a - b) <= max(tol, 1e-9 * max(1.0, abs(a), abs(b)))


def same_fingerprint(a: tuple, b: tuple, *, up_to_constant: bool = False) -> bool:
    """Two expressions agree at every sample point where both are defined (at least two)."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if len(pairs) < 2:
        return False
    if up_to_constant:
        diffs = [x - y for x, y in pairs]
        return all(close(d, diffs[0], 1e-7 * max(1.0, abs(diffs[0]))) for d in diffs)
    return all(abs(x - y) <= 1e-7 * max(1.0, abs(x), abs(y)) for x, y in pairs)


# --------------------------------------------------------------------------------------------
# sympy: exact work, rare and cached
# --------------------------------------------------------------------------------------------

_SYMPY_NAMES: dict | None = None


def _sympy_names() -> dict:
    global _SYMPY_NAMES
    if _SYMPY_NAMES is None:
        import sympy

        _SYMPY_NAMES = {
            "_sin": sympy.sin, "_cos": sympy.cos, "_tan": sympy.tan, "_sec": sympy.sec, "_csc": sympy.csc,
            "_cot": sympy.cot, "_asin": sympy.asin, "_acos": sympy.acos, "_atan": sympy.atan,
            "_sinh": sympy.sinh, "_cosh": sympy.cosh, "_tanh": sympy.tanh, "_ln": sympy.log,
            "_log": lambda v: sympy.log(v, 10), "_exp": sympy.exp, "_sqrt": sympy.sqrt, "_abs": sympy.Abs,
            "_pi": sympy.pi, "_e": sympy.E,
        }
    return _SYMPY_NAMES


@lru_cache(maxsize=2048)
def to_sympy(py: str, variables: tuple[str, ...], evaluate: bool = True):
    """The sympy form of a whitelisted expression (numbers made exact), or None."""
    import sympy

    names = dict(_sympy_names())
    names.update({v: sympy.Symbol(v) for v in variables})
    try:
        return sympy.sympify(py, locals=names, rational=True, evaluate=evaluate)
    except (sympy.SympifyError, SyntaxError, TypeError, ValueError, AttributeError, ZeroDivisionError):
        return None


def _structure_key(expr) -> str:
    """An order-insensitive key of an unevaluated sympy tree: sums and products compare as
    multisets of their (flattened) terms and factors; nothing is expanded or simplified."""
    if expr.is_Atom:
        return str(expr)
    kind = type(expr).__name__
    args = list(expr.args)
    if expr.is_Add or expr.is_Mul:
        flat = []
        stack = args
        while stack:
            arg = stack.pop()
            if type(arg) is type(expr):
                stack.extend(arg.args)
            else:
                flat.append(arg)
        keys = sorted(_structure_key(a) for a in flat)
        if expr.is_Mul:
            keys = [k for k in keys if k != "1"]
        return f"{kind}({','.join(keys)})"
    return f"{kind}({','.join(_structure_key(a) for a in args)})"


@lru_cache(maxsize=2048)
def structure_key(py: str, variables: tuple[str, ...]) -> str | None:
    expr = to_sympy(py, variables, evaluate=False)
    return None if expr is None else _structure_key(expr)


def same_structure(a: Mention, b: Mention) -> bool:
    """Equal as written, up to the order of terms and factors, without expanding or simplifying:
    (x + 4)(x + 3) matches (x + 3)(x + 4) but not x^2 + 7x + 12, and (x^3)^2 * x^4 is not x^10."""
    if a.py == b.py:
        return True
    left, right = structure_key(a.py, a.variables), structure_key(b.py, b.variables)
    return left is not None and left == right


_SOLVE_POINTS = (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0)


@lru_cache(maxsize=4096)
def solve_equation(lhs_py: str, rhs_py: str, variable: str) -> tuple[float, ...]:
    """Real solutions of lhs = rhs in one variable, for polynomial equations up to degree 4.

    The degree comes from finite differences of lhs - rhs at seven points (exact for polynomials up
    to degree 5 in exact arithmetic, tolerant to float noise), the roots from numpy; the equation is
    then checked at each root. Non-polynomial equations (1/x = 2, sin x = 0.5) return no solution:
    then the filter simply has no derived answer to look for.
    """
    import numpy as np

    code_l, code_r = _compiled(lhs_py), _compiled(rhs_py)
    if code_l is None or code_r is None:
        return ()

    def f(t: float) -> float | None:
        scope = dict(_NAMESPACE)
        scope[variable] = t
        try:
            value = eval(code_l, scope) - eval(code_r, scope)  # noqa: S307 - whitelisted expressions (to_expr)
        except (ArithmeticError, ValueError, TypeError, NameError):
            return None
        if isinstance(value, complex) or not math.isfinite(value):
            return None
        return float(value)

    values = [f(t) for t in _SOLVE_POINTS]
    if any(v is None for v in values):
        return ()
    scale = max(1.0, max(abs(v) for v in values))
    diffs = list(values)
    degree = None
    for order in range(1, 6):
        diffs = [b - a for a, b in zip(diffs, diffs[1:])]
        if all(abs(d) <= 1e-9 * scale for d in diffs):
            degree = order - 1
            break
    if degree is None or degree < 1 or degree > 4:
        return ()
    coefficients = np.polyfit(np.array(_SOLVE_POINTS), np.array(values), degree)
    out = set()
    for root in np.roots(coefficients):
        if abs(root.imag) > 1e-9 * max(1.0, abs(root.real)):
            continue
        value = float(root.real)
        check = f(value)
        if check is not None and abs(check) <= 1e-6 * scale:
            rounded = round(value)
            out.add(float(rounded) if abs(value - rounded) < 1e-9 else value)
    return tuple(sorted(out))


__all__ = [
    "Expr", "Mention", "Token", "boxed_contents", "close", "evaluate", "literal_numbers", "mentions", "normalize",
    "number_word_mentions", "same_fingerprint", "same_structure", "solve_equation", "spans", "to_expr",
    "to_sympy", "tokenize",
]
