"""Best of k tutor replies: which of a flow's LLM blocks write a tutor turn, and which candidate a row keeps.

With ``tutor_candidates`` k > 1 the runner asks for k completions at each tutor block (the student
side and the reference answer are generated once), the flow's next blocks extract them into k
records, and :class:`CandidateChooser` keeps one: the best by the quality filter's deterministic
layers (rules, leakage, dialogue; no judge, no dedup), so the conversation continues with a reply
the filter accepts when any of the k is one. The others are not lost: each turn's rejected
candidates go into the kept record (``tutor_candidates``, then ``metadata.tutor_candidates`` of
the conversation), from which the export writes preference pairs (see :mod:`..export.preference`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from typing import NamedTuple

from .. import artifacts
from ..filtering import FilterOptions, load_rules
from ..filtering.checks import evaluate_conversation
from .errors import GenerateError

CANDIDATES_COLUMN = artifacts.TUTOR_CANDIDATES_KEY  # per kept record: one entry per tutor turn chosen among k
GROUP_COLUMN = "_candidate_of"  # which record before the tutor block a candidate record came from
# The columns a conversation's tutor turns are read from (rows.to_conversation): a block writing one is a tutor block.
_TUTOR_COLUMN = re.compile(r"tutor_reply|response|tutor_turn_\d+")


def tutor_steps(steps) -> set[str]:
    """Names of the LLM steps whose reply becomes a tutor turn: the step's output column, through the
    next blocks' response extractor (``<field_prefix>content``) and renames, ends in a tutor column."""
    names = set()
    for position, step in enumerate(steps):
        if step.mode != "llm":
            continue
        column = step.output_col
        for later in steps[position + 1:]:
            if later.mode == "llm":
                break
            block = later.block
            if block.__class__.__name__ == "LLMResponseExtractorBlock" and column in (block.input_cols or []):
                column = f"{block.field_prefix}content"
            elif isinstance(getattr(block, "input_cols", None), dict) and column in block.input_cols:
                column = block.input_cols[column]  # RenameColumnsBlock: {old: new}
        if _TUTOR_COLUMN.fullmatch(column) and column != step.output_col:
            names.add(step.name)
    return names


def check_flow_has_tutor_steps(steps, flow_id: str, candidates: int) -> set[str]:
    names = tutor_steps(steps)
    if candidates > 1 and not names:
        raise GenerateError(
            f"tutor_candidates={candidates} needs a tutor turn, but no LLM block of the flow {flow_id!r} writes one (a block "
            "whose reply an LLMResponseExtractorBlock and a rename turn into tutor_reply or tutor_turn_N); use tutor_candidates=1 "
            "with this flow")
    return names


class _Judged(NamedTuple):
    record: dict
    conversation: dict | None  # None: the candidate has no tutor reply
    reasons: list[dict]  # the filter's drop reasons (empty: accepted)
    green_score: int
    index: int

    def rank(self) -> tuple:
        """Accepted first, then more guiding moves, fewer problems, the earlier candidate."""
        return (not self.reasons, self.green_score, -len(self.reasons), -self.index)


_NO_TUTOR_TURN = {"code": "no_tutor_turn", "layer": "format", "detail": "the candidate has no tutor reply"}


class CandidateChooser:
    """Keeps one of a tutor turn's k candidate records, judged by the filter's deterministic layers."""

    def __init__(self, to_conversation, filter_options: FilterOptions | None = None):
        # to_conversation(record) -> {"messages", "metadata"} | None: the partial conversation of a record
        self.to_conversation = to_conversation
        self.options = replace(filter_options or FilterOptions(), judge=None, dedup=None)
        self.rules = load_rules(self.options.rules_path)

    def choose(self, records: list[dict]) -> list[dict]:
        """One record per group of candidates (the records a tutor block's k completions became)."""
        groups: dict[object, list[dict]] = {}
        for record in records:
            groups.setdefault(record.get(GROUP_COLUMN), []).append(record)
        return [self._choose_one(group) for group in groups.values()]

    def _judge(self, record: dict, index: int) -> _Judged:
        conversation = self.to_conversation(record)
        messages = (conversation or {}).get("messages") or []
        if not messages or messages[-1]["role"] != "assistant":
            return _Judged(record, None, [_NO_TUTOR_TURN], 0, index)
        reasons, quality = evaluate_conversation(conversation, self.rules, self.options)
        return _Judged(record, conversation, reasons, quality.get("green_score", 0), index)

    def _choose_one(self, candidates: list[dict]) -> dict:
        judged = [self._judge(record, index) for index, record in enumerate(candidates)]
        best = max(judged, key=_Judged.rank)
        kept = {key: value for key, value in best.record.items() if key != GROUP_COLUMN}
        if best.conversation is not None:
            turn = {
                "message_index": len(best.conversation["messages"]) - 1,
                "candidates": len(judged),
                "accepted": not best.reasons,
                "rejected": [{"content": other.conversation["messages"][-1]["content"], "reasons": other.reasons}
                             for other in judged if other is not best and other.conversation is not None and other.reasons],
            }
            kept[CANDIDATES_COLUMN] = [*(best.record.get(CANDIDATES_COLUMN) or []), turn]
        return kept


def candidate_counts(conversation: dict) -> Counter:
    """A generated conversation's best-of-k figures: tutor turns chosen among candidates, candidates
    judged, turns whose kept reply the rules accept, and turns that yield a preference pair (kept
    reply accepted, another rejected)."""
    counts: Counter = Counter()
    for turn in (conversation.get("metadata") or {}).get(CANDIDATES_COLUMN) or []:
        counts.update(turns=1, candidates=turn.get("candidates", 0), turns_accepted=bool(turn.get("accepted")),
                      turns_with_pair=bool(turn.get("accepted") and turn.get("rejected")))
    return counts
