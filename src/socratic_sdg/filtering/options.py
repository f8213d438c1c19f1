"""The quality filter's options, result and reason codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field


from . import leakage as leakage_layer
from .. import artifacts


ACCEPTED_FILE = artifacts.ACCEPTED_FILE
REJECTED_FILE = artifacts.REJECTED_FILE
METRICS_FILE = artifacts.FILTER_METRICS_FILE
OUTPUT_FILES = (ACCEPTED_FILE, REJECTED_FILE, METRICS_FILE)  # written as one set (records.AtomicFileSet)
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

    ``rules_path`` None means the packaged ``rules/default_rules.yaml``. The length bounds apply to
    tutor (assistant) turns only: a student may well write "help?", but a tutor reply under 10
    characters ("Why?", "Ok.") is a broken generation rather than a move, while a short question
    ("What is 6 × 2?", the move human tutors make most) guides; a 2000-character one is a lecture. ``min_green_score`` counts distinct
    green-flag codes in the final tutor turn, on top of the question ``require_question`` demands.

    The judge runs when ``judge`` is true, ``judge_endpoint`` is set or ``judge_complete`` (a
    ``complete(messages) -> str`` callable, for tests or other clients) is given; its endpoint,
    key and model default to ``LLM_API_BASE`` / ``LLM_API_KEY`` / ``LLM_MODEL``. ``chunks_path``
    (chunks.jsonl) gives the judge the source passage of each record (by ``metadata.chunk_id``).
    """

    rules_path: str | None = None
    # Which tutor turns are graded: "all" (every tutor turn of a generated dialogue is a training
    # target) or "last" (earlier turns are given context, e.g. a human tutor's history in a labelled set).
    graded_turns: str = "all"
    # format
    min_turn_chars: int = 10  # "What is 6 × 2?" is a whole Socratic move; shorter is a broken generation
    max_turn_chars: int = 2000
    # Any message (student turns too) longer than this rejects the record before a pattern runs:
    # a 50 MB turn took 16 s and 1.9 GB through the checks. 0 = no limit.
    max_message_chars: int = 100_000
    check_format: bool = True  # pattern checks and length bounds; the dialogue structure is always checked
    language: str | None = None  # e.g. "en": reject tutor turns written in another language
    # rules
    check_rules: bool = True
    require_question: bool = True
    min_green_score: int = 0
    # leakage
    check_leakage: bool = True
    leakage_use_problem: bool = True  # without a reference answer, solve the student's equation
    # judge (optional, needs an endpoint)
    judge: bool = False
    judge_endpoint: str | None = None
    judge_model: str | None = None
    judge_api_key: str | None = field(default=None, repr=False)
    judge_prompt_path: str | None = None
    judge_max_concurrency: int = 8
    judge_max_retries: int = 3
    judge_timeout: float = 60.0
    judge_min_mistake_identification: int = 3
    judge_min_guidance: int = 3
    judge_min_actionability: int = 3
    judge_min_grounding: int = 3
    judge_min_tone: int = 3
    judge_reject_wrong_answer: bool = True
    judge_on_error: str = "reject"
    judge_complete: Callable[[list[dict[str, str]]], str] | None = field(default=None, repr=False, compare=False)
    chunks_path: str | None = None
    # dedup
    dedup: bool = True
    dedup_questions: bool = True
    dedup_conversations: bool = True
    dedup_near: bool = True
    dedup_question_threshold: float = 0.8
    dedup_conversation_threshold: float = 0.8
    dedup_num_perm: int = 64
    dedup_bands: int = 16
    dedup_numbers_must_match: bool = True
    # streaming
    block_size: int = 512

    def __post_init__(self) -> None:
        if self.min_turn_chars < 0 or self.max_turn_chars < self.min_turn_chars:
            raise ValueError(
                f"FilterOptions needs 0 <= min_turn_chars <= max_turn_chars, "
                f"got {self.min_turn_chars} and {self.max_turn_chars}."
            )
        if self.max_message_chars < 0:
            raise ValueError(f"FilterOptions.max_message_chars must be >= 0 (0 = no limit), got {self.max_message_chars}.")
        if self.min_green_score < 0:
            raise ValueError(f"FilterOptions.min_green_score must be >= 0, got {self.min_green_score}.")
        if self.graded_turns not in ("all", "last"):
            raise ValueError(f"FilterOptions.graded_turns must be 'all' or 'last', got {self.graded_turns!r}.")
        if self.block_size < 1:
            raise ValueError(f"FilterOptions.block_size must be >= 1, got {self.block_size}.")
        if self.language is not None and not re.fullmatch(r"[a-z]{2,3}", self.language):
            raise ValueError(f"FilterOptions.language must be a language code such as 'en', got {self.language!r}.")
        if self.dedup:
            self.dedup_options()  # validates thresholds and LSH shape
        if self.judge_enabled:
            self.judge_options()

    @property
    def judge_enabled(self) -> bool:
        return bool(self.judge or self.judge_endpoint or self.judge_complete is not None)

    def judge_options(self):
        from .judge import JudgeOptions

        return JudgeOptions(
            endpoint=self.judge_endpoint, model=self.judge_model, api_key=self.judge_api_key,
            prompt_path=self.judge_prompt_path, max_concurrency=self.judge_max_concurrency,
            max_retries=self.judge_max_retries, timeout=self.judge_timeout,
            min_mistake_identification=self.judge_min_mistake_identification, min_guidance=self.judge_min_guidance,
            min_actionability=self.judge_min_actionability,
            min_grounding=self.judge_min_grounding, min_tone=self.judge_min_tone,
            reject_wrong_answer=self.judge_reject_wrong_answer, on_error=self.judge_on_error,
            graded_turns=self.graded_turns,
        )

    def dedup_options(self):
        from .dedup import DedupOptions

        return DedupOptions(
            questions=self.dedup_questions, conversations=self.dedup_conversations, near=self.dedup_near,
            question_threshold=self.dedup_question_threshold, conversation_threshold=self.dedup_conversation_threshold,
            num_perm=self.dedup_num_perm, bands=self.dedup_bands, numbers_must_match=self.dedup_numbers_must_match,
        )

    def layers(self) -> list[str]:
        """The layers this configuration runs, in order."""
        enabled = {"format": True, "rules": self.check_rules, "leakage": self.check_leakage,
                   "judge": self.judge_enabled, "dedup": self.dedup}
        return [layer for layer in LAYERS if enabled[layer]]


@dataclass
class FilterResult:
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
