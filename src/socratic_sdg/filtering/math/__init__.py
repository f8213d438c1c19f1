"""Math in prose, for the leakage layer: find the values, expressions and equations a text states, and compare them.

``normalize`` (LaTeX and unicode -> plain math) -> ``tokens`` (whitelisting tokenizer, spans) ->
``expressions`` (tokens -> whitelisted Python -> value or fingerprint) -> ``mentions`` (what a text
states, number words included) -> ``compare`` (same quantity? sympy for the rare exact work).
"""

from .normalize import boxed_contents, normalize
from .tokens import CONST, FUNC, FUNCS, NUM, OP, OTHER, RELATIONS, Token, VAR, WORD, classify_name, spans, tokenize
from .expressions import Expr, evaluate, evaluate_expr, to_expr, _sample_values
from .mentions import _rounding_tol
from .mentions import (
    Mention, iter_mentions, literal_numbers, literal_numbers_normalized, mentions, number_word_mentions, number_word_parts, _NUMBER_WORDS,
    _NUM_LITERAL_RE, _QUICK_MATH, _WORDS_RE, _split_items, _split_relations, _LONE_NUMBER_WINDOW, _assigns_variable, _mentions_in_span, _tokenize_runs,
    _window_spans
)
from .compare import close, same_fingerprint, same_structure, solve_equation, structure_key, to_sympy

__all__ = [
    "CONST", "Expr", "FUNC", "FUNCS", "Mention", "NUM", "OP", "OTHER", "RELATIONS", "Token", "VAR", "WORD", "_LONE_NUMBER_WINDOW", "_NUMBER_WORDS",
    "_NUM_LITERAL_RE", "_QUICK_MATH", "_WORDS_RE", "_assigns_variable", "_mentions_in_span", "_rounding_tol", "_sample_values", "_split_items",
    "_split_relations", "_tokenize_runs", "_window_spans", "boxed_contents", "classify_name", "close", "evaluate", "evaluate_expr", "iter_mentions",
    "literal_numbers", "literal_numbers_normalized", "mentions", "normalize", "number_word_mentions", "number_word_parts", "same_fingerprint",
    "same_structure", "solve_equation", "spans", "structure_key", "to_expr", "to_sympy", "tokenize"
]
