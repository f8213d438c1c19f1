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
from collections.abc import Callable
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
    pairs = summary.get("preference_train", 0) + summary.get("preference_validation", 0)
    if pairs:  # the rejected tutor replies of best-of-k, for a DPO step after the SFT one
        front["configs"].append({"config_name": "preference", "data_files": [
            {"split": "train", "path": f"preference/{artifacts.TRAIN_FILE}"}, {"split": "validation", "path": f"preference/{artifacts.VALIDATION_FILE}"}]})
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
        *([f"| preference pairs | {summary['preference_train']} train + {summary['preference_validation']} validation "
           f"(best of {summary.get('tutor_candidates', 1)} tutor replies) |"] if pairs else []),
        "",
        *([f"The `preference` config holds {pairs} pairs `{{\"prompt\", \"chosen\", \"rejected\", \"metadata\"}}` in TRL's conversational "
           "preference format: for the same student turn, a tutor reply the filter accepted and one it rejected "
           "(`metadata.rejected_reasons` says why), split like the conversations.", ""] if pairs else []),
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

# Labels for people where the plain words of a key would read badly; every other key is shown as its
# words ("no_guiding_question" -> "No guiding question") with the key itself beside it.
LABELS = {
    "documents": "Documents converted",
    "documents_failed": "Documents that failed to convert",
    "chunks_dropped": "Chunks dropped as noise",
    "chunk_tokens": "Tokens in the chunks",
    "generated": "Conversations generated",
    "generation_failed": "Rows that failed in generation",
    "generation_stopped_early": "Generation stopped early by",
    "target_examples": "Target of accepted conversations",
    "max_requests": "Request budget",
    "generation_seconds": "Generation time (s)",
    "accepted": "Accepted by the filter",
    "rejected": "Rejected by the filter",
    "retention": "Acceptance rate",
    "train": "Train records",
    "validation": "Validation records",
    "model": "Generator model",
    "flow_id": "sdg_hub flow",
    "sections": "Sections of the course",
    "sections_generated": "Sections generated from",
    "sections_without_accepted_count": "Sections with no accepted conversation",
    "mistake_identification": "Mistake identification",
}
_JUDGE_LOW = "judge_low_"
UNLIMITED_WHEN_ZERO = {"target_examples", "max_requests"}  # 0: the run had no such stop
COLORS = {"blue": "#3b6ea5", "red": "#b5533c", "teal": "#3b8c8c", "green": "#5b8c5a", "purple": "#7a5ba5", "grey": "#888888"}
# Tile colours of the coverage map: not generated from, generated but nothing accepted, and the
# lightest and darkest green of the acceptance scale.
TILE_IDLE, TILE_NONE, TILE_LOW, TILE_HIGH = "#e3e3e3", "#c8412f", (198, 228, 196), (38, 115, 52)
MAX_OPEN_SECTIONS = 60
_SCORES = ("1", "2", "3", "4", "5")  # the judge's scale (summary.SCORE_RANGE)
ROLES = {"user": "Student", "assistant": "Tutor", "system": "System"}


def label(key: str) -> str:
    """The words a person reads for a snake_case key."""
    if key in LABELS:
        return LABELS[key]
    if key.startswith(_JUDGE_LOW):
        return f"Judge: low {label(key[len(_JUDGE_LOW):]).lower()} score"
    words = key.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _is_key(text: str) -> bool:
    return bool(text) and text.replace("_", "").isalnum() and text == text.lower() and " " not in text


def _keyed(key: str, capitalize: bool = True) -> str:
    """HTML: the label of a snake_case ``key``, with the key in small code text (and as the tooltip).
    A one-word key is only capitalized (unless ``capitalize`` is off: values among free text)."""
    if not _is_key(key):
        return html.escape(key)
    if "_" not in key:
        return html.escape(label(key) if capitalize else key)
    return f'<span title="{html.escape(key)}">{html.escape(label(key))}</span> <code>{html.escape(key)}</code>'


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "x"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _svg_text(x: float, y: float, text: str, limit: int = 200, anchor: str = "start", title: str = "") -> str:
    """An SVG label clipped to ``limit`` characters; the full text (or ``title``) is its tooltip."""
    shown = _clip(text, limit)
    tip = title or (text if shown != text else "")
    inner = html.escape(shown) + (f"<title>{html.escape(tip)}</title>" if tip else "")
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{inner}</text>'


def _bars(title: str, data: dict[str, float], figure_id: str, color: str = COLORS["blue"], *, readable: bool = False,
          unit: str = "", color_of: Callable[[str], str] | None = None) -> str:
    """A horizontal bar chart as inline SVG; ``readable`` shows keys as words (the key as tooltip),
    ``color_of`` picks a bar's colour from its key."""
    rows = list(data.items()) or [("(none)", 0)]
    width, bar_height = 560, 20
    height = len(rows) * (bar_height + 6) + 10
    top = max((v for _, v in rows), default=0) or 1
    shown_labels = [label(key) if readable and _is_key(key) else str(key) for key, _ in rows]
    # room for the longest label (about 7 px a character at 12 px), up to 40 characters
    label_width = min(250, 16 + 7 * max(len(text) for text in shown_labels))
    parts = [
        f'<figure id="{figure_id}"><figcaption>{html.escape(title)}</figcaption>',
        f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">',
    ]
    for index, ((key, value), shown) in enumerate(zip(rows, shown_labels)):
        y = 5 + index * (bar_height + 6)
        length = (width - label_width - 70) * value / top
        parts.append(_svg_text(label_width - 8, y + 14, shown, 40, "end", key if shown != key else ""))
        parts.append(f'<rect class="bar" x="{label_width}" y="{y}" width="{length:.1f}" height="{bar_height}" fill="{color_of(key) if color_of else color}" '
                     f'data-key="{html.escape(str(key))}" data-label="{html.escape(shown)}" data-value="{value}"/>')
        parts.append(f'<text x="{label_width + length + 6:.1f}" y="{y + 14}">{_number(value)}{unit}</text>')
    parts.append("</svg></figure>")
    return "\n".join(parts)


def _number(value: float) -> str:
    """A count as it is, a measurement (seconds) to a sensible precision."""
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"


def _percent(accepted: int, generated: int) -> int:
    return round(100 * accepted / generated) if generated else 0


def report_data(summary: dict, stats: dict) -> dict:
    """The figures' data, also embedded in the page as JSON; keys are the runs' own (snake_case) keys."""
    failed = summary.get("generation_failed_by_kind") or {}
    funnel = {"Rows attempted": summary["generated"] + summary.get("generation_failed", 0), "Conversations generated": summary["generated"]}
    funnel.update({f"Failed: {kind.replace('_', ' ')}": count for kind, count in failed.items()})
    funnel.update({"Passed the filter": summary["accepted"], "Exported": summary["train"] + summary["validation"]})
    data = {
        "funnel": funnel,  # one unit: conversations (rows of chunk x sample)
        "drop_reasons": dict(summary["rejected_by_reason"]),
        "student_turn_tokens": stats["student_turn_tokens"],
        "tutor_turn_tokens": stats["tutor_turn_tokens"],
        "records_per_source": stats["records_per_source"],
        "acceptance_by_source": {source: _percent(c["accepted"], c["generated"]) for source, c in summary.get("acceptance_by_source", {}).items()},
        "acceptance_by_section": summary.get("acceptance_by_section", []),
        "acceptance_by_diversity": summary.get("acceptance_by_diversity", {}),
        "stage_seconds": summary.get("stage_seconds", {}),
    }
    if _judge_ran(summary):
        data["judge_scores"] = summary.get("judge_scores", {})
    return data


def _judge_ran(summary: dict) -> bool:
    return bool(summary.get("judge_stats") or summary.get("judge_scores"))


def _marked(text: str, detail: str) -> str:
    """``text`` escaped, with the passage the reason quotes (the first "..." in it) marked."""
    quoted = next((q for q in detail.split('"')[1::2] if len(q) > 3), "")
    escaped = html.escape(text)
    snippet = html.escape(quoted.rstrip(".… ").strip())
    return escaped.replace(snippet, f"<mark>{snippet}</mark>", 1) if snippet and snippet in escaped else escaped


def _rejected_examples(summary: dict) -> str:
    parts = []
    examples_by_code = summary.get("rejected_examples", {})
    # the most frequent reasons first, as in the chart
    codes = [code for code in summary["rejected_by_reason"] if code in examples_by_code]
    for code in codes + [code for code in examples_by_code if code not in codes]:
        examples = examples_by_code[code]
        parts.append(f"<h3>{_keyed(code)} <span class='count'>{summary['rejected_by_reason'].get(code, 0)} rejected</span></h3>")
        for e in examples:
            parts.append(f"<div class='example rejected'><p><b>Student</b>: {html.escape(e['student'])}</p>"
                         f"<p><b>Tutor</b>: {_marked(e['tutor'], e['detail'])}</p><p class='why'>why: {html.escape(e['detail'])}</p></div>")
    return "".join(parts) or "<p>No conversation was rejected.</p>"


# --- coverage of the course: one tile per section, and a table of every section ---------------------


def _tile_color(generated: int, accepted: int) -> str:
    if not generated:
        return TILE_IDLE
    if not accepted:
        return TILE_NONE
    share = accepted / generated
    return "#" + "".join(f"{round(low + (high - low) * share):02x}" for low, high in zip(TILE_LOW, TILE_HIGH))


def _coverage_map(sections: list[dict]) -> str:
    """Per source document a row of tiles, one per section in the course's order, coloured by acceptance."""
    width, label_width, tile, gap = 1000, 230, 16, 3
    per_line = (width - label_width) // (tile + gap)
    by_source: dict[str, list[dict]] = {}
    for section in sections:
        by_source.setdefault(section["source"], []).append(section)
    parts, y = [], 4
    for source, rows in by_source.items():
        parts.append(_svg_text(label_width - 10, y + 12, source, 34, "end"))
        for index, s in enumerate(rows):
            x = label_width + (index % per_line) * (tile + gap)
            top = y + (index // per_line) * (tile + gap)
            tip = f"{s['section']}: {s['accepted']} of {s['generated']} accepted" if s["generated"] else f"{s['section']}: not generated from"
            parts.append(f'<rect class="tile" x="{x}" y="{top}" width="{tile}" height="{tile}" rx="2" fill="{_tile_color(s["generated"], s["accepted"])}" '
                         f'data-generated="{s["generated"]}" data-accepted="{s["accepted"]}"><title>{html.escape(source)}: {html.escape(tip)}</title></rect>')
        y += ((len(rows) - 1) // per_line + 1) * (tile + gap) + 8
    legend = [("none accepted", TILE_NONE), ("some accepted", _tile_color(2, 1)), ("all accepted", _tile_color(1, 1)), ("not generated from", TILE_IDLE)]
    for index, (name, color) in enumerate(legend):
        x = label_width + index * 170
        parts.append(f'<rect x="{x}" y="{y + 4}" width="12" height="12" rx="2" fill="{color}"/>')
        parts.append(_svg_text(x + 18, y + 14, name))
    return (f'<figure id="coverage-map"><figcaption>Sections of the course, one tile each (hover for the heading)</figcaption>'
            f'<svg width="{width}" height="{y + 24}" role="img" aria-label="coverage map">{"".join(parts)}</svg></figure>')


def _coverage_table(sections: list[dict]) -> str:
    rows = []
    for s in sections:
        if not s["generated"]:
            kind, note = "idle", "not generated from"
        elif not s["accepted"]:
            kind, note = "none", "none accepted"
        else:
            kind, note = "some", f"{_percent(s['accepted'], s['generated'])}%"
        rows.append(f"<tr class='{kind}'><td>{html.escape(s['source'])}</td><td>{html.escape(s['section'])}</td>"
                    f"<td class='num'>{s['generated']}</td><td class='num'>{s['accepted']}</td><td>{note}</td></tr>")
    # A long course folds its table away; the map above already shows where the gaps are.
    return (f"<details id='coverage-table'{' open' if len(sections) <= MAX_OPEN_SECTIONS else ''}><summary>Every section ({len(sections)})</summary>"
            "<table class='sections'><tr><th>Document</th><th>Section</th><th class='num'>Generated</th><th class='num'>Accepted</th><th></th></tr>"
            + "".join(rows) + "</table></details>")


def _coverage(summary: dict) -> str:
    sections = summary.get("acceptance_by_section", [])
    generated = summary.get("sections_generated", 0)
    empty = summary.get("sections_without_accepted_count", len(summary.get("sections_without_accepted", [])))
    if not generated:
        return "<p>No section of the course was generated from.</p>"
    total = summary.get("sections", len(sections))
    idle = total - generated
    text = (f"<p>{generated - empty} of the {generated} sections generated from gave at least one accepted conversation"
            + (f"; <b class='none'>{empty} gave none</b>" if empty else "")
            + (f"; {idle} more were not generated from (the run's chunk limit or budget)" if idle > 0 else "") + ".</p>")
    more = f"<p>{total - len(sections)} more sections are not listed.</p>" if total > len(sections) else ""
    return text + (_coverage_map(sections) + _coverage_table(sections) + more if sections else "")


# --- the diversity axes against acceptance --------------------------------------------------------------


def _rate_cell(value: int, key: str) -> str:
    width = 120
    return (f'<svg width="{width + 40}" height="14" role="img" aria-label="{value}%"><rect x="0" y="1" width="{width}" height="12" fill="#eee"/>'
            f'<rect class="bar" x="0" y="1" width="{width * value / 100:.1f}" height="12" fill="{COLORS["teal"]}" '
            f'data-key="{html.escape(key)}" data-label="{html.escape(key)}" data-value="{value}"/>'
            f'<text x="{width + 4}" y="12">{value}%</text></svg>')


def _diversity(summary: dict) -> str:
    axes = summary.get("acceptance_by_diversity") or {}
    if not axes:
        return "<p>The conversations carry no diversity columns (the flow has no diversity.yaml).</p>"
    figures = []
    for column, values in axes.items():
        rows = "".join(f"<tr><td>{_keyed(value, capitalize=False)}</td><td class='num'>{c['generated']}</td><td class='num'>{c['accepted']}</td>"
                       f"<td>{_rate_cell(_percent(c['accepted'], c['generated']), value)}</td></tr>" for value, c in values.items())
        figures.append(f"<figure id='diversity-{_slug(column)}' class='axis'><figcaption>{_keyed(column)}</figcaption>"
                       "<table><tr><th class='value'>Value</th><th class='num'>Generated</th><th class='num'>Accepted</th><th>Accepted, %</th></tr>"
                       f"{rows}</table></figure>")
    return f"<div class='axes'>{''.join(figures)}</div>"


# --- the judge's scores ---------------------------------------------------------------------------------------


def _score_histogram(dimension: str, counts: dict[str, dict[str, int]]) -> str:
    """Scores 1-5 of one judge dimension: accepted conversations, and on top those it rejected."""
    width, height, base, bar = 200, 150, 120, 26
    accepted, rejected = counts.get("accepted", {}), counts.get("rejected", {})
    top = max((accepted.get(s, 0) + rejected.get(s, 0) for s in _SCORES), default=0) or 1
    parts = [f'<line x1="10" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#999"/>']
    for index, score in enumerate(_SCORES):
        x = 14 + index * 36
        y = base
        for series, color, value in (("accepted", COLORS["blue"], accepted.get(score, 0)), ("rejected", COLORS["red"], rejected.get(score, 0))):
            length = (base - 22) * value / top
            y -= length
            parts.append(f'<rect class="bar" x="{x}" y="{y:.1f}" width="{bar}" height="{length:.1f}" fill="{color}" '
                         f'data-series="{series}" data-label="{score}" data-value="{value}"/>')
        total = accepted.get(score, 0) + rejected.get(score, 0)
        parts.append(f'<text x="{x + bar / 2}" y="{y - 4:.1f}" text-anchor="middle">{total or ""}</text>')
        parts.append(f'<text x="{x + bar / 2}" y="{base + 16}" text-anchor="middle">{score}</text>')
    return (f'<figure id="judge-{_slug(dimension)}" class="score"><figcaption>{_keyed(dimension)}</figcaption>'
            f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(label(dimension))} scores">{"".join(parts)}</svg></figure>')


def _judge(summary: dict) -> str:
    """The judge's section, or nothing when no judge ran."""
    if not _judge_ran(summary):
        return ""
    scores = summary.get("judge_scores") or {}
    stats = summary.get("judge_stats") or {}
    intro = (f"<p>The LLM judge scored {stats.get('judged', 0)} conversations ({stats.get('failures', 0)} could not be scored). "
             f"Blue: conversations that passed, <span class='red'>red</span>: rejected for a low score on that dimension "
             "(a rejected conversation keeps only the reason, so its other scores are not counted).</p>")
    if not scores:
        return "<h2 id='judge'>Judge scores</h2>" + intro + "<p>No conversation got a score.</p>"
    return "<h2 id='judge'>Judge scores</h2>" + intro + "<div class='scores'>" + "".join(
        _score_histogram(dimension, counts) for dimension, counts in scores.items()) + "</div>"


def _accepted_examples(stats: dict) -> str:
    blocks = []
    for example in stats["examples"]:
        turns = "".join(f"<p><b>{html.escape(ROLES.get(m['role'], m['role']))}</b>: {html.escape(m['content'])}</p>" for m in example["messages"])
        blocks.append(f"<div class='example'>{turns}</div>")
    return "".join(blocks) or "<p>No records were accepted.</p>"


def _counts_table(summary: dict) -> str:
    rows = []
    for key, value in summary.items():
        if isinstance(value, (dict, list)):
            continue
        if key == "retention":
            shown = f"{value:.0%}"
        elif key in UNLIMITED_WHEN_ZERO and value == 0:
            shown = "none"
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            shown = _number(value)
        else:
            shown = "—" if value is None or value == "" else str(value)
        rows.append(f"<tr><th>{_keyed(key)}</th><td>{html.escape(shown)}</td></tr>")
    return f"<table class='counts'>{''.join(rows)}</table>"


def _headline(summary: dict) -> str:
    cards = [
        (summary["generated"], "conversations generated"),
        (summary["accepted"], "passed the filter"),
        (f"{summary['retention']:.0%}", "acceptance rate"),
        (f"{summary['train']} + {summary['validation']}", "train + validation records"),
        *([(f"{summary['preference_train']} + {summary['preference_validation']}", "preference pairs (train + validation)")]
          if summary.get("preference_train") or summary.get("preference_validation") else []),
        (f"{summary.get('sections_generated', 0) - summary.get('sections_without_accepted_count', 0)} / {summary.get('sections_generated', 0)}",
         "sections with an accepted conversation"),
    ]
    return "<div class='cards'>" + "".join(f"<div class='card'><b>{html.escape(str(v))}</b><span>{html.escape(t)}</span></div>"
                                           for v, t in cards) + "</div>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1180px; padding: 0 1.5em; color: #222; line-height: 1.4; }
h1 { margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 2px solid #e5e5e5; padding-bottom: .2em; }
h3 { margin: 1.2em 0 .3em; font-size: 1.05em; } .count { font-weight: normal; color: #666; }
figure { margin: 1em 0 1.6em; } figcaption { font-weight: bold; margin-bottom: .4em; }
svg text { font-size: 12px; fill: #333; } code { font-size: 80%; color: #666; background: #f3f3f3; padding: 0 .3em; border-radius: 3px; }
table { border-collapse: collapse; } th, td { text-align: left; padding: 3px 10px; border-bottom: 1px solid #e5e5e5; vertical-align: top; }
td.num, th.num { text-align: right; }
.cards { display: flex; gap: 1em; flex-wrap: wrap; margin: 1em 0; }
.card { flex: 1 1 0; border: 1px solid #ddd; border-radius: 6px; padding: .6em 1em; min-width: 140px; }
.card b { display: block; font-size: 1.6em; } .card span { color: #555; font-size: 90%; }
.axes { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 0 2em; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 0 2em; }
.axis table { width: 100%; font-size: 92%; } .axis th.value { width: 48%; } .scores { display: flex; flex-wrap: wrap; gap: 0 1.2em; } .score { width: 200px; }
.score figcaption { min-height: 2.6em; } .score figcaption code { display: block; width: fit-content; margin-top: 2px; }
table.sections tr.none td { background: #fbe4df; } table.sections tr.none td:last-child { color: #a2321f; font-weight: bold; }
table.sections tr.idle td { color: #888; } b.none, .red { color: #a2321f; }
details summary { cursor: pointer; margin: .5em 0; font-weight: bold; }
.example { border-left: 3px solid #3b6ea5; padding-left: .8em; margin: .8em 0; }
.example.rejected { border-left-color: #b5533c; } .why { color: #555; font-size: 90%; } mark { background: #f7d9a8; }
"""


def _script_json(data: dict) -> str:
    """JSON that is safe inside <script> and still valid JSON: the browser does not unescape a script's
    text, so <, > and & are written as JSON's \\u escapes rather than as HTML entities."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def html_report(summary: dict, stats: dict) -> str:
    data = report_data(summary, stats)
    figures = [
        _bars("From rows to training records (conversations)", data["funnel"], "funnel",
              color_of=lambda key: COLORS["red"] if key.startswith("Failed") else COLORS["blue"]),
        _bars("Why conversations were rejected", data["drop_reasons"], "drop-reasons", COLORS["red"], readable=True),
        _bars("Accepted, % of generated, per source document", data["acceptance_by_source"], "acceptance-by-source", COLORS["teal"], unit="%"),
    ]
    dataset = [
        _bars("Student turn length (tokens)", data["student_turn_tokens"], "student-lengths", COLORS["green"]),
        _bars("Tutor turn length (tokens)", data["tutor_turn_tokens"], "tutor-lengths", COLORS["green"]),
        _bars("Records per source document", data["records_per_source"], "records-per-source", COLORS["purple"]),
        _bars("Wall time per stage (s)", data["stage_seconds"], "stage-seconds", COLORS["grey"], readable=True),
    ]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Socratic SDG report</title>
<style>{STYLE}</style></head>
<body>
<h1>Socratic SDG run</h1>
<p>{summary['train']} train + {summary['validation']} validation records from {summary['documents']} documents;
{summary['accepted']} of {summary['generated']} generated conversations passed the quality filter ({summary['retention']:.0%}).</p>
{_headline(summary)}
<h2 id="funnel-and-reasons">Funnel and drop reasons</h2>
<div class="grid2">{''.join(figures)}</div>
<h2 id="coverage">Coverage of the course</h2>{_coverage(summary)}
<h2 id="diversity">Diversity axes against acceptance</h2>{_diversity(summary)}
{_judge(summary)}
<h2 id="rejected">Rejected, and why</h2>{_rejected_examples(summary)}
<h2 id="dataset">The exported dataset</h2>
<div class="grid2">{''.join(dataset)}</div>
<h2 id="examples">Accepted examples</h2>{_accepted_examples(stats)}
<h2 id="counts">Counts</h2>{_counts_table(summary)}
<script type="application/json" id="report-data">{_script_json(data)}</script>
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
