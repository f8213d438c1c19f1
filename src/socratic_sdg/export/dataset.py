"""Stage 5, export: accepted conversations -> ``train.jsonl`` + ``validation.jsonl``.

Every line is ``{"id", "messages", "metadata"}`` with user/assistant roles, the format training_hub,
KFP's dataset_download component and TRL read (or ``{"id", "prompt", "completion", "metadata"}``
with ``format="prompt_completion"``). The split is grouped by source chunk, so that two
conversations about the same passage never straddle train and validation, and it depends only on
the chunk ids and the seed (not on the order or number of records). Records are streamed, and
memory does not grow with their number: a record's split is decided from its chunk id alone, and
``max_records`` keeps at most ``max_records`` small keys (plus a count per source document).

The two splits and ``export_metrics.json`` are one :class:`~.records.AtomicFileSet`: a reader never
takes a new train.jsonl beside an old validation.jsonl (a kill between the two leaves the set marked
incomplete, which :mod:`.validate` and :func:`copy_dataset` refuse). Every dataset folder this
project writes holds a ``.socratic-sdg-dataset`` marker, and :func:`copy_dataset` only ever replaces a
folder holding that marker (or an empty one): never a folder of someone's own files.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..records import SET_MANIFEST_PREFIX, AtomicFileSet, check_complete, dumps, is_temp_name, iter_jsonl, remove_stale_temps, require_input, write_json
from ..results import PathLike, Progress, StageResult
from ..errors import SocraticSdgError
from .. import artifacts
from ..options import option
from .preference import CANDIDATES_KEY, PREFERENCE_DIR, PREFERENCE_FILES, has_candidates, preference_folder, preference_pairs

TRAIN_FILE = artifacts.TRAIN_FILE
VALIDATION_FILE = artifacts.VALIDATION_FILE
METRICS_FILE = artifacts.EXPORT_METRICS_FILE
SET_FILES = (TRAIN_FILE, VALIDATION_FILE, METRICS_FILE)  # written as one set
# Everything the export stage puts in a dataset folder (the pipeline's export step adds the run summary
# and the reports); the marker says the folder is this project's, so copy_dataset may replace it.
DATASET_FILES = SET_FILES + (artifacts.SUMMARY_FILE, "README.md", "report.html", "report.md", PREFERENCE_DIR)
DATASET_MARKER = ".socratic-sdg-dataset"
PRODUCER = "the export (socratic-sdg export, or the pipeline's export step)"
INPUT_MADE_BY = "the accepted.jsonl that `socratic-sdg filter` (the pipeline's filter step) writes"


class ExportError(SocraticSdgError, ValueError):
    """An input record or a copy target the export cannot use; one sentence naming it and the fix."""


FORMATS = ("messages", "prompt_completion")
HIDDEN_METADATA = ("reference_answer", "quality")  # for the filter and the report, not for training
# Always left out of the SFT records: the rejected candidates go to preference/ as pairs.
MOVED_METADATA = (CANDIDATES_KEY,)


@dataclass(frozen=True)
class ExportOptions:
    # The help texts are also the component's and the pipeline's parameter descriptions (a test checks).
    validation_ratio: float = option(0.1, "Share of source chunks whose conversations go to validation.jsonl.")
    seed: int = option(42, "Seed of the grouped train/validation split.")
    # Opt-in: consumers that read messages[0] as the student need none.
    system_prompt: str | None = option(None, "A system turn prepended to every record; empty keeps user/assistant only.")
    format: str = option("messages", "messages (chat format, for training_hub and dataset_download) or prompt_completion (TRL).",
                         choices=FORMATS)
    strip_metadata: bool = option(False, "Drop the hidden reference answer and the filter scores from the records.")
    max_records: int = option(0, "Keep at most this many records, balanced across source documents (0 = all).")
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
    metadata = record.get("metadata")
    return (metadata.get("chunk_id") if isinstance(metadata, dict) else None) or record.get("id") or ""


_JSON_TYPES = {"str": "string", "list": "array", "int": "number", "float": "number", "bool": "boolean"}


def check_conversation(record: dict, where: str) -> dict:
    """``record`` if export can use it; otherwise an ExportError naming ``where`` (file:line) and the fix."""
    metadata = record.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ExportError(f"{where}: metadata is a JSON {_JSON_TYPES.get(type(metadata).__name__, 'value')}, not an object, so this record did not "
                          "come through the filter; run `socratic-sdg filter` first and export its accepted.jsonl")
    messages = record.get("messages")
    if "messages" not in record:
        problem = "the record has no messages"
    elif not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages):
        problem = "messages is not a list of {role, content} objects"
    elif not any(m["role"] != "system" for m in messages):
        problem = "messages has no student or tutor turn"
    else:
        return record
    raise ExportError(f"{where}: {problem}; each record needs messages, a list of {{role, content}} turns like the "
                      "filter's accepted.jsonl has, so fix the record or export the filter's output")


def _records(input_path: Path) -> Iterator[dict]:
    """The input's records, each checked (errors name the file and line)."""
    for line_no, record in iter_jsonl(input_path):
        yield check_conversation(record, f"{input_path}:{line_no}")


def to_training_record(record: dict, options: ExportOptions) -> dict:
    messages = [{"role": m["role"], "content": m["content"]} for m in record["messages"] if m["role"] != "system"]
    if options.system_prompt:
        messages.insert(0, {"role": "system", "content": options.system_prompt})
    metadata = {k: v for k, v in (record.get("metadata") or {}).items() if k not in MOVED_METADATA}
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
        for line_no, record in enumerate(_records(input_path)):
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
class ExportResult(StageResult):
    """Records written to each split, where, and with which options."""

    train: int
    validation: int
    train_path: Path
    validation_path: Path
    options: dict = field(default_factory=dict)
    preference: dict | None = None  # pairs per split and the turns left out as near-duplicates, when written

    def summary_lines(self) -> list[str]:
        lines = [f"{self.train} train + {self.validation} validation records -> {self.train_path.parent}"]
        if self.preference is not None:
            p = self.preference
            lines.append(f"{p['train']} train + {p['validation']} validation preference pairs -> {self.train_path.parent / 'preference'}"
                         + (f" ({p['near_duplicates']} turns without a pair: rejected replies near-duplicates of the chosen)" if p["near_duplicates"] else ""))
        return lines

    def metrics(self) -> dict:
        metrics = {"train": self.train, "validation": self.validation, "options": self.options}
        if self.preference is not None:
            metrics["preference"] = self.preference
        return metrics


def run(input_path: PathLike, output_dir: PathLike, options: ExportOptions = ExportOptions(), progress: Progress | None = None) -> ExportResult:
    """Write ``train.jsonl``, ``validation.jsonl`` and ``export_metrics.json`` from accepted.jsonl.

    The three files are replaced together or not at all (an :class:`AtomicFileSet`); temp files a
    killed earlier export left in ``output_dir`` are removed first. A record export cannot use stops
    the run before anything is replaced, with an error naming its file and line.
    """
    input_path = require_input(input_path, "export input", INPUT_MADE_BY)
    check_complete(input_path)  # an accepted.jsonl from a filter run killed half way through its outputs
    out = Path(output_dir)
    remove_stale_temps(out, (*DATASET_FILES, DATASET_MARKER))
    selected = _selected_lines(input_path, options)

    def chosen() -> Iterator[dict]:
        for line_no, record in enumerate(_records(input_path)):
            if selected is None or line_no in selected:
                yield record

    # Two passes over the file: the groups first (to know whether the ratio chose none, and whether
    # any record has best-of-k candidates), then the records.
    candidates = [False]

    def groups() -> Iterator[str]:
        for record in chosen():
            candidates[0] = candidates[0] or has_candidates(record)
            yield group_of(record)

    in_validation = _validation_rule(groups(), options)
    counts = {"train": 0, "validation": 0}
    # Pairs are written when there are candidates, and also to replace an earlier export's pairs.
    pairs = {"train": 0, "validation": 0, "near_duplicates": 0} if candidates[0] or preference_folder(out).is_dir() else None
    with contextlib.ExitStack() as stack:
        files = stack.enter_context(AtomicFileSet(out, SET_FILES, kind="export", producer=PRODUCER))
        preference = None
        if pairs is not None:
            preference = stack.enter_context(AtomicFileSet(preference_folder(out), PREFERENCE_FILES, kind="preference", producer=PRODUCER))
        train, validation = files[TRAIN_FILE], files[VALIDATION_FILE]
        for record in chosen():
            split = "validation" if in_validation(group_of(record)) else "train"
            (validation if split == "validation" else train).write(dumps(to_training_record(record, options)) + "\n")
            counts[split] += 1
            if preference is not None:
                made, near_duplicates = preference_pairs(record, options.system_prompt)
                pairs["near_duplicates"] += near_duplicates
                for pair in made:  # a chunk's pairs go to the split its conversations go to
                    preference[TRAIN_FILE if split == "train" else VALIDATION_FILE].write(dumps(pair) + "\n")
                    pairs[split] += 1
        result = ExportResult(counts["train"], counts["validation"], out / TRAIN_FILE, out / VALIDATION_FILE, asdict(options), pairs)
        json.dump(result.metrics(), files[METRICS_FILE], ensure_ascii=False, indent=2, sort_keys=True)
        files[METRICS_FILE].write("\n")
    _write_marker(out, [*SET_FILES, files.manifest_path.name, *([PREFERENCE_DIR] if pairs is not None else [])])
    if progress:
        progress(f"[export] {counts['train']} train, {counts['validation']} validation records in {out}"
                 + (f"; {pairs['train']} train, {pairs['validation']} validation preference pairs" if pairs is not None else ""))
    return result


# --- the hand-off copy ------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_marker(folder: Path, names: Iterable[str]) -> None:
    write_json(folder / DATASET_MARKER, {"written_by": "socratic-sdg", "kind": "dataset", "files": sorted(set(names))})


def _marker_files(folder: Path) -> set[str] | None:
    """The names the folder's marker lists, or None when there is no readable marker."""
    try:
        marker = json.loads((folder / DATASET_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(marker, dict) or marker.get("written_by") != "socratic-sdg":
        return None
    return {name for name in marker.get("files") or [] if isinstance(name, str)}


def _ours(name: str) -> bool:
    return name in DATASET_FILES or name == DATASET_MARKER or name.startswith(SET_MANIFEST_PREFIX) or is_temp_name(name)


def _replace_problem(folder: Path) -> str | None:
    """Why replacing ``folder`` whole could lose something that is not this project's (None: it may go).

    It may go when it is empty, or holds the dataset marker and nothing but the files a dataset folder
    holds, or (a copy made before the marker existed) holds train, validation and export_metrics and
    nothing else that the export writes."""
    entries = sorted(os.listdir(folder))
    if not entries:
        return None
    listed = _marker_files(folder)
    if listed is not None:
        foreign = [name for name in entries if not _ours(name) and name not in listed]
    else:
        foreign = [name for name in entries if not _ours(name)]
        if not foreign and not set(SET_FILES) <= set(entries):
            return (f"{folder} holds {', '.join(entries[:3])}{' and more' if len(entries) > 3 else ''} but no "
                    f"{DATASET_MARKER} marker, so it is not a dataset folder this project wrote and replacing it could "
                    "lose someone's files; copy the dataset to a new or empty folder instead, or empty that one")
    if not foreign:
        return None
    listing = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    return (f"{folder} holds {listing}, which {'is' if len(foreign) == 1 else 'are'} not part of a socratic-sdg "
            "dataset and would be deleted by replacing the folder; copy the dataset to a new or empty folder "
            f"instead (export_pvc_path), or move {'it' if len(foreign) == 1 else 'them'} out")


def check_copy_target(target_dir: str | os.PathLike[str]) -> Path:
    """``target_dir`` as a Path if :func:`copy_dataset` may write there; otherwise an ExportError.

    A missing or empty folder is fine, and so is a dataset folder this project wrote (an earlier
    copy); anything else (a file, a symbolic link, a folder holding other files) is refused. Call it
    before a long run to fail early; :func:`copy_dataset` calls it too.
    """
    target = Path(target_dir)
    if target.is_symlink():
        raise ExportError(f"{target} is a symbolic link; point the copy at a real folder (it would replace the link, "
                          "not the folder the link points to)")
    if not target.exists():
        return target
    if not target.is_dir():
        raise ExportError(f"{target} is a file, not a folder; point the copy at a new or empty folder, or at one an "
                          "earlier run filled")
    problem = _replace_problem(target)
    if problem:
        raise ExportError(problem)
    return target


def _remove_stale_siblings(target: Path) -> None:
    """Remove the staging and previous folders a killed copy to ``target`` left beside it: only
    folders with this project's names for them (``.<target>.incoming-*``, ``.<target>.previous-*``)
    whose content a copy would also replace (see :func:`_replace_problem`)."""
    prefixes = (f".{target.name}.incoming-", f".{target.name}.previous-")
    try:
        siblings = [p for p in target.parent.iterdir() if p.name.startswith(prefixes)]
    except OSError:
        return
    for sibling in siblings:
        if sibling.is_dir() and not sibling.is_symlink() and _replace_problem(sibling) is None:
            shutil.rmtree(sibling, ignore_errors=True)


def copy_dataset(dataset_dir: str | os.PathLike[str], target_dir: str | os.PathLike[str]) -> Path:
    """Copy a finished dataset folder to a stable path (e.g. on a PVC) for another pipeline.

    The target must be missing, empty, or a dataset folder this project wrote (see
    :func:`check_copy_target`): a folder holding anything else is refused, never replaced. The copy
    (without temp files, with the dataset marker) lands in a staging folder beside the target first
    and is swapped in whole, so a reader of the target never sees half a dataset. A dataset whose
    export was interrupted is refused.
    """
    source, target = Path(dataset_dir), Path(target_dir)
    if not source.is_dir():
        raise FileNotFoundError(f"dataset folder {source} does not exist; export the dataset first")
    check_complete(source)
    check_copy_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_siblings(target)
    names = [name for name in sorted(os.listdir(source)) if not is_temp_name(name) and name != DATASET_MARKER]
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.incoming-", dir=target.parent))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it 0700; the next pipeline may run as another user
    previous: Path | None = None
    try:
        _write_marker(staging, names)  # first: a staging folder a kill leaves behind is recognisably ours
        for name in names:
            if (source / name).is_dir():
                shutil.copytree(source / name, staging / name, ignore=lambda _, found: [n for n in found if is_temp_name(n)])
            else:
                shutil.copy2(source / name, staging / name)
        if target.exists():
            check_copy_target(target)  # again: someone may have put files there during the copy
            if any(target.iterdir()):
                previous = Path(tempfile.mkdtemp(prefix=f".{target.name}.previous-", dir=target.parent))
                os.replace(target, previous)  # onto the empty folder mkdtemp made
            else:
                target.rmdir()
        try:
            os.replace(staging, target)
        except OSError:
            if previous is not None:
                os.replace(previous, target)  # put the earlier copy back
                previous = None
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    return target
