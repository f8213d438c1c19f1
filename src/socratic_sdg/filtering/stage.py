"""The filter stage over files: conversations.jsonl -> accepted.jsonl, rejected.jsonl, filter_metrics.json.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from .. import artifacts
from ..records import AtomicFileSet, JsonlError, check_complete, dumps, iter_json_lines, parse_json_line, remove_stale_temps, require_input
from ..results import PathLike, Progress
from .checks import evaluate_conversation, _reason
from .options import FilterOptions, FilterResult, INPUT_MADE_BY, INVALID_JSON, LAYERS, PRODUCER
from .rules import Rules, load_rules


# --------------------------------------------------------------------------------------------
# Run over files
# --------------------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """Yield (line number, decoded text or None if not UTF-8, best-effort text) per non-blank line.

    Read as bytes so one badly encoded line becomes one rejected record instead of aborting the
    run; read_jsonl would raise on the first bad line, which is right for trusted intermediate
    files but not for a gate whose job is to sort good from bad.
    """
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark from an editor, not content
            try:
                text: str | None = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            yield line_no, text, raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _parse_line(line_no: int, text: str | None) -> tuple[dict[str, Any] | None, str]:
    """The record on a line, or None and why it is not one."""
    if text is None:
        return None, f"line {line_no} is not valid UTF-8"
    value, problem = parse_json_line(text)  # also a line nested too deeply to parse, or a 5000-digit number
    if problem is not None:
        return None, f"line {line_no} is not valid JSON ({problem})"
    if not isinstance(value, dict):
        return None, f"line {line_no} is a JSON {type(value).__name__}, not an object"
    return value, ""


def _annotated(record: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``record`` with ``metadata[key] = value``; the input record is left untouched."""
    out = dict(record)
    metadata = record.get("metadata")
    if metadata is None:
        out["metadata"] = {key: value}
    elif isinstance(metadata, dict):
        out["metadata"] = {**metadata, key: value}
    else:  # keep the unusable original rather than lose it
        out["metadata"] = {"original_metadata": metadata, key: value}
    return out


def _blocks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    block: list[Any] = []
    for item in items:
        block.append(item)
        if len(block) >= size:
            yield block
            block = []
    if block:
        yield block


def load_passages(path: str | os.PathLike[str]) -> dict[str, str]:
    """chunk_id -> text from a chunks.jsonl (for the judge's grounding score)."""
    passages: dict[str, str] = {}
    path = require_input(path, "chunks file", "the chunks.jsonl that `socratic-sdg chunk` (the pipeline's chunk step) writes")
    for _, chunk in iter_json_lines(path):  # a line that is not UTF-8 or not JSON: an error naming file and line
        if isinstance(chunk, dict) and isinstance(chunk.get("chunk_id"), str) and isinstance(chunk.get("text"), str):
            passages[chunk["chunk_id"]] = chunk["text"]
    return passages


@dataclass
class _Entry:
    line_no: int
    record: dict[str, Any] | None
    raw: str
    reasons: list[dict[str, str]]
    quality: dict[str, Any]

    @property
    def name(self) -> str:
        rid = self.record.get("id") if self.record is not None else None
        return str(rid) if isinstance(rid, (str, int)) and str(rid) else f"line {self.line_no}"


def run(input_path: PathLike, output_dir: PathLike, opts: FilterOptions | None = None, progress: Progress | None = None) -> FilterResult:
    """Split ``input_path`` (JSONL dialogues) into accepted and rejected files under ``output_dir``.

    Streams in blocks of ``opts.block_size`` lines. Blank lines are not records and are skipped;
    every other line lands in exactly one output, in input order. The three outputs are one
    :class:`~.records.AtomicFileSet`: written through temp files and switched together, so a failed
    run (a broken rules file, an unusable judge endpoint) never leaves half a dataset behind, and a
    run killed between the switches leaves the set marked incomplete, which the export refuses.
    Temp files a killed earlier run left in ``output_dir`` are removed first. An input in which no
    line is a JSON record (a PDF, a text file) is an error, not a result: a JsonlError naming it.
    """
    opts = opts or FilterOptions()
    started = time.perf_counter()
    rules = load_rules(opts.rules_path)  # fail on a bad rules file before touching any output
    if opts.language and opts.language not in rules.languages:
        raise ValueError(f"language {opts.language!r} has no word list in the rules file "
                         f"(available: {', '.join(sorted(rules.languages)) or 'none'}).")
    input_path = require_input(input_path, "filter input", INPUT_MADE_BY)
    check_complete(input_path)  # a conversations.jsonl whose writer was killed half way through its set
    passages = load_passages(opts.chunks_path) if (opts.judge_enabled and opts.chunks_path) else {}
    judge = None
    if opts.judge_enabled:
        from .judge import Judge

        judge = Judge(opts.judge)
    dedup = None
    if opts.dedup is not None:
        from .dedup import Deduplicator

        dedup = Deduplicator(opts.dedup)

    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir, artifacts.FILTER_OUTPUTS)
    layer_names = opts.layers()

    total = accepted = parsed = 0
    first_problem = ""
    reason_counts: Counter[str] = Counter()
    layer_counts: Counter[str] = Counter()
    try:
        with AtomicFileSet(out_dir, artifacts.FILTER_OUTPUTS, kind="filter", producer=PRODUCER) as outputs:
            accepted_out, rejected_out = outputs[artifacts.ACCEPTED_FILE], outputs[artifacts.REJECTED_FILE]
            for block in _blocks(_lines(input_path), opts.block_size):
                entries: list[_Entry] = []
                for line_no, text, best_effort in block:
                    record, problem = _parse_line(line_no, text)
                    if record is None:
                        first_problem = first_problem or problem
                        entries.append(_Entry(line_no, None, best_effort, [_reason(INVALID_JSON, "format", problem)], {}))
                        continue
                    parsed += 1
                    reasons, quality = evaluate_conversation(record, rules, opts)
                    quality["layers"] = layer_names
                    entries.append(_Entry(line_no, record, "", reasons, quality))

                if judge is not None:
                    pending = [e for e in entries if e.record is not None and not e.reasons]
                    if pending:
                        outcomes = judge.judge_many([
                            (e.record, passages.get(str((e.record.get("metadata") or {}).get("chunk_id", ""))))
                            for e in pending
                        ])
                        for entry, outcome in zip(pending, outcomes):
                            entry.reasons.extend(outcome.reasons)
                            entry.quality["judge"] = outcome.quality

                if dedup is not None:
                    from .dedup import DedupCandidate

                    pending = [e for e in entries if e.record is not None and not e.reasons]
                    if pending:
                        results = dedup.check_block([DedupCandidate(e.name, e.record["messages"]) for e in pending])
                        for entry, (reason, dedup_quality) in zip(pending, results):
                            if reason is not None:
                                entry.reasons.append(reason)
                            entry.quality["dedup"] = dedup_quality

                for entry in entries:
                    total += 1
                    if entry.reasons:
                        reason_counts.update({reason["code"] for reason in entry.reasons})
                        layer_counts.update({reason.get("layer", "format") for reason in entry.reasons})
                        if entry.record is None:
                            out = {"raw": entry.raw, "metadata": {"drop_reasons": entry.reasons}}
                        else:
                            out = _annotated(entry.record, "drop_reasons", entry.reasons)
                        rejected_out.write(dumps(out) + "\n")
                    else:
                        accepted += 1
                        accepted_out.write(dumps(_annotated(entry.record, "quality", entry.quality)) + "\n")
                if progress is not None:
                    progress(f"[filter] {total} records, {accepted} accepted")
            if total and not parsed:  # before the switch: the outputs of an earlier run stay
                raise _not_records(input_path, total, first_problem)
            result, metrics = _result(out_dir, total, accepted, reason_counts, layer_counts, layer_names,
                                      rules, judge, dedup, started)
            json.dump(metrics, outputs[artifacts.FILTER_METRICS_FILE], ensure_ascii=False, indent=2, sort_keys=True)
            outputs[artifacts.FILTER_METRICS_FILE].write("\n")
    finally:
        if judge is not None:
            judge.close()
    return result


def _not_records(path: Path, lines: int, first_problem: str) -> JsonlError:
    """The error for an input in which no line is a JSON record."""
    with path.open("rb") as handle:
        head = handle.read(5)
    if head == b"%PDF-":
        return JsonlError(f"{path} is a PDF, not JSONL: the filter reads {INPUT_MADE_BY}, so convert, chunk and "
                          "generate from the PDF first")
    return JsonlError(f"{path} has no JSON record on any of its {lines} non-blank lines ({first_problem}), so it is not "
                      f"the filter's input: pass {INPUT_MADE_BY}")


def _result(out_dir: Path, total: int, accepted: int, reason_counts: Counter[str], layer_counts: Counter[str],
            layer_names: list[str], rules: Rules, judge: Any, dedup: Any, started: float) -> tuple[FilterResult, dict[str, Any]]:
    """The run's FilterResult and the content of filter_metrics.json."""
    accepted_path, rejected_path, metrics_path = (out_dir / name for name in artifacts.FILTER_OUTPUTS)
    seconds = time.perf_counter() - started
    result = FilterResult(
        total=total,
        accepted=accepted,
        rejected=total - accepted,
        reasons=dict(sorted(reason_counts.items())),
        accepted_path=str(accepted_path),
        rejected_path=str(rejected_path),
        metrics_path=str(metrics_path),
        layers={layer: layer_counts.get(layer, 0) for layer in LAYERS},
        seconds=round(seconds, 3),
    )
    metrics: dict[str, Any] = {
        "total": result.total,
        "accepted": result.accepted,
        "rejected": result.rejected,
        "reasons": result.reasons,
        "acceptance_rate": result.acceptance_rate,
        "rejected_by_layer": result.layers,
        "layers": layer_names,
        "seconds": result.seconds,
        "records_per_second": round(total / seconds, 1) if seconds > 0 and total else 0.0,
        "rules": rules.source,
    }
    if judge is not None:
        metrics["judge"] = dict(judge.stats)
    if dedup is not None:
        metrics["dedup"] = dedup.metrics()
    return result, metrics
