"""Input rows (chunk x sample, with the sampled diversity columns) and the conversation records made from the flow's output.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from pathlib import Path


from ..endpoint import redact
from .candidates import CANDIDATES_COLUMN
from .catalog import icl_defaults
from .errors import GenerateError
from ..records import content_id
from .. import artifacts
from .options import DEFAULT_MAX_CHUNK_CHARS, GenerateOptions


# Row failure kinds of chunks that are not sent at all (their rows are recorded, never generated).
REJECTED_KINDS = ("invalid_chunk", "chunk_too_large")
# --- input rows -------------------------------------------------------------------------------


def _sample_diversity(axes: dict[str, list], seed: int, chunk_id: str, sample: int) -> dict[str, str]:
    """The diversity columns of one conversation: for each axis, a seeded permutation of its options
    per chunk, indexed by the sample, so the conversations of one chunk differ as long as options last."""
    columns: dict[str, str] = {}
    for axis, options in axes.items():
        order = list(range(len(options)))
        random.Random(content_id(seed, chunk_id, axis)).shuffle(order)
        option = options[order[sample % len(order)]]
        if isinstance(option, dict):
            columns.update({str(k): str(v).strip() for k, v in option.items()})
        else:
            columns[axis] = str(option).strip()
    return columns


def _diversity_columns(axes: dict[str, list] | None) -> tuple[str, ...]:
    """The columns the diversity axes fill (recorded in each conversation's metadata)."""
    columns: list[str] = []
    for axis, options in (axes or {}).items():
        for option in options:
            for column in option.keys() if isinstance(option, dict) else [axis]:
                if str(column) not in columns:
                    columns.append(str(column))
    return tuple(columns)


def check_chunks_file(path: str | os.PathLike[str]) -> Path:
    """The chunks file, or a GenerateError saying in one sentence what is wrong with the path and what makes it."""
    path = Path(path)
    if path.is_dir():
        inside = path / artifacts.CHUNKS_FILE
        hint = f" (did you mean {inside}?)" if inside.is_file() else ""
        raise GenerateError(
            f"{path} is a folder, but --input takes the chunks.jsonl file that `socratic-sdg chunk --output FILE` writes{hint}"
        )
    if not path.is_file():
        raise GenerateError(f"chunks file {path} not found; make it with `socratic-sdg chunk --input CONVERTED_FOLDER --output {path}`")
    return path


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else type(value).__name__


def chunk_problem(chunk: dict, max_chars: int = DEFAULT_MAX_CHUNK_CHARS) -> tuple[str, str] | None:
    """(kind, reason) when a chunk cannot be generated from, None when it can.

    ``invalid_chunk``: ``chunk_id`` missing or not a string/integer, ``text`` missing, not a string or
    blank, ``headings`` not a list of strings, ``source``/``doc_id`` not strings. ``chunk_too_large``:
    text longer than ``max_chars`` characters (0 = no limit).
    """
    chunk_id = chunk.get("chunk_id")
    if "chunk_id" not in chunk:
        return "invalid_chunk", "the chunk has no chunk_id; every line of a chunks.jsonl from `socratic-sdg chunk` has one"
    if not (isinstance(chunk_id, str) and chunk_id.strip() or isinstance(chunk_id, int) and not isinstance(chunk_id, bool)):
        return "invalid_chunk", f"chunk_id is {_json_type(chunk_id) if chunk_id != '' else 'empty'}, not a non-empty string"
    if "text" not in chunk:
        return "invalid_chunk", "the chunk has no text field"
    text = chunk["text"]
    if not isinstance(text, str):
        return "invalid_chunk", f"text is {_json_type(text)}, not a string"
    if not text.strip():
        return "invalid_chunk", "text is empty"
    headings = chunk.get("headings")
    if headings is not None and not (isinstance(headings, list) and all(isinstance(h, str) for h in headings)):
        what = _json_type(headings) if not isinstance(headings, list) else "an array with items that are not strings"
        return "invalid_chunk", f"headings is {what}, not a list of strings"
    for name in ("source", "doc_id"):
        value = chunk.get(name)
        if value is not None and not isinstance(value, str):
            return "invalid_chunk", f"{name} is {_json_type(value)}, not a string"
    if max_chars and len(text) > max_chars:
        return "chunk_too_large", (
            f"text has {len(text):,} characters, more than max_chunk_chars={max_chars:,}; cut it smaller "
            "(`socratic-sdg chunk --max-tokens`) or raise --max-chunk-chars (pipeline: generate_max_chunk_chars)"
        )
    return None


def iter_chunk_rows(
    chunks: Iterable[dict],
    options: GenerateOptions,
    diversity: dict[str, list] | None = None,
    required_columns: list[str] | tuple[str, ...] = (),
) -> Iterator[dict]:
    """One input row per (chunk, sample) with the columns the flow needs, streamed.

    Only the first ``options.max_chunks`` chunks (0 = all) and, of those, this shard's (positions
    ``shard_index + k * num_shards``). Filled from the chunk (``document``/``text``,
    ``document_outline``, ``domain``), the flow's diversity axes, the bundled ICL example for
    ``icl_*`` columns the flow requires, and ``options.columns`` (which win). Duplicate chunks (same
    id and text) are kept once.

    A chunk that :func:`chunk_problem` rejects yields its rows without the flow's columns and with
    ``rejected: {"kind", "reason"}``: they are recorded as failed, never sent.
    """
    icl = icl_defaults() if any(c.startswith("icl_") for c in required_columns) else {}
    constants = {k: str(v) for k, v in (options.columns or {}).items()}
    seen = set()
    for position, chunk in enumerate(chunks):
        if options.max_chunks and position >= options.max_chunks:
            break
        if not options.shard.takes(position):
            continue
        problem = chunk_problem(chunk, options.max_chunk_chars)
        if problem is not None:
            kind, reason = problem
            chunk_id = chunk.get("chunk_id")
            text = chunk.get("text")
            if isinstance(text, str) and len(text) > 4096:  # no copy of a huge text to hash: its length and ends identify it
                text = [len(text), text[:2048], text[-2048:]]
            for sample in range(options.conversations_per_chunk):
                row_id = content_id(chunk_id, sample, text)
                if row_id in seen:
                    continue
                seen.add(row_id)
                yield {
                    "row_id": row_id,
                    "chunk_id": chunk_id,
                    "sample_index": sample,
                    "rejected": {"kind": kind, "reason": f"record {position + 1} of the chunks file: {reason}" if kind == "invalid_chunk" else reason},
                }
            continue
        text = chunk["text"]
        outline = " > ".join(chunk.get("headings") or []) or chunk.get("source") or ""
        for sample in range(options.conversations_per_chunk):
            row_id = content_id(chunk["chunk_id"], sample, text)
            if row_id in seen:
                continue
            seen.add(row_id)
            row = {
                "row_id": row_id,
                "chunk_id": chunk["chunk_id"],
                "doc_id": chunk.get("doc_id") or "",
                "source": chunk.get("source") or "",
                "sample_index": sample,
                "document": text,
                "text": text,
                "document_outline": outline,
                "domain": options.domain,
            }
            row.update({k: v for k, v in icl.items() if k in required_columns})
            if diversity:
                row.update(_sample_diversity(diversity, options.seed, chunk["chunk_id"], sample))
            row.update(constants)
            yield row


def chunk_rows(chunks: Iterable[dict], options: GenerateOptions, diversity: dict[str, list] | None = None, required_columns=()) -> list[dict]:
    """:func:`iter_chunk_rows` as a list."""
    return list(iter_chunk_rows(chunks, options, diversity, required_columns))


def _check_columns(flow, rows: list[dict], required: list[str]) -> None:
    rows = [r for r in rows if "rejected" not in r]
    missing = [c for c in required if rows and c not in rows[0]]
    if missing:
        raise GenerateError(
            f"the flow {flow.metadata.id or flow.metadata.name!r} needs column(s) {', '.join(missing)} that the generation "
            "stage cannot fill from chunks (it fills document, text, document_outline, domain, icl_* and the flow's "
            "diversity axes); give each a value with --column NAME=VALUE (pipeline: generate_columns) or pick another flow"
        )


def _check_max_tokens(steps, model_entry: dict) -> None:
    limit = model_entry.get("max_model_len")
    if not isinstance(limit, int):
        return
    for step in steps:
        if step.mode != "llm":
            continue
        wanted = step.kwargs.get("max_completion_tokens") or step.kwargs.get("max_tokens")
        if isinstance(wanted, int) and wanted > limit:  # vLLM refuses that (HTTP 400); it lowers smaller values itself
            raise GenerateError(
                f"block {step.name!r} asks for max_tokens={wanted} but the model serves a context of {limit} tokens "
                f"(max_model_len), so every request would be refused; lower it with runtime_params "
                f'{{"{step.name}": {{"max_tokens": {max(16, limit // 4)}}}}}'
            )


# --- output records ---------------------------------------------------------------------------

_METADATA_SKIP = {"row_id", "chunk_id", "doc_id", "source", "sample_index", "document", "text", "document_outline", "domain"}


def _turns(row: dict) -> list[dict] | None:
    if isinstance(row.get("messages"), list):
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    if isinstance(row.get("student_turn_1"), str):
        messages, turn = [], 1
        while isinstance(row.get(f"student_turn_{turn}"), str):
            messages.append({"role": "user", "content": row[f"student_turn_{turn}"].strip()})
            tutor = row.get(f"tutor_turn_{turn}")
            if not isinstance(tutor, str):
                return None
            messages.append({"role": "assistant", "content": tutor.strip()})
            turn += 1
        return messages
    student = row.get("student_message", row.get("question"))
    tutor = row.get("tutor_reply", row.get("response"))
    if isinstance(student, str) and isinstance(tutor, str):
        return [{"role": "user", "content": student.strip()}, {"role": "assistant", "content": tutor.strip()}]
    return None


# Flows that plant a wrong student attempt, and the student turn it is in (socratic-multi-turn writes
# student_turn_2 from prompts/student_attempt.yaml). The filter's praises_wrong_answer check reads
# metadata.wrong_student_turns: a tutor who calls that attempt right teaches the opposite of tutoring.
PLANTED_MISTAKES = {"socratic-multi-turn": 2}


def to_conversation(row: dict, flow_id: str, model: str, index: int = 0, diversity_columns: tuple[str, ...] = ()) -> dict | None:
    """Map one flow output row to a ``{id, messages, metadata}`` record (None when it has no dialogue).

    ``index`` numbers the conversations one input row produced (flows that expand rows make several).
    """
    messages = _turns(row)
    if not messages or any(not isinstance(m["content"], str) or not m["content"].strip() for m in messages):
        return None
    metadata = {
        "chunk_id": row["chunk_id"],
        "doc_id": row.get("doc_id", ""),
        "source": row.get("source", ""),
        "sample_index": int(row.get("sample_index", 0)),
        "model": model,
        "flow_id": flow_id,
    }
    if isinstance(row.get("reference_answer"), str):
        metadata["reference_answer"] = row["reference_answer"].strip()
    turn = PLANTED_MISTAKES.get(flow_id)
    if turn is not None and isinstance(row.get(f"student_turn_{turn}"), str) and len(messages) > 2 * (turn - 1):
        metadata["wrong_student_turns"] = [2 * (turn - 1)]  # message index of that student turn
    if isinstance(row.get(CANDIDATES_COLUMN), list):
        metadata[CANDIDATES_COLUMN] = row[CANDIDATES_COLUMN]  # best of k: each chosen turn's rejected candidates
    persona = {c: row[c] for c in diversity_columns if isinstance(row.get(c), str)}
    if persona:
        metadata["diversity"] = persona
    return {"id": content_id(flow_id, row["row_id"], index), "messages": messages, "metadata": metadata}


def _row_entry(row: dict, outputs: list[dict], failure: tuple[str, str, str] | None, truncated: list[str], flow_id: str, model: str, diversity_columns) -> dict:
    conversations = []
    for index, output in enumerate(outputs):
        conversation = to_conversation(output, flow_id, model, index, diversity_columns)
        if conversation is not None:
            if truncated:
                conversation["metadata"]["truncated"] = truncated
            conversations.append(conversation)
    base = {"row_id": row["row_id"], "chunk_id": row["chunk_id"], "sample_index": row["sample_index"]}
    if conversations:
        entry = {**base, "status": "done", "conversations": conversations}
        if failure:
            entry["partial_failure"] = {"kind": failure[0], "reason": failure[1]}
        return entry
    if failure is None:
        failure = ("no_conversation", "the flow produced no conversation (missing or empty turns) for this row", "")
    kind, reason, block = failure
    return {**base, "status": "failed", "kind": kind, "reason": redact(reason), "block": block}
