"""Target-driven generation: count, as rows finish, the conversations the quality filter would keep.

``target_examples`` stops a generation run from starting new rows once enough conversations have
passed the filter's deterministic layers and dedup, so a run does not pay for far more requests
than the dataset needs. The count uses the same rules file and options as the filter stage (the
optional LLM judge is not run here: it would double the requests), so the filter stage may still
drop a few more; it remains the gate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ..filtering import FilterOptions
from ..filtering import check_conversation
from ..filtering import load_rules


class AcceptanceTracker:
    def __init__(self, options: FilterOptions | None = None):
        self.options = replace(options or FilterOptions(), judge=None)
        self.rules = load_rules(self.options.rules_path)
        self.dedup = None
        if self.options.dedup is not None:
            from ..filtering.dedup import Deduplicator

            self.dedup = Deduplicator(self.options.dedup)
        self.accepted = 0
        self.checked = 0

    def expected(self, rows_in_flight: int, conversations_per_row: float = 1.0) -> float:
        """Accepted so far plus what the rows still in the flow should add at the rate seen so far
        (1.0 before any result), so a run stops starting rows before it overshoots the target."""
        rate = self.accepted / self.checked if self.checked else 1.0
        return self.accepted + rows_in_flight * conversations_per_row * rate

    def add(self, conversations: Iterable[dict]) -> int:
        """Check a finished row's conversations; returns how many the filter would accept."""
        conversations = list(conversations)
        self.checked += len(conversations)
        passing = [c for c in conversations if not check_conversation(c, self.rules, self.options)]
        if passing and self.dedup is not None:
            from ..filtering.dedup import DedupCandidate

            verdicts = self.dedup.check_block([DedupCandidate(str(c.get("id", "")), c["messages"]) for c in passing])
            passing = [c for c, (reason, _) in zip(passing, verdicts) if reason is None]
        self.accepted += len(passing)
        return len(passing)
