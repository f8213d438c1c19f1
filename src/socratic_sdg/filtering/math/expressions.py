"""Expressions: tokens -> whitelisted Python -> a value, or a fingerprint (values at fixed sample points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from .tokens import CONST, FUNC, NUM, OP, Token, VAR, _CLOSE, _OPEN, _TRIG


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
