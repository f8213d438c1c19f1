"""The run summary: one report built from every stage's metrics file."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
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
        # best of k (generate_tutor_candidates): the rejected tutor replies as preference pairs
        "tutor_candidates": (generate.get("tutor_candidates") or {}).get("per_turn", 1),
        "preference_train": (export.get("preference") or {}).get("train", 0),
        "preference_validation": (export.get("preference") or {}).get("validation", 0),
        "model": generate.get("model", ""),
        "flow_id": generate.get("flow_id", ""),
        "stage_seconds": {
            "convert": convert.get("seconds", 0.0),
            "chunk": chunk.get("seconds", 0.0),
            "generate": generate.get("execution_time_seconds", 0.0),
            "filter": quality.get("seconds", 0.0),
        },
        "export_options": export.get("options", {}),
        "judge_stats": quality.get("judge") or {},  # present when the judge ran
        **_examples_and_coverage(chunks_dir, conversations_dir, filtered_dir),
    }


EXAMPLES_PER_REASON = 2
MAX_SECTIONS_LISTED = 40
# The coverage map lists every section up to this many (a course has tens to hundreds); the counts
# above it still cover all of them.
MAX_SECTIONS_MAPPED = 500
# Values per diversity column beyond this count as "(other)": the axes are short lists, a free-text
# column would otherwise make the summary grow with the run.
MAX_AXIS_VALUES = 30
OTHER_VALUE = "(other)"
SCORE_RANGE = ("1", "2", "3", "4", "5")
_JUDGE_LOW_PREFIX = "judge_low_"
_SCORE_IN_DETAIL = re.compile(r" ([1-5])/5\b")


def _optional_jsonl(folder, name: str) -> Iterator[dict]:
    path = Path(folder) / name
    return read_jsonl(path) if path.is_file() else iter(())


def _metadata(record: dict) -> dict:
    metadata = record.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _examples_and_coverage(chunks_dir, conversations_dir, filtered_dir) -> dict:
    """For the report: rejected examples per drop reason, acceptance per source document, per section
    of the course and per diversity value, and the judge's scores. Bounded by the number of chunks
    and of accepted ids."""
    examples, low_scores = _rejected(filtered_dir)
    accepted_ids, judge_scores = _accepted(filtered_dir)
    sections = _sections(chunks_dir)
    acceptance = _acceptance(conversations_dir, sections, accepted_ids)
    for dimension, counts in low_scores.items():
        judge_scores.setdefault(dimension, _empty_scores())["rejected"] = counts
    return {"rejected_examples": examples, **acceptance, "judge_scores": judge_scores}


def _empty_scores() -> dict[str, dict[str, int]]:
    return {"accepted": dict.fromkeys(SCORE_RANGE, 0), "rejected": dict.fromkeys(SCORE_RANGE, 0)}


def _rejected(filtered_dir) -> tuple[dict[str, list[dict]], dict[str, dict[str, int]]]:
    """A couple of rejected conversations per drop reason (the student's message, the tutor's last
    reply, the reason in words), and per judge dimension the low scores that rejected a conversation.
    A rejected record keeps only its reasons, not the judge's scores, so those are read from the
    ``judge_low_<dimension>`` reasons' details ("... scored tone 2/5 ...")."""
    examples: dict[str, list[dict]] = {}
    low: dict[str, dict[str, int]] = {}
    for record in _optional_jsonl(filtered_dir, artifacts.REJECTED_FILE):
        messages = record.get("messages") if isinstance(record.get("messages"), list) else []
        texts = [m.get("content", "") for m in messages if isinstance(m, dict)]
        for reason in _metadata(record).get("drop_reasons", []):
            code, detail = str(reason.get("code", "")), str(reason.get("detail", ""))
            listed = examples.setdefault(code, [])
            if len(listed) < EXAMPLES_PER_REASON and texts:
                listed.append({"student": texts[0], "tutor": texts[-1], "detail": detail})
            score = _SCORE_IN_DETAIL.search(detail)
            if code.startswith(_JUDGE_LOW_PREFIX) and score:
                counts = low.setdefault(code[len(_JUDGE_LOW_PREFIX):], dict.fromkeys(SCORE_RANGE, 0))
                counts[score.group(1)] += 1
    return examples, low


def _accepted(filtered_dir) -> tuple[set, dict[str, dict[str, dict[str, int]]]]:
    """The ids of the accepted records, and per judge dimension how many got each score (1-5). The
    dimensions are the integer fields of ``metadata.quality.judge``; null scores (nothing to judge)
    are not counted."""
    ids = set()
    scores: dict[str, dict[str, dict[str, int]]] = {}
    for record in _optional_jsonl(filtered_dir, artifacts.ACCEPTED_FILE):
        ids.add(record.get("id"))
        judge = (_metadata(record).get("quality") or {}).get("judge")
        for dimension, value in judge.items() if isinstance(judge, dict) else ():
            if isinstance(value, int) and not isinstance(value, bool) and str(value) in SCORE_RANGE:
                scores.setdefault(dimension, _empty_scores())["accepted"][str(value)] += 1
    return ids, scores


def _sections(chunks_dir) -> dict[str, tuple[str, str]]:
    """chunk_id -> (source, section heading path), in the chunks' order (the course's order)."""
    sections: dict[str, tuple[str, str]] = {}
    for chunk in _optional_jsonl(chunks_dir, artifacts.CHUNKS_FILE):
        headings = chunk.get("headings") or []
        sections[str(chunk.get("chunk_id"))] = (str(chunk.get("source", "")), " > ".join(map(str, headings)) or "(no heading)")
    return sections


def _acceptance(conversations_dir, sections: dict[str, tuple[str, str]], accepted_ids: set) -> dict:
    """Generated and accepted conversations per source document, per section (every section of the
    chunks, generated from or not) and per value of each diversity column."""
    by_source: dict[str, list[int]] = {}
    by_section: dict[tuple[str, str], list[int]] = {key: [0, 0] for key in sections.values()}
    diversity = _DiversityCounts()
    for record in _optional_jsonl(conversations_dir, artifacts.CONVERSATIONS_FILE):
        metadata = _metadata(record)
        source, section = sections.get(str(metadata.get("chunk_id")), (str(metadata.get("source", "")), "(unknown)"))
        accepted = record.get("id") in accepted_ids
        for counts in (by_source.setdefault(source, [0, 0]), by_section.setdefault((source, section), [0, 0])):
            counts[0] += 1
            counts[1] += accepted
        persona = metadata.get("diversity")
        if isinstance(persona, dict):
            diversity.add(persona, accepted)
    generated = {key: counts for key, counts in by_section.items() if counts[0]}
    empty = [f"{source}: {section}" for (source, section), (_, accepted) in sorted(generated.items()) if not accepted]
    return {
        "acceptance_by_source": {source: {"generated": g, "accepted": a} for source, (g, a) in sorted(by_source.items())},
        "acceptance_by_section": [{"source": source, "section": section, "generated": g, "accepted": a}
                                  for (source, section), (g, a) in list(by_section.items())[:MAX_SECTIONS_MAPPED]],
        "sections": len(by_section),
        "sections_generated": len(generated),
        "sections_without_accepted": empty[:MAX_SECTIONS_LISTED],
        "sections_without_accepted_count": len(empty),
        "acceptance_by_diversity": diversity.table(),
    }


class _DiversityCounts:
    """Generated and accepted conversations per value of each diversity column.

    An axis whose options are mappings fills several columns that vary together (request_type and
    its request_instruction): a column in one-to-one correspondence with an earlier one says nothing
    new and is left out of the table. A few conversations with all-different values are one-to-one by
    chance, so it counts only once every value of the earlier column was seen at least twice."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, list[int]]] = {}
        self.links: dict[tuple[str, str], dict[str, set[str]]] = {}  # (a, b) -> value of a -> values of b seen with it

    def add(self, persona: dict, accepted: bool) -> None:
        values = {str(column): self._value(str(column), str(value)) for column, value in persona.items()}
        for column, value in values.items():
            counts = self.counts[column].setdefault(value, [0, 0])
            counts[0] += 1
            counts[1] += accepted
            for other, other_value in values.items():
                if other != column:
                    self.links.setdefault((column, other), {}).setdefault(value, set()).add(other_value)

    def _value(self, column: str, value: str) -> str:
        known = self.counts.setdefault(column, {})
        return value if value in known or len(known) < MAX_AXIS_VALUES else OTHER_VALUE

    def _determines(self, a: str, b: str) -> bool:
        return all(len(values) == 1 for values in self.links.get((a, b), {None: set()}).values())

    def _repeated(self, column: str) -> bool:
        return min(generated for generated, _ in self.counts[column].values()) >= 2

    def table(self) -> dict[str, dict[str, dict[str, int]]]:
        columns: list[str] = []
        for column in self.counts:
            if not any(self._repeated(kept) and self._determines(kept, column) and self._determines(column, kept) for kept in columns):
                columns.append(column)
        return {column: {value: {"generated": g, "accepted": a} for value, (g, a) in
                         sorted(self.counts[column].items(), key=lambda item: (-item[1][1] / item[1][0], -item[1][0], item[0]))}
                for column in columns}


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
    if report.get("sections_generated"):
        empty = report.get("sections_without_accepted_count", 0)
        rows.append(("course coverage", f"{report['sections_generated'] - empty} of {report['sections_generated']} sections generated from "
                                        f"gave an accepted conversation" + (f" ({empty} none: listed in report.html)" if empty else "")))
    rows.append(("dataset", f"{report['train']} train + {report['validation']} validation records"))
    if report.get("preference_train") or report.get("preference_validation"):
        rows.append(("preference pairs", f"{report['preference_train']} train + {report['preference_validation']} validation in preference/ "
                                         f"(best of {report.get('tutor_candidates', 1)} tutor replies)"))
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
