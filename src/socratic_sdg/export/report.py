"""What a run produced, for people: the dataset card (README.md) and an HTML report with plots.

Both are built from the stages' metrics files and the exported splits. The HTML report is one
self-contained file (inline SVG, no scripts to fetch), so the OpenShift AI dashboard renders it as a
KFP HTML artifact; its figures' data is embedded as JSON (``<script id="report-data">``) for tools.
"""

from __future__ import annotations

import bisect
import html
import json
import os
from collections import Counter
from pathlib import Path

import yaml

from ..records import AtomicWriter, check_complete, read_jsonl, remove_stale_temps
from .. import artifacts

LENGTH_BINS = (0, 16, 32, 64, 128, 256, 512, 1024)


def _tokens(text: str) -> int:
    from ..chunk import count_tokens

    return count_tokens(text)


def _messages(record: dict) -> list[dict]:
    return record.get("messages") or (record.get("prompt") or []) + (record.get("completion") or [])


def dataset_statistics(dataset_dir: str | os.PathLike[str]) -> dict:
    """Token and length statistics, records per source document, and a few examples.

    One pass over the splits; memory does not grow with the number of records (histogram bins,
    running totals and a count per source document)."""
    folder = Path(dataset_dir)
    check_complete(folder)  # train and validation from one export, not from two
    student, tutor = _Histogram(), _Histogram()
    records = tokens_total = tokens_max = 0
    per_source: Counter[str] = Counter()
    examples: list[dict] = []
    for split in artifacts.SPLIT_FILES:
        path = folder / split
        if not path.is_file():
            continue
        for record in read_jsonl(path):
            total = 0
            for message in _messages(record):
                count = _tokens(message["content"])
                total += count
                if message["role"] == "user":
                    student.add(count)
                elif message["role"] == "assistant":
                    tutor.add(count)
            records += 1
            tokens_total += total
            tokens_max = max(tokens_max, total)
            per_source[(record.get("metadata") or {}).get("source", "unknown")] += 1
            if len(examples) < 3:
                examples.append({"messages": _messages(record)})
    return {
        "records": records,
        "tokens_total": tokens_total,
        "tokens_per_record_mean": round(tokens_total / records, 1) if records else 0.0,
        "tokens_per_record_max": tokens_max,
        "student_turn_tokens": student.bins(),
        "tutor_turn_tokens": tutor.bins(),
        "records_per_source": dict(per_source.most_common()),
        "examples": examples,
    }


def _bin_labels() -> list[str]:
    return [f"{low}-{high - 1}" if high else f"{low}+" for low, high in zip(LENGTH_BINS, LENGTH_BINS[1:] + (None,))]


class _Histogram:
    """Counts of values per LENGTH_BINS bin, filled one value at a time."""

    def __init__(self):
        self._counts = [0] * len(LENGTH_BINS)

    def add(self, value: int) -> None:
        if value >= LENGTH_BINS[0]:
            self._counts[bisect.bisect_right(LENGTH_BINS, value) - 1] += 1

    def bins(self) -> dict[str, int]:
        return dict(zip(_bin_labels(), self._counts))


# --- the dataset card ---------------------------------------------------------------------------


def size_category(records: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if records < limit:
            return label
    return "n>1M"


def dataset_card(summary: dict, stats: dict, license_id: str = "other") -> str:
    front = {
        "pretty_name": "Socratic math tutor conversations",
        "license": license_id,
        "language": ["en"],
        "size_categories": [size_category(stats["records"])],
        "task_categories": ["text-generation"],
        "tags": ["socratic-tutoring", "math", "education", "synthetic", "sdg_hub", "docling"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": artifacts.TRAIN_FILE}, {"split": "validation", "path": artifacts.VALIDATION_FILE}],
            }
        ],
    }
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        "# Socratic math tutor conversations",
        "",
        "Synthetic tutoring conversations in which the tutor answers with a guiding question and never gives",
        "the answer away, generated from course documents with docling and sdg_hub and kept only when they",
        "passed the quality filter. Each line is `{\"id\", \"messages\", \"metadata\"}` (chat format: user = student,",
        "assistant = tutor). `metadata.reference_answer` is a hidden reference for filtering: do not train on it.",
        "",
        "## Counts",
        "",
        "| | |",
        "|---|---|",
        f"| train records | {summary['train']} |",
        f"| validation records | {summary['validation']} |",
        f"| source documents | {summary['documents']} ({summary['pages']} pages) |",
        f"| chunks | {summary['chunks']} |",
        f"| conversations generated | {summary['generated']} |",
        f"| accepted by the filter | {summary['accepted']} ({summary['retention']:.0%}) |",
        f"| tokens (all records) | {stats['tokens_total']} (mean {stats['tokens_per_record_mean']} per record, max {stats['tokens_per_record_max']}) |",
        "",
        "## How it was made",
        "",
        f"- generator model: `{summary['model'] or 'unknown'}`",
        f"- sdg_hub flow: `{summary['flow_id'] or 'unknown'}`",
        f"- quality filter: rejected {summary['rejected']} conversations; reasons: "
        + (", ".join(f"`{k}` {v}" for k, v in summary["rejected_by_reason"].items()) or "none"),
        f"- split: grouped by source chunk, validation ratio {summary.get('export_options', {}).get('validation_ratio', 0.1)}, "
        f"seed {summary.get('export_options', {}).get('seed', 42)}",
        "",
        "## Sources",
        "",
        "| document | records |",
        "|---|---|",
        *[f"| {source} | {count} |" for source, count in stats["records_per_source"].items()],
        "",
        "The licence of the data follows the licences of the source documents; check them before publishing.",
        "",
        "## Examples",
        "",
    ]
    for example in stats["examples"]:
        lines.append("```json")
        lines.append(json.dumps(example, ensure_ascii=False, indent=1))
        lines.append("```")
        lines.append("")
    return "\n".join(lines)


# --- the HTML report ----------------------------------------------------------------------------


def _bars(title: str, data: dict[str, float], figure_id: str, color: str = "#3b6ea5") -> str:
    """A horizontal bar chart as inline SVG."""
    rows = list(data.items()) or [("(none)", 0)]
    width, bar_height, label_width = 640, 22, 230
    height = len(rows) * (bar_height + 6) + 10
    top = max((v for _, v in rows), default=0) or 1
    parts = [
        f'<figure id="{figure_id}"><figcaption>{html.escape(title)}</figcaption>',
        f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">',
    ]
    for index, (label, value) in enumerate(rows):
        y = 5 + index * (bar_height + 6)
        length = (width - label_width - 60) * value / top
        parts.append(f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end">{html.escape(str(label))}</text>')
        parts.append(f'<rect class="bar" x="{label_width}" y="{y}" width="{length:.1f}" height="{bar_height}" fill="{color}" '
                     f'data-label="{html.escape(str(label))}" data-value="{value}"/>')
        parts.append(f'<text x="{label_width + length + 6:.1f}" y="{y + 15}">{value}</text>')
    parts.append("</svg></figure>")
    return "\n".join(parts)


def report_data(summary: dict, stats: dict) -> dict:
    failed = summary.get("generation_failed_by_kind") or {}
    funnel = {"rows attempted": summary["generated"] + summary.get("generation_failed", 0), "conversations generated": summary["generated"]}
    funnel.update({f"failed: {kind.replace('_', ' ')}": count for kind, count in failed.items()})
    funnel.update({"passed the filter": summary["accepted"], "exported": summary["train"] + summary["validation"]})
    return {
        "funnel": funnel,  # one unit: conversations (rows of chunk x sample)
        "drop_reasons": {code.replace("_", " "): count for code, count in summary["rejected_by_reason"].items()},
        "student_turn_tokens": stats["student_turn_tokens"],
        "tutor_turn_tokens": stats["tutor_turn_tokens"],
        "records_per_source": stats["records_per_source"],
        "acceptance_by_source": {source: round(100 * c["accepted"] / c["generated"]) if c["generated"] else 0
                                 for source, c in summary.get("acceptance_by_source", {}).items()},
        "stage_seconds": summary.get("stage_seconds", {}),
    }


def _marked(text: str, detail: str) -> str:
    """``text`` escaped, with the passage the reason quotes (the first "..." in it) marked."""
    quoted = next((q for q in detail.split('"')[1::2] if len(q) > 3), "")
    escaped = html.escape(text)
    snippet = html.escape(quoted.rstrip(".… ").strip())
    return escaped.replace(snippet, f"<mark>{snippet}</mark>", 1) if snippet and snippet in escaped else escaped


def _rejected_examples(summary: dict) -> str:
    parts = []
    for code, examples in summary.get("rejected_examples", {}).items():
        parts.append(f"<h3>{html.escape(code.replace('_', ' '))} ({summary['rejected_by_reason'].get(code, 0)})</h3>")
        for e in examples:
            parts.append(f"<div class='example rejected'><p><b>student</b>: {html.escape(e['student'])}</p>"
                         f"<p><b>tutor</b>: {_marked(e['tutor'], e['detail'])}</p><p class='why'>why: {html.escape(e['detail'])}</p></div>")
    return "".join(parts) or "<p>No conversation was rejected.</p>"


def _coverage(summary: dict) -> str:
    empty = summary.get("sections_without_accepted", [])
    total = summary.get("sections_generated", 0)
    count = summary.get("sections_without_accepted_count", len(empty))
    if not total:
        return "<p>No section of the course was generated from.</p>"
    items = "".join(f"<li>{html.escape(s)}</li>" for s in empty)
    more = f"<li>... and {count - len(empty)} more</li>" if count > len(empty) else ""
    return (f"<p>{total - count} of {total} sections of the course gave at least one accepted conversation.</p>"
            + (f"<p>Sections with none:</p><ul>{items}{more}</ul>" if count else ""))


def html_report(summary: dict, stats: dict) -> str:
    data = report_data(summary, stats)
    figures = [
        _bars("From rows to training records (conversations)", data["funnel"], "funnel"),
        _bars("Why conversations were rejected", data["drop_reasons"], "drop-reasons", "#b5533c"),
        _bars("Accepted, % of generated, per source document", data["acceptance_by_source"], "acceptance-by-source", "#3b8c8c"),
        _bars("Student turn length (tokens)", data["student_turn_tokens"], "student-lengths", "#5b8c5a"),
        _bars("Tutor turn length (tokens)", data["tutor_turn_tokens"], "tutor-lengths", "#5b8c5a"),
        _bars("Records per source document", data["records_per_source"], "records-per-source", "#7a5ba5"),
        _bars("Wall time per stage (s)", data["stage_seconds"], "stage-seconds", "#888888"),
    ]
    table = "".join(f"<tr><th>{html.escape(k.replace('_', ' '))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in summary.items() if not isinstance(v, (dict, list)))
    examples = "".join(
        "<div class='example'>" + "".join(f"<p><b>{html.escape(m['role'])}</b>: {html.escape(m['content'])}</p>" for m in e["messages"]) + "</div>"
        for e in stats["examples"]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Socratic SDG report</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
figure {{ margin: 1em 0 2em; }} figcaption {{ font-weight: bold; margin-bottom: .4em; }}
svg text {{ font-size: 12px; }} table {{ border-collapse: collapse; }}
th, td {{ text-align: left; padding: 2px 10px; border-bottom: 1px solid #ddd; }}
.example {{ border-left: 3px solid #3b6ea5; padding-left: .8em; margin: .8em 0; }}
.example.rejected {{ border-left-color: #b5533c; }} .why {{ color: #555; font-size: 90%; }} mark {{ background: #f7d9a8; }}
</style></head>
<body>
<h1>Socratic SDG run</h1>
<p>{summary['train']} train + {summary['validation']} validation records from {summary['documents']} documents;
{summary['accepted']} of {summary['generated']} generated conversations passed the quality filter ({summary['retention']:.0%}).</p>
{''.join(figures)}
<h2>Coverage of the course</h2>{_coverage(summary)}
<h2>Rejected, and why</h2>{_rejected_examples(summary)}
<h2>Accepted examples</h2>{examples or '<p>No records were accepted.</p>'}
<h2>Counts</h2><table>{table}</table>
<script type="application/json" id="report-data">{html.escape(json.dumps(data), quote=False)}</script>
</body></html>
"""


def write_reports(summary: dict, dataset_dir: str | os.PathLike[str], license_id: str = "other") -> dict[str, Path]:
    """Write README.md (dataset card), report.html and report.md into the dataset folder."""
    from . import summary as run_summary

    folder = Path(dataset_dir)
    paths = {"card": folder / "README.md", "html": folder / "report.html", "markdown": folder / "report.md"}
    remove_stale_temps(folder, [path.name for path in paths.values()])  # what a killed earlier run left
    stats = dataset_statistics(folder)
    with AtomicWriter(paths["card"]) as handle:
        handle.write(dataset_card(summary, stats, license_id))
    with AtomicWriter(paths["html"]) as handle:
        handle.write(html_report(summary, stats))
    with AtomicWriter(paths["markdown"]) as handle:
        handle.write(run_summary.to_markdown(summary))
    return paths
