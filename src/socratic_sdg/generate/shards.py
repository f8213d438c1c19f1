"""Fan-out: merging the outputs of generation shards into the files one run would have written.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Sequence
from pathlib import Path


from .errors import GenerateError
from ..records import AtomicFileSet, check_complete, dumps, read_json, read_jsonl
from .. import artifacts
from .stage import GenerateResult, PRODUCER, SET_KIND, _write_metrics


# --- fan-out ----------------------------------------------------------------------------------

# How each run-wide metric of the shards combines: the slowest shard's time, the first shard's
# labels; everything else (counts, tokens, concurrency, failures by kind) adds up.
_SLOWEST = frozenset({"execution_time_seconds", "wall_time_seconds", "generation_seconds"})
_RECOMPUTED = frozenset({"requests_per_second", "mean_request_seconds", "rows_per_block_call", "checkpoint_dir", "stopped_early"})


def _combine_metrics(parts: Sequence[dict]) -> dict:
    combined: dict = {}
    for part in parts:
        for key, value in part.items():
            if key in _RECOMPUTED:
                continue
            if key in _SLOWEST:
                combined[key] = max(combined.get(key, 0.0), value)
            elif isinstance(value, dict):
                into = combined.setdefault(key, {})
                for k, v in value.items():
                    into[k] = into.get(k, 0) + v
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                combined[key] = combined.get(key, 0) + value
            else:
                combined.setdefault(key, value)
    seconds = combined.get("generation_seconds", 0.0)
    succeeded = sum(p.get("requests_succeeded", 0) for p in parts)
    combined["requests_per_second"] = round(combined.get("requests", 0) / seconds, 3) if seconds else 0.0
    combined["mean_request_seconds"] = (
        round(sum(p.get("mean_request_seconds", 0.0) * p.get("requests_succeeded", 0) for p in parts) / succeeded, 4) if succeeded else 0.0
    )
    combined["stopped_early"] = next((p["stopped_early"] for p in parts if p.get("stopped_early")), None)
    combined["checkpoint_dirs"] = [p["checkpoint_dir"] for p in parts if p.get("checkpoint_dir")]
    combined["num_shards"] = len(parts)
    return combined


def merge(shard_dirs: Sequence[str | os.PathLike[str]], output_dir: str | os.PathLike[str], chunks_path: str | os.PathLike[str]) -> GenerateResult:
    """Merge the outputs of generation shards into the files one run would have written.

    Records are put back in chunk order (the order of ``chunks_path``, then sample index), streamed
    through a k-way merge of the shards' files, so the ids and their order are the same whatever
    the number of shards.
    """
    if not shard_dirs:
        raise GenerateError("no generation shard to merge")
    positions: dict[str, int] = {}
    for position, chunk in enumerate(read_jsonl(chunks_path)):
        positions.setdefault(str(chunk.get("chunk_id")), position)
    last = len(positions)

    def order(record: dict) -> tuple[int, int]:
        where = record.get("metadata", record)  # conversations keep it in metadata, failed rows at the top
        return positions.get(str(where.get("chunk_id")), last), int(where.get("sample_index", 0))

    dirs = [Path(d) for d in shard_dirs]
    for folder in dirs:
        check_complete(folder)  # a shard whose writer was killed while replacing its files
    result = GenerateResult.from_metrics(_combine_metrics([read_json(d / artifacts.GENERATE_METRICS_FILE) for d in dirs]))
    with AtomicFileSet(output_dir, artifacts.GENERATE_OUTPUTS, kind=SET_KIND, producer=PRODUCER) as files:
        for name in (artifacts.CONVERSATIONS_FILE, artifacts.GENERATE_FAILED_FILE):
            seen: set[str] = set()
            for record in heapq.merge(*(read_jsonl(d / name) for d in dirs), key=order):
                key = record.get("id") or record.get("row_id")
                if key in seen:
                    continue
                seen.add(key)
                files[name].write(dumps(record) + "\n")
        _write_metrics(files[artifacts.GENERATE_METRICS_FILE], result.metrics())
    return result
