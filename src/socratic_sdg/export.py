"""Stage 5, export: accepted conversations -> ``train.jsonl`` + ``validation.jsonl``.

Every line is ``{"id", "messages", "metadata"}`` with user/assistant roles, the format training_hub,
KFP's dataset_download component and TRL read (or ``{"id", "prompt", "completion", "metadata"}``
with ``format="prompt_completion"``). The split is grouped by source chunk, so that two
conversations about the same passage never straddle train and validation, and it depends only on
the chunk ids and the seed (not on the order or number of records). Records are streamed, and
memory does not grow with their number: a record's split is decided from its chunk id alone, and
``max_records`` keeps at most ``max_records`` small keys (plus a count per source document).
"""

from __future__ import annotations

import hashlib
import heapq
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
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


def _quotas(counts: dict[str, int], limit: int) -> dict[str, int]:
    """How many records each document gives when ``limit`` records are taken round-robin over the
    documents in name order, one per document per round, skipping documents that ran out."""
    quotas = dict.fromkeys(counts, 0)
    remaining = min(limit, sum(counts.values()))
    while remaining:
        active = [d for d in sorted(counts) if counts[d] > quotas[d]]
        full_rounds = min(remaining // len(active), min(counts[d] - quotas[d] for d in active))
        if full_rounds == 0:  # a last, partial round: the first documents in name order get one more
            for document in active[:remaining]:
                quotas[document] += 1
            break
        for document in active:
            quotas[document] += full_rounds
        remaining -= full_rounds * len(active)
    return quotas


def _selected_lines(input_path: Path, options: ExportOptions) -> set[int] | None:
    """Which input lines to keep under max_records: round-robin over source documents, so one long
    PDF does not crowd out the others; deterministic for a given input and seed. Within a document
    the records with the smallest keys are taken. Two passes: the records per document (one count
    each), then each document's quota of smallest keys (bounded heaps: max_records keys in all)."""
    if not options.max_records:
        return None

    def keyed() -> Iterator[tuple[str, float, int]]:
        for line_no, record in enumerate(read_jsonl(input_path)):
            document = (record.get("metadata") or {}).get("doc_id", "") if options.balance_documents else ""
            yield document, split_key(str(record.get("id")), options.seed), line_no

    counts: dict[str, int] = {}
    for document, _, _ in keyed():
        counts[document] = counts.get(document, 0) + 1
    quotas = _quotas(counts, options.max_records)
    smallest: dict[str, list[tuple[float, int]]] = {d: [] for d, quota in quotas.items() if quota}
    for document, key, line_no in keyed():
        quota = quotas[document]
        if not quota:
            continue
        heap = smallest[document]  # a max-heap (negated) of the quota smallest (key, line) so far
        if len(heap) < quota:
            heapq.heappush(heap, (-key, -line_no))
        elif (key, line_no) < (-heap[0][0], -heap[0][1]):
            heapq.heapreplace(heap, (-key, -line_no))
    return {-negated_line for heap in smallest.values() for _, negated_line in heap}


def assign_splits(records: list[dict], options: ExportOptions) -> tuple[list[dict], list[dict]]:
    """In-memory form of the split (used by tests and small callers)."""
    in_validation = _validation_rule((group_of(r) for r in records), options)
    train = [r for r in records if not in_validation(group_of(r))]
    validation = [r for r in records if in_validation(group_of(r))]
    return train, validation


def _validation_rule(groups: Iterable[str], options: ExportOptions) -> Callable[[str], bool]:
    """Which groups go to validation, from one pass over the records' groups in constant memory.

    A group goes to validation when its key is below the ratio. With few groups that can choose
    none: then the group with the smallest key is kept aside, so validation is never empty when
    there are two groups or more (deterministic: it depends on the groups, not on their order).
    """
    ratio, seed = options.validation_ratio, options.seed
    any_chosen, several = False, False
    first: str | None = None
    smallest: tuple[float, str] | None = None
    for group in groups:
        key = split_key(group, seed)
        any_chosen = any_chosen or key < ratio
        if first is None:
            first = group
        elif group != first:
            several = True
        if smallest is None or (key, group) < smallest:
            smallest = (key, group)
    fallback = smallest[1] if ratio > 0 and not any_chosen and several and smallest is not None else None
    return lambda group: group == fallback or split_key(group, seed) < ratio


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

    # Two passes over the file: the groups first (to know whether the ratio chose none), then the records.
    in_validation = _validation_rule((group_of(r) for r in chosen()), options)
    counts = {"train": 0, "validation": 0}
    with AtomicWriter(out / "train.jsonl") as train, AtomicWriter(out / "validation.jsonl") as validation:
        for record in chosen():
            split = "validation" if in_validation(group_of(record)) else "train"
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
