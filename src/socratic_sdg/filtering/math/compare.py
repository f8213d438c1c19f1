"""Comparison of mentions, and the exact (sympy) work: structure of expressions, solving an equation.
"""

from __future__ import annotations

import math
from functools import lru_cache
from .expressions import _NAMESPACE, _compiled
from .mentions import Mention


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

