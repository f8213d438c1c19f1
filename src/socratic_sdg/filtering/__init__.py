"""The quality filter (stage 4): conversations.jsonl -> accepted.jsonl + rejected.jsonl + filter_metrics.json.

Modules, in the order a conversation meets them: ``options`` (FilterOptions, reason codes), ``rules``
(the rules file, compiled once), ``checks`` (the deterministic layers of one conversation: format,
rules, leakage with ``leakage`` and ``math``, the dialogue checks of ``dialogue``), ``judge`` (the
optional LLM judge), ``dedup`` (near-duplicates), ``stage`` (the run over files).
"""

import sys

from .options import (
    BAD_MESSAGE, BAD_METADATA, BAD_ROLES, EMPTY_TURN, FilterOptions, FilterResult, INPUT_MADE_BY, INVALID_JSON, LAYERS, LEAK_EXPRESSION,
    LEAK_VALUE, LOW_GREEN_SCORE, MESSAGE_TOO_LONG, NO_GUIDING_QUESTION, NO_MESSAGES, PRODUCER, ROLES, SCOPES,
    TURN_TOO_LONG, TURN_TOO_SHORT, WRONG_LANGUAGE
)
from .rules import Rule, Rules, default_rules_path, load_rules
from .checks import check_conversation, ends_with_question, sentences, statements
from .stage import load_passages, run


def clear_caches() -> None:
    """Empty the filter's memo caches (every ``functools`` cache in its modules): benchmarks time cold
    rounds, and tests check that a cache never changes a result."""
    for name, module in sorted(sys.modules.items()):
        if name.startswith(__name__):
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


__all__ = [
    "clear_caches",
    "BAD_MESSAGE", "BAD_METADATA", "BAD_ROLES", "EMPTY_TURN", "FilterOptions", "FilterResult", "INPUT_MADE_BY", "INVALID_JSON", "LAYERS",
    "LEAK_EXPRESSION", "LEAK_VALUE", "LOW_GREEN_SCORE", "MESSAGE_TOO_LONG", "NO_GUIDING_QUESTION", "NO_MESSAGES",
    "PRODUCER", "ROLES", "Rule", "Rules", "SCOPES", "TURN_TOO_LONG", "TURN_TOO_SHORT", "WRONG_LANGUAGE", "check_conversation",
    "default_rules_path", "ends_with_question", "load_passages", "load_rules", "run", "sentences", "statements"
]
