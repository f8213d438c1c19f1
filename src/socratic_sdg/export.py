"""Stage 5, export: accepted conversations -> ``train.jsonl`` + ``validation.jsonl``.

Every line is ``{"id", "messages", "metadata"}`` with user/assistant roles, the format training_hub,
KFP's dataset_download component and TRL read (or ``{"id", "prompt", "completion", "metadata"}``
with ``format="prompt_completion"``). The split is grouped by source chunk, so that two
conversations about the same passage never straddle train and validation, and it depends only on
the chunk ids and the seed (not on the order or number of records). Records are streamed: memory
holds one small key per record, not the records.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .records import AtomicWriter, dumps, read_jsonl, write_json

FORMATS = ("messages", "prompt_completion")
HIDDEN_METADATA = ("reference_answer", "quality")  # for the filter and the report, not for training


@dataclass(frozen=True)
class ExportOptions:
    validation_ratio: float = 0.1
    seed: int = 42
    system_prompt: str | None = None  # opt-in: consumers that read messages[0] as the student need none
    format: str = "messages"
    strip_metadata: bool = False  # drop the hidden reference answer and filter scores
    max_records: int = 0  # 0 = all; otherwise keep at most this many (balanced across documents)
    balance_documents: bool = True  # with max_records: take records round-robin across source documents

    def __post_init__(self):
        if not 0.0 <= self.validation_ratio < 1.0:
            raise ValueError(f"validation_ratio must be in [0, 1), got {self.validation_ratio}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown export format {self.format!r}; choose one of {', '.join(FORMATS)}")


def split_key(chunk_id: str, seed: int) -> float:
    """A uniform number in [0, 1) derived from the chunk id and seed only."""
    digest = hashlib.sha256(f"{seed}:{chunk_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def group_of(record: dict) -> str:
    return (record.get("metadata") or {}).get("chunk_id") or record.get("id") or ""


def to_training_record(record: dict, options: ExportOptions) -> dict:
    messages = [{"role": m["role"], "content": m["content"]} for m in record["messages"] if m["role"] != "system"]
    if options.system_prompt:
        messages.insert(0, {"role": "system", "content": options.system_prompt})
    metadata = dict(record.get("metadata") or {})
    if options.strip_metadata:
        for key in HIDDEN_METADATA:
            metadata.pop(key, None)
    if options.format == "prompt_completion":
        # TRL's conversational prompt-completion: everything up to the last tutor turn is the prompt.
        return {"id": record.get("id"), "prompt": messages[:-1], "completion": messages[-1:], "metadata": metadata}
    return {"id": record.get("id"), "messages": messages, "metadata": metadata}


def _selected_lines(input_path: Path, options: ExportOptions) -> set[int] | None:
    """Which input lines to keep under max_records: round-robin over source documents, so one long
    PDF does not crowd out the others; deterministic for a given input and seed."""
    if not options.max_records:
        return None
    by_document: dict[str, list[tuple[float, int]]] = {}
    for line_no, record in enumerate(read_jsonl(input_path)):
        document = (record.get("metadata") or {}).get("doc_id", "") if options.balance_documents else ""
        by_document.setdefault(document, []).append((split_key(str(record.get("id")), options.seed), line_no))
    queues = [sorted(v) for _, v in sorted(by_document.items())]
    selected: set[int] = set()
    while len(selected) < options.max_records and any(queues):
        for queue in queues:
            if queue and len(selected) < options.max_records:
                selected.add(queue.pop(0)[1])
    return selected


def assign_splits(records: list[dict], options: ExportOptions) -> tuple[list[dict], list[dict]]:
    """In-memory form of the split (used by tests and small callers)."""
    validation_groups = _validation_groups({group_of(r) for r in records}, options)
    train = [r for r in records if group_of(r) not in validation_groups]
    validation = [r for r in records if group_of(r) in validation_groups]
    return train, validation


def _validation_groups(groups: set[str], options: ExportOptions) -> set[str]:
    keys = {g: split_key(g, options.seed) for g in groups}
    chosen = {g for g, key in keys.items() if key < options.validation_ratio}
    # With few groups the ratio can round to zero: keep one group aside so validation is never
    # empty when there is something to split (the group with the smallest key, deterministic).
    if options.validation_ratio > 0 and not chosen and len(keys) >= 2:
        chosen = {min(keys, key=keys.get)}
    return chosen


@dataclass
class ExportResult:
    train: int
    validation: int
    train_path: Path
    validation_path: Path
    options: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        return {"train": self.train, "validation": self.validation, "options": self.options}


def run(
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    options: ExportOptions = ExportOptions(),
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Write ``train.jsonl``, ``validation.jsonl`` and ``export_metrics.json`` from accepted.jsonl."""
    input_path = Path(input_path)
    out = Path(output_dir)
    selected = _selected_lines(input_path, options)

    def chosen() -> Iterator[dict]:
        for line_no, record in enumerate(read_jsonl(input_path)):
            if selected is None or line_no in selected:
                yield record

    # Two passes over the file: the groups first (one string each), then the records themselves.
    validation_groups = _validation_groups({group_of(r) for r in chosen()}, options)
    counts = {"train": 0, "validation": 0}
    with AtomicWriter(out / "train.jsonl") as train, AtomicWriter(out / "validation.jsonl") as validation:
        for record in chosen():
            split = "validation" if group_of(record) in validation_groups else "train"
            (validation if split == "validation" else train).write(dumps(to_training_record(record, options)) + "\n")
            counts[split] += 1
    result = ExportResult(counts["train"], counts["validation"], out / "train.jsonl", out / "validation.jsonl", asdict(options))
    write_json(out / "export_metrics.json", result.metrics())
    if progress:
        progress(f"[export] {counts['train']} train, {counts['validation']} validation records in {out}")
    return result


def copy_dataset(dataset_dir: str | os.PathLike[str], target_dir: str | os.PathLike[str]) -> Path:
    """Copy a finished dataset folder to a stable path (e.g. on a PVC) for another pipeline.

    The copy lands in a temporary sibling first and is swapped in whole, so a reader of the target
    never sees half a dataset.
    """
    source, target = Path(dataset_dir), Path(target_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.incoming")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    previous = target.with_name(f".{target.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
    return target
