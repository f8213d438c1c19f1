"""Preference pairs from best-of-k generation: what the tutor said, and what it must not say, to the same student.

With ``tutor_candidates`` k > 1 each generated conversation records, per tutor turn, the candidates
the filter's rules rejected (``metadata.tutor_candidates``, see :mod:`..generate.candidates`). For
each turn whose kept reply the rules accepted and where another candidate was rejected, the export
writes one pair in the conversational preference format TRL's DPO trainer reads::

    {"id", "prompt": [messages up to that turn], "chosen": [{"role": "assistant", ...}],
     "rejected": [{"role": "assistant", ...}], "metadata": {"rejected_reasons", "chunk_id", ...}}

Pairs come only from conversations the whole filter accepted (rules, leakage, judge, dedup), so a
chosen reply never belongs to a dialogue the dataset dropped. One pair per turn: the first rejected
candidate that is not a near-duplicate of the chosen one (a pair whose two replies differ by a word
or two teaches a trainer little beyond noise).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from .. import artifacts
from ..filtering.dedup import normalize_text
from ..records import content_id

PREFERENCE_DIR = "preference"  # beside train.jsonl / validation.jsonl
PREFERENCE_FILES = artifacts.SPLIT_FILES  # preference/train.jsonl, preference/validation.jsonl
CANDIDATES_KEY = artifacts.TUTOR_CANDIDATES_KEY  # what generation records per tutor turn with best of k
# Rejected replies at least this similar to the chosen one (difflib ratio of the normalised texts) make no pair.
NEAR_DUPLICATE_RATIO = 0.9


def near_duplicate(a: str, b: str) -> bool:
    a, b = normalize_text(a), normalize_text(b)
    return a == b or difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= NEAR_DUPLICATE_RATIO


def has_candidates(record: dict) -> bool:
    metadata = record.get("metadata")
    return isinstance(metadata, dict) and bool(metadata.get(CANDIDATES_KEY))


def preference_pairs(record: dict, system_prompt: str | None = None) -> tuple[list[dict], int]:
    """The pairs of one accepted conversation, and how many turns gave none only because every
    rejected candidate was a near-duplicate of the chosen reply."""
    metadata = record.get("metadata") or {}
    messages = [{"role": m["role"], "content": m["content"]} for m in record["messages"] if m["role"] != "system"]
    pairs, near_duplicates = [], 0
    for turn in metadata.get(CANDIDATES_KEY) or []:
        index = turn.get("message_index")
        if not turn.get("accepted") or not turn.get("rejected") or not isinstance(index, int) or not 0 < index < len(messages):
            continue
        chosen = messages[index]
        if chosen["role"] != "assistant":
            continue
        rejected = next((r for r in turn["rejected"] if not near_duplicate(r["content"], chosen["content"])), None)
        if rejected is None:
            near_duplicates += 1
            continue
        prompt = messages[:index]
        if system_prompt:
            prompt = [{"role": "system", "content": system_prompt}, *prompt]
        pairs.append({
            "id": content_id(record.get("id"), index),
            "prompt": prompt,
            "chosen": [chosen],
            "rejected": [{"role": "assistant", "content": rejected["content"]}],
            "metadata": {
                "conversation_id": record.get("id"),
                "message_index": index,
                "rejected_reasons": [reason.get("code") for reason in rejected.get("reasons") or []],
                "rejected_details": [reason.get("detail") for reason in rejected.get("reasons") or []],
                **{key: metadata[key] for key in ("chunk_id", "doc_id", "source", "flow_id", "model") if key in metadata},
            },
        })
    return pairs, near_duplicates


def preference_folder(dataset_dir: str | Path) -> Path:
    return Path(dataset_dir) / PREFERENCE_DIR
