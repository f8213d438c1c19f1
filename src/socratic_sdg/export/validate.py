"""Check a dataset folder the way the fine-tuning side loads it: every row, not the first 100.

training_hub, KFP's dataset_download component and TRL read JSONL with one ``{"messages": [...]}``
per line (roles system/user/assistant); a workshop notebook reads ``messages[0]`` as the student and
``messages[1]`` as the tutor. Problems are reported by file and line, and a folder whose export was
interrupted between its files (a train.jsonl and a validation.jsonl from different runs) is reported
too: its set manifest says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..records import incomplete_sets, parse_json_line
from .. import artifacts
from .preference import PREFERENCE_DIR

SPLITS = artifacts.SPLIT_FILES
ROLES = {"system", "user", "assistant"}


@dataclass
class ValidationReport:
    rows: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_row(row: object) -> list[str]:
    """What is wrong with one parsed row (empty when it loads and trains as intended)."""
    if not isinstance(row, dict):
        return [f"a row must be a JSON object, got {type(row).__name__}"]
    problems = []
    extra = set(row) - {"id", "messages", "metadata", "prompt", "completion"}
    if extra:
        problems.append(f"unexpected top-level keys {sorted(extra)}")
    if "messages" in row:
        messages = row["messages"]
    elif "prompt" in row and "completion" in row:
        messages = (row["prompt"] or []) + (row["completion"] or [])
    else:
        return problems + ["no 'messages' list (nor prompt/completion)"]
    if not isinstance(messages, list) or not messages:
        return problems + ["'messages' must be a non-empty list"]
    roles = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) - {"role", "content"} or not {"role", "content"} <= set(message):
            problems.append(f"message {index} must be exactly {{role, content}}")
            continue
        if message["role"] not in ROLES:
            problems.append(f"message {index} has role {message['role']!r}, not one of system/user/assistant")
        if not isinstance(message["content"], str) or not message["content"].strip():
            problems.append(f"message {index} ({message['role']}) has empty content")
        roles.append(message["role"])
    turns = [r for r in roles if r != "system"]
    if "system" in roles[1:]:
        problems.append("a system message may only come first")
    if turns and turns[0] != "user":
        problems.append("the first non-system message must be the student's (user)")
    if turns and turns[-1] != "assistant":
        problems.append("the last message must be the tutor's (assistant)")
    if any(a == b for a, b in zip(turns, turns[1:])):
        problems.append("user and assistant messages must alternate")
    return problems


def _empty_on_purpose(folder: Path, split: str) -> bool:
    """An empty validation split the export was asked for (validation_ratio 0)."""
    metrics = folder / artifacts.EXPORT_METRICS_FILE
    if split != artifacts.VALIDATION_FILE or not metrics.is_file():
        return False
    return json.loads(metrics.read_text(encoding="utf-8")).get("options", {}).get("validation_ratio") == 0


def check_pair(row: object) -> list[str]:
    """What is wrong with one preference pair (empty when TRL's DPO trainer reads it as intended):
    a conversational prompt ending with the student's turn, one tutor reply chosen and one rejected."""
    if not isinstance(row, dict):
        return [f"a pair must be a JSON object, got {type(row).__name__}"]
    missing = [key for key in ("prompt", "chosen", "rejected") if key not in row]
    if missing:
        return [f"no {' / '.join(missing)} (a pair holds prompt, chosen and rejected)"]
    problems = []
    extra = set(row) - {"id", "prompt", "chosen", "rejected", "metadata"}
    if extra:
        problems.append(f"unexpected top-level keys {sorted(extra)}")
    prompt = row["prompt"]
    if not isinstance(prompt, list) or not prompt:
        problems.append("'prompt' must be a non-empty list of messages")
    else:
        problems.extend(f"prompt: {problem}" for problem in check_row({"messages": prompt + [{"role": "assistant", "content": "-"}]}))
    replies = []
    for key in ("chosen", "rejected"):
        value = row[key]
        if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict) and set(value[0]) == {"role", "content"}
                and value[0]["role"] == "assistant" and isinstance(value[0]["content"], str) and value[0]["content"].strip()):
            problems.append(f"'{key}' must be one tutor message: [{{\"role\": \"assistant\", \"content\": ...}}]")
        else:
            replies.append(value[0]["content"].strip())
    if len(replies) == 2 and replies[0] == replies[1]:
        problems.append("chosen and rejected are the same reply")
    return problems


def _rows(path: Path, report: ValidationReport):
    """(line number, parsed row) of a JSONL file; unreadable lines are reported, not yielded."""
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                report.problems.append(f"{path}:{line_no}: not valid UTF-8 (byte {exc.start + 1} of the line)")
                continue
            if not line.strip():
                report.problems.append(f"{path}:{line_no}: empty line")
                continue
            row, problem = parse_json_line(line)
            if problem is not None:
                report.problems.append(f"{path}:{line_no}: not valid JSON ({problem})")
                continue
            yield line_no, row


def _chunk_of(row) -> str | None:
    metadata = row.get("metadata") if isinstance(row, dict) else None
    return metadata.get("chunk_id") if isinstance(metadata, dict) else None


def validate(dataset_dir: str | os.PathLike[str]) -> ValidationReport:
    folder = Path(dataset_dir)
    report = ValidationReport()
    report.problems.extend(incomplete_sets(folder))
    chunks: dict[str, set] = {}  # split -> chunk ids, to check that the preference pairs follow the grouped split
    for split in SPLITS:
        path = folder / split
        if not path.is_file():
            report.problems.append(f"{path}: missing (a dataset folder holds {' and '.join(SPLITS)})")
            continue
        count = 0
        chunks[split] = set()
        for line_no, row in _rows(path, report):
            count += 1
            chunks[split].add(_chunk_of(row))
            report.problems.extend(f"{path}:{line_no}: {problem}" for problem in check_row(row))
        report.rows[split] = count
        if count == 0 and not any(p.startswith(f"{path}:") for p in report.problems) and not _empty_on_purpose(folder, split):
            report.problems.append(f"{path}: no rows (datasets.load_dataset cannot load an empty split, and a trainer has nothing to learn from)")
    preference = folder / PREFERENCE_DIR
    if preference.is_dir():
        _validate_preference(preference, chunks, report)
    return report


def _validate_preference(preference: Path, chunks: dict[str, set], report: ValidationReport) -> None:
    """preference/train.jsonl and validation.jsonl: every pair, and no chunk on both sides of the split."""
    report.problems.extend(incomplete_sets(preference))
    for split in SPLITS:
        path = preference / split
        if not path.is_file():
            report.problems.append(f"{path}: missing (a preference folder holds {' and '.join(SPLITS)})")
            continue
        other = chunks.get(SPLITS[1 - SPLITS.index(split)], set()) - {None}
        count = 0
        for line_no, row in _rows(path, report):
            count += 1
            report.problems.extend(f"{path}:{line_no}: {problem}" for problem in check_pair(row))
            chunk = _chunk_of(row)
            if chunk is not None and chunk in other:
                report.problems.append(f"{path}:{line_no}: chunk {chunk!r} has conversations in the other split's "
                                       f"{SPLITS[1 - SPLITS.index(split)]}: its pairs must stay on one side of the grouped split")
        report.rows[f"{PREFERENCE_DIR}/{split}"] = count
