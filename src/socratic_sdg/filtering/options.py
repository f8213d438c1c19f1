"""The quality filter's options, result and reason codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace


from . import leakage as leakage_layer
from ..errors import OptionsError
from ..options import group, option
from ..results import StageResult
from .dedup import DedupOptions
from .judge import JudgeOptions


PRODUCER = "the filter (socratic-sdg filter, or the pipeline's filter step)"
INPUT_MADE_BY = "the conversations.jsonl that `socratic-sdg generate` (the pipeline's generate step) writes"

ROLES = frozenset({"system", "user", "assistant"})
SCOPES = frozenset({"turn", "statement"})
LAYERS = ("format", "rules", "leakage", "judge", "dedup")

# Drop-reason codes produced by code (the rules file adds its own, e.g. states_answer).
INVALID_JSON = "invalid_json"
NO_MESSAGES = "no_messages"
BAD_MESSAGE = "bad_message"
BAD_METADATA = "bad_metadata"
BAD_ROLES = "bad_roles"
EMPTY_TURN = "empty_turn"
TURN_TOO_SHORT = "turn_too_short"
TURN_TOO_LONG = "turn_too_long"
MESSAGE_TOO_LONG = "message_too_long"
WRONG_LANGUAGE = "wrong_language"
NO_GUIDING_QUESTION = "no_guiding_question"
LOW_GREEN_SCORE = "low_green_score"
LEAK_VALUE = leakage_layer.LEAK_VALUE
LEAK_EXPRESSION = leakage_layer.LEAK_EXPRESSION


@dataclass(frozen=True)
class FilterOptions:
    """Knobs for one filter run, grouped by layer. Every layer can be switched off.

    The length bounds apply to tutor (assistant) turns only: a student may well write "help?", but a
    tutor reply under 10 characters ("Why?", "Ok.") is a broken generation rather than a move, while a
    short question ("What is 6 × 2?", the move human tutors make most) guides; a 2000-character one is
    a lecture. ``min_green_score`` counts distinct green-flag codes in the final tutor turn, on top of
    the question ``require_question`` demands.

    ``judge`` (None = no judge) and ``dedup`` (None = keep duplicates) hold their layers' options;
    ``True``/``False`` stand for the defaults and for off. The judge's endpoint, key and model default
    to ``LLM_API_BASE`` / ``LLM_API_KEY`` / ``LLM_MODEL``; ``chunks_path`` (chunks.jsonl) gives it the
    source passage of each record (by ``metadata.chunk_id``).
    """

    rules_path: str | None = option(None, "Rules YAML (e.g. mounted from a ConfigMap); empty uses the packaged rules.", flag="--rules")
    graded_turns: str = option(
        "all", "Tutor turns graded: all (each is a training target) or last (earlier turns are context, as in a labelled set of human replies).",
        choices=("all", "last"))
    # format
    check_format: bool = option(True, "Pattern checks and length bounds of the format layer (the dialogue structure is always checked).",
                                flag="--no-format-checks")
    min_turn_chars: int = option(10, "Shortest tutor turn, in characters.")
    max_turn_chars: int = option(2000, "Longest tutor turn, in characters.")
    # A 50 MB turn took 16 s and 1.9 GB through the checks: longer messages are rejected before any pattern runs.
    max_message_chars: int = option(100_000, "Any longer message (student turns too) rejects its conversation before the checks run (0 = no limit).")
    language: str | None = option(None, "Reject tutor turns not in this language (e.g. en); empty = no language check.")
    # rules
    check_rules: bool = option(True, "The red/green phrase rules.", flag="--no-rules")
    require_question: bool = option(True, "Reject conversations whose last tutor turn does not ask a question.")
    min_green_score: int = option(0, "Guiding moves (green flags) the last tutor turn needs, on top of the question.")
    # leakage
    check_leakage: bool = option(True, "Reject tutor turns that state the hidden reference answer or solve the student's problem.", flag="--no-leakage")
    leakage_use_problem: bool = option(True, "Without a reference answer, solve the student's own equation to find the answer a turn may leak.",
                                       flag="--no-solve-problem")
    chunks_path: str | None = option(None, "chunks.jsonl: the source passages, for the judge's grounding score.", flag="--chunks", kfp=False)
    judge: JudgeOptions | None = group(JudgeOptions, "Also score the conversations the other layers accept with an LLM judge (more requests to the endpoint).",
                                       prefix="judge_", switch="judge", enabled=False, implied_by=("endpoint",))
    dedup: DedupOptions | None = group(DedupOptions, "Remove exact and near-duplicate student questions and conversations.",
                                       prefix="dedup_", switch="dedup", enabled=True)
    block_size: int = 512  # records per block of the stream (memory holds one block plus dedup's index)

    def __post_init__(self) -> None:
        # True / False stand for a layer with its default options / no layer
        if isinstance(self.judge, bool):
            object.__setattr__(self, "judge", JudgeOptions() if self.judge else None)
        if isinstance(self.dedup, bool):
            object.__setattr__(self, "dedup", DedupOptions() if self.dedup else None)
        if self.judge is not None and self.judge.graded_turns != self.graded_turns:  # the judge grades what the filter grades
            object.__setattr__(self, "judge", replace(self.judge, graded_turns=self.graded_turns))
        if self.min_turn_chars < 0 or self.max_turn_chars < self.min_turn_chars:
            raise OptionsError(
                f"FilterOptions needs 0 <= min_turn_chars <= max_turn_chars, "
                f"got {self.min_turn_chars} and {self.max_turn_chars}."
            )
        if self.max_message_chars < 0:
            raise OptionsError(f"FilterOptions.max_message_chars must be >= 0 (0 = no limit), got {self.max_message_chars}.")
        if self.min_green_score < 0:
            raise OptionsError(f"FilterOptions.min_green_score must be >= 0, got {self.min_green_score}.")
        if self.graded_turns not in ("all", "last"):
            raise OptionsError(f"FilterOptions.graded_turns must be 'all' or 'last', got {self.graded_turns!r}.")
        if self.block_size < 1:
            raise OptionsError(f"FilterOptions.block_size must be >= 1, got {self.block_size}.")
        if self.language is not None and not re.fullmatch(r"[a-z]{2,3}", self.language):
            raise OptionsError(f"FilterOptions.language must be a language code such as 'en', got {self.language!r}.")

    @property
    def judge_enabled(self) -> bool:
        return self.judge is not None

    def layers(self) -> list[str]:
        """The layers this configuration runs, in order."""
        enabled = {"format": True, "rules": self.check_rules, "leakage": self.check_leakage,
                   "judge": self.judge is not None, "dedup": self.dedup is not None}
        return [layer for layer in LAYERS if enabled[layer]]


@dataclass
class FilterResult(StageResult):
    """What one run did. ``reasons`` counts records per drop-reason code; a record rejected for two
    different codes counts under both, so the values may add up to more than ``rejected``.
    ``layers`` counts, per layer, the records it rejected (again, a record may count under several)."""

    total: int
    accepted: int
    rejected: int
    reasons: dict[str, int]
    accepted_path: str
    rejected_path: str
    metrics_path: str
    layers: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def acceptance_rate(self) -> float:
        return round(self.accepted / self.total, 4) if self.total else 0.0

    def metrics(self) -> dict:
        return {"total": self.total, "accepted": self.accepted, "rejected": self.rejected, "acceptance_rate": self.acceptance_rate,
                "reasons": self.reasons, "layers": self.layers, "seconds": round(self.seconds, 3)}

    def summary_lines(self) -> list[str]:
        lines = [f"{self.accepted} accepted, {self.rejected} rejected of {self.total}"]
        lines += [f"  layer {layer}: {count} rejected" for layer, count in self.layers.items()]
        return lines + [f"  {reason}: {count}" for reason, count in sorted(self.reasons.items(), key=lambda kv: -kv[1])]
