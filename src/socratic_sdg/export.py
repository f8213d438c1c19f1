"""Stage 5, export: accepted conversations -> ``train.jsonl`` + ``validation.jsonl`` in chat format.

Every line is ``{"id", "messages", "metadata"}`` with user/assistant roles, the format training_hub,
KFP's dataset_download component and TRL read. The split is grouped by source chunk, so that two
conversations about the same passage never straddle train and validation, and it depends only on
the chunk ids and the seed (not on the order or number of records).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .records import read_jsonl, write_json, write_jsonl

EXPORT_KEYS = ("id", "messages", "metadata")


@dataclass(frozen=True)
class ExportOptions:
    validation_ratio: float = 0.1
    seed: int = 42
    system_prompt: str | None = None  # opt-in: consumers that read messages[0] as the student need none

    def __post_init__(self):
        if not 0.0 <= self.validation_ratio < 1.0:
            raise ValueError(f"validation_ratio must be in [0, 1), got {self.validation_ratio}")


def split_key(chunk_id: str, seed: int) -> float:
    """A uniform number in [0, 1) derived from the chunk id and seed only."""
    digest = hashlib.sha256(f"{seed}:{chunk_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def to_training_record(record: dict, options: ExportOptions) -> dict:
    messages = [{"role": m["role"], "content": m["content"]} for m in record["messages"] if m["role"] != "system"]
    if options.system_prompt:
        messages.insert(0, {"role": "system", "content": options.system_prompt})
    out = {"id": record.get("id"), "messages": messages, "metadata": record.get("metadata") or {}}
    return {k: out[k] for k in EXPORT_KEYS}


def assign_splits(records: list[dict], options: ExportOptions) -> tuple[list[dict], list[dict]]:
    groups: dict[str, float] = {}
    for record in records:
        chunk_id = (record.get("metadata") or {}).get("chunk_id") or record.get("id") or ""
        groups.setdefault(chunk_id, split_key(chunk_id, options.seed))
    validation_groups = {g for g, key in groups.items() if key < options.validation_ratio}
    # With few groups the ratio can round to zero: keep one group aside so validation is never
    # empty when there is something to split (the group with the smallest key, deterministic).
    if options.validation_ratio > 0 and not validation_groups and len(groups) >= 2:
        validation_groups = {min(groups, key=groups.get)}
    train, validation = [], []
    for record in records:
        chunk_id = (record.get("metadata") or {}).get("chunk_id") or record.get("id") or ""
        (validation if chunk_id in validation_groups else train).append(record)
    return train, validation


@dataclass
class ExportResult:
    train: int
    validation: int
    train_path: Path
    validation_path: Path

    def metrics(self) -> dict:
        return {"train": self.train, "validation": self.validation}


def run(
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    options: ExportOptions = ExportOptions(),
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Write ``train.jsonl``, ``validation.jsonl`` and ``export_metrics.json`` from accepted.jsonl."""
    records = [to_training_record(r, options) for r in read_jsonl(input_path)]
    train, validation = assign_splits(records, options)
    out = Path(output_dir)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "validation.jsonl", validation)
    result = ExportResult(len(train), len(validation), out / "train.jsonl", out / "validation.jsonl")
    write_json(out / "export_metrics.json", result.metrics())
    if progress:
        progress(f"[export] {len(train)} train, {len(validation)} validation records in {out}")
    return result
