"""Normalisation: LaTeX and unicode math -> plain-text math with the same sentence structure.
"""

from __future__ import annotations

import re
from functools import lru_cache


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
