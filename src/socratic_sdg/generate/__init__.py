"""Stage 3, generate: chunks.jsonl -> conversations.jsonl + failed.jsonl + generate_metrics.json through an sdg_hub flow.

Modules: ``options`` (GenerateOptions), ``rows`` (chunk x sample input rows, conversation records),
``stage`` (the run), ``runner`` (rows through the flow's blocks) over ``gateway`` (every request:
concurrency, retries, budgets) over ``transport`` (HTTP or litellm), ``checkpoint`` (resume),
``target`` (stop at N accepted), ``shards`` (fan-out merge), ``estimate`` (cost before a run),
``catalog`` (the packaged flows in ``flows/``).
"""

from .catalog import package_flows
from .errors import EndpointUnavailable, GenerateError, NothingGenerated
from .gateway import RequestPolicy
from .options import DEFAULT_FLOW_ID, DEFAULT_MAX_CHUNK_CHARS, DEFAULT_MAX_RETRY_AFTER, GenerateOptions, Shard, load_runtime_params, parse_columns
from .rows import PLANTED_MISTAKES, REJECTED_KINDS, check_chunks_file, chunk_problem, chunk_rows, iter_chunk_rows, to_conversation
from .stage import (
    GenerateResult, PRODUCER, SET_KIND, TEMP_CHECKPOINT, resolve_flow_path, run,
    write_nothing_generated
)
from .shards import merge

__all__ = [
    "RequestPolicy", "Shard",
    "EndpointUnavailable", "GenerateError", "NothingGenerated", "package_flows",
    "DEFAULT_FLOW_ID", "DEFAULT_MAX_CHUNK_CHARS", "DEFAULT_MAX_RETRY_AFTER", "GenerateOptions", "GenerateResult",
    "PLANTED_MISTAKES", "PRODUCER", "REJECTED_KINDS", "SET_KIND", "TEMP_CHECKPOINT", "check_chunks_file", "chunk_problem",
    "chunk_rows", "iter_chunk_rows", "load_runtime_params", "merge", "parse_columns", "resolve_flow_path", "run", "to_conversation",
    "write_nothing_generated"
]
