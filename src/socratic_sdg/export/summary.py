"""The run summary: one report built from every stage's metrics file."""

from __future__ import annotations

import os
from pathlib import Path

from ..records import read_json, read_jsonl, write_json
from .. import artifacts

SUMMARY_FILE = artifacts.SUMMARY_FILE


def _metrics(folder: str | os.PathLike[str], name: str) -> dict:
    path = Path(folder) / name
    return read_json(path) if path.is_file() else {}


def collect(converted_dir, chunks_dir, conversations_dir, filtered_dir, dataset_dir) -> dict:
    """Gather the counts of a run from the stages' output folders."""
    convert = _metrics(converted_dir, artifacts.CONVERT_METRICS_FILE)
    chunk = _metrics(chunks_dir, artifacts.CHUNK_METRICS_FILE)
    generate = _metrics(conversations_dir, artifacts.GENERATE_METRICS_FILE)
    quality = _metrics(filtered_dir, artifacts.FILTER_METRICS_FILE)
    export = _metrics(dataset_dir, artifacts.EXPORT_METRICS_FILE)
    generated = generate.get("output_rows", 0)
    accepted = quality.get("accepted", 0)
    return {
        "documents": convert.get("documents", 0),
        "documents_failed": convert.get("failed", 0),
        "pages": convert.get("pages", 0),
        "chunks": chunk.get("chunks", 0),
        "chunks_dropped": chunk.get("dropped", 0),
        "chunk_tokens": chunk.get("tokens", 0),
        "generated": generated,
        "generation_failed": generate.get("failed_rows", 0),
        "generation_failed_by_kind": generate.get("rows_failed_by_kind", {}),
        "generation_stopped_early": generate.get("stopped_early"),
        "target_examples": generate.get("target_examples", 0),
        "max_requests": generate.get("max_requests", 0),
        "generation_seconds": generate.get("execution_time_seconds", 0.0),
        "prompt_tokens": generate.get("prompt_tokens", 0),
        "completion_tokens": generate.get("completion_tokens", 0),
        "accepted": accepted,
        "rejected": quality.get("rejected", 0),
        "retention": round(accepted / generated, 4) if generated else 0.0,
        "rejected_by_reason": dict(sorted(quality.get("reasons", {}).items(), key=lambda kv: -kv[1])),
        "train": export.get("train", 0),
        "validation": export.get("validation", 0),
        "model": generate.get("model", ""),
        "flow_id": generate.get("flow_id", ""),
        "stage_seconds": {
            "convert": convert.get("seconds", 0.0),
            "chunk": chunk.get("seconds", 0.0),
            "generate": generate.get("execution_time_seconds", 0.0),
            "filter": quality.get("seconds", 0.0),
        },
        "export_options": export.get("options", {}),
        **_examples_and_coverage(chunks_dir, conversations_dir, filtered_dir),
    }


EXAMPLES_PER_REASON = 2
MAX_SECTIONS_LISTED = 40


def _examples_and_coverage(chunks_dir, conversations_dir, filtered_dir) -> dict:
    """For the report: a couple of rejected conversations per drop reason (the student's message, the
    tutor's last reply, the reason in words), and acceptance per source document and per section of
    the course, with the sections that gave no accepted conversation. Bounded by the number of chunks."""
    rejected_examples: dict[str, list[dict]] = {}
    rejected_path = Path(filtered_dir) / artifacts.REJECTED_FILE
    for record in read_jsonl(rejected_path) if rejected_path.is_file() else ():
        messages = record.get("messages") if isinstance(record.get("messages"), list) else []
        texts = [m.get("content", "") for m in messages if isinstance(m, dict)]
        for reason in (record.get("metadata") or {}).get("drop_reasons", []):
            examples = rejected_examples.setdefault(reason["code"], [])
            if len(examples) < EXAMPLES_PER_REASON and texts:
                examples.append({"student": texts[0], "tutor": texts[-1], "detail": reason.get("detail", "")})
    sections: dict[str, tuple[str, str]] = {}  # chunk_id -> (source, section heading)
    chunks_path = Path(chunks_dir) / artifacts.CHUNKS_FILE
    for chunk in read_jsonl(chunks_path) if chunks_path.is_file() else ():
        headings = chunk.get("headings") or []
        sections[str(chunk.get("chunk_id"))] = (str(chunk.get("source", "")), " > ".join(map(str, headings)) or "(no heading)")
    accepted_ids = set()
    accepted_path = Path(filtered_dir) / artifacts.ACCEPTED_FILE
    for record in read_jsonl(accepted_path) if accepted_path.is_file() else ():
        accepted_ids.add(record.get("id"))
    by_source: dict[str, list[int]] = {}
    by_section: dict[tuple[str, str], list[int]] = {}
    conversations_path = Path(conversations_dir) / artifacts.CONVERSATIONS_FILE
    for record in read_jsonl(conversations_path) if conversations_path.is_file() else ():
        chunk_id = str((record.get("metadata") or {}).get("chunk_id"))
        source, section = sections.get(chunk_id, ((record.get("metadata") or {}).get("source", ""), "(unknown)"))
        accepted = record.get("id") in accepted_ids
        for counts in (by_source.setdefault(source, [0, 0]), by_section.setdefault((source, section), [0, 0])):
            counts[0] += 1
            counts[1] += accepted
    empty = [f"{source}: {section}" for (source, section), (_, accepted) in sorted(by_section.items()) if not accepted]
    return {
        "rejected_examples": rejected_examples,
        "acceptance_by_source": {source: {"generated": g, "accepted": a} for source, (g, a) in sorted(by_source.items())},
        "sections_generated": len(by_section),
        "sections_without_accepted": empty[:MAX_SECTIONS_LISTED],
        "sections_without_accepted_count": len(empty),
    }


def document(dataset_dir, *, converted_dir=None, chunks_dir=None, conversations_dir=None, filtered_dir=None,
             license_id: str = "other") -> tuple[dict, dict[str, Path]]:
    """The run summary (summary.json), the dataset card (README.md) and the report (report.html,
    report.md) of an exported dataset, from the stage folders that are known (the others count as
    empty). Returns the summary and the paths written."""
    from .report import write_reports

    missing = Path(dataset_dir) / ".no-such-stage-folder"
    collected = collect(*(folder or missing for folder in (converted_dir, chunks_dir, conversations_dir, filtered_dir)), dataset_dir)
    write(collected, dataset_dir)
    return collected, write_reports(collected, dataset_dir, license_id)


def write(report: dict, dataset_dir) -> Path:
    path = Path(dataset_dir) / SUMMARY_FILE
    write_json(path, report)
    return path


def numeric_metrics(report: dict) -> dict[str, float]:
    flat = {k: v for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    flat.update({f"rejected_{reason}": count for reason, count in report["rejected_by_reason"].items()})
    flat.update({f"seconds_{stage}": seconds for stage, seconds in report.get("stage_seconds", {}).items()})
    return flat


def _rows(report: dict) -> list[tuple[str, str]]:
    rows = [
        ("documents converted", f"{report['documents']} ({report['documents_failed']} failed, {report['pages']} pages)"),
        ("chunks", f"{report['chunks']} ({report['chunks_dropped']} dropped as noise)"),
        ("conversations generated", f"{report['generated']} ({report['generation_failed']} failed"
         + "".join(f", {kind} {n}" for kind, n in report.get("generation_failed_by_kind", {}).items())
         + f") in {report['generation_seconds']:.0f}s"),
        ("accepted", str(report["accepted"])),
        ("rejected", str(report["rejected"])),
    ]
    stopped = report.get("generation_stopped_early")
    if stopped == "target_examples":
        rows.insert(3, ("  stopped", f"{report['target_examples']} conversations passed the filter's checks (the target)"))
    elif stopped == "max_requests":
        rows.insert(3, ("  stopped", f"the budget of {report['max_requests']} requests was spent before the target"))
    rows += [(f"  rejected: {reason}", str(count)) for reason, count in report["rejected_by_reason"].items()]
    rows.append(("dataset", f"{report['train']} train + {report['validation']} validation records"))
    rows.append(("model / flow", f"{report['model']} / {report['flow_id']}"))
    return rows


def to_text(report: dict) -> str:
    rows = _rows(report)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def to_markdown(report: dict) -> str:
    lines = ["# Socratic SDG run", "", "| stage | result |", "|---|---|"]
    lines += [f"| {k.strip()} | {v} |" for k, v in _rows(report)]
    return "\n".join(lines) + "\n"


def read(dataset_dir) -> dict:
    return read_json(Path(dataset_dir) / SUMMARY_FILE)
