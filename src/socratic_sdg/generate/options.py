"""The generation stage's options: GenerateOptions (holding the RequestPolicy of its requests and the
Shard it runs), and the parsing of its structured parameters (runtime_params, columns)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path


from ..filtering.options import FilterOptions
from ..options import Shard, group, option
from .errors import GenerateError
from .gateway import RequestPolicy


DEFAULT_FLOW_ID = "socratic-single-turn"
DEFAULT_MAX_CHUNK_CHARS = 20_000  # ~5,000 tokens: far above what `socratic-sdg chunk` makes (512 tokens by default)
DEFAULT_MAX_RETRY_AFTER = 60.0
MAX_TUTOR_CANDIDATES = 8


def load_runtime_params(value: str | dict | None) -> dict | None:
    """runtime_params from a CLI flag or pipeline parameter: a dict, JSON text, or a JSON/YAML file path.

    Shape: ``{block_name: {param: value}}``, e.g. ``{"generate_tutor_reply": {"max_tokens": 120}}``.
    """
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        text = value.strip()
        path = Path(text)
        if not text.startswith("{") and path.suffix in (".json", ".yaml", ".yml"):
            if not path.is_file():
                raise GenerateError(f"runtime params file {path} not found")
            text = path.read_text(encoding="utf-8")
        try:
            import yaml

            value = yaml.safe_load(text)  # JSON is YAML
        except Exception as exc:
            raise GenerateError(f"runtime params are not valid JSON/YAML ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items()):
        raise GenerateError('runtime params must map block names to parameters, e.g. {"generate_tutor_reply": {"max_tokens": 120}}')
    return value


def parse_columns(pairs: list[str] | dict | str | None) -> dict | None:
    """Constant input columns from ``NAME=VALUE`` strings (CLI ``--column``), a dict or a JSON object
    text (pipeline parameter, e.g. ``{"rubric": "..."}``)."""
    if not pairs:
        return None
    if isinstance(pairs, str):
        try:
            pairs = json.loads(pairs)
        except json.JSONDecodeError:
            raise GenerateError(f"columns {pairs[:80]!r} are not a JSON object like {{\"NAME\": \"VALUE\"}}") from None
        if not isinstance(pairs, dict):
            raise GenerateError('columns must be a JSON object like {"NAME": "VALUE"}')
    if isinstance(pairs, dict):
        return {str(k): str(v) for k, v in pairs.items()} or None
    columns = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise GenerateError(f"--column {pair!r} is not NAME=VALUE")
        columns[name.strip()] = value
    return columns


@dataclass(frozen=True)
class GenerateOptions:
    """What one generation run makes, and how it talks to the endpoint.

    Stop early: no new row starts once ``target_examples`` conversations passed the filter's
    deterministic layers and dedup (judged with ``target_filter``, None = the filter's defaults), or
    once ``requests.max_requests`` requests were sent (also a hard cap). 0 = no limit.
    """

    flow_id: str = option(DEFAULT_FLOW_ID, "sdg_hub flow id: socratic-single-turn, socratic-multi-turn, or any flow from the sdg_hub registry.")
    flow_yaml_path: str | None = option(None, "Path to a flow YAML (e.g. mounted from a ConfigMap); wins over flow_id.", flag="--flow-yaml")
    conversations_per_chunk: int = option(1, "Conversations generated per chunk.", changes_output="rows")
    max_chunks: int = option(0, "Generate from the first N chunks only (0 = all); small values make quick trial runs.", changes_output="rows")
    seed: int = option(42, "Seed of the student persona and request-type sampling, and of each request's sampling.")
    runtime_params: dict | None = option(
        None, 'sdg_hub runtime_params as JSON (or a .json/.yaml file on the command line), e.g. {"generate_tutor_reply": {"max_tokens": 300}}.',
        parse=lambda value: load_runtime_params(value))
    columns: dict | None = option(
        None, "JSON object of constant values for flow columns that chunks do not provide (on the command line: --column NAME=VALUE, repeatable).",
        flag="--column", metavar="NAME=VALUE", repeat=True, parse=lambda value: parse_columns(value))
    domain: str = option("mathematics", "The domain column some flows require.")
    max_chunk_chars: int = option(
        DEFAULT_MAX_CHUNK_CHARS, "Chunks with longer text are not sent to the endpoint; their rows are recorded as chunk_too_large (0 = no limit).",
        metavar="N", changes_output="rows")
    tutor_candidates: int = option(
        1, "Tutor replies generated per tutor turn (best of k): the student side and reference answer are generated once, "
        "the conversation goes on with the reply the filter's rules like best, and the rejected ones become preference pairs.",
        metavar="K")
    target_examples: int = option(
        0, "Stop starting new rows once this many conversations pass the quality filter's rules, leakage check and dedup "
        "(0 = generate from every chunk), for all shards together; the filter stage still has the last word.", changes_output=False)
    checkpoint_dir: str | None = option(
        None, "Folder where the run appends its progress; a rerun with the same folder and settings resumes.", changes_output=False, kfp=False)
    save_freq: int = option(16, "Fsync the checkpoint every N finished rows (and at least every second).", changes_output=False)
    requests: RequestPolicy = group(RequestPolicy, "Requests to the endpoint")
    shard: Shard = group(Shard, "Fan-out")
    # Not parameters: engine tuning and hooks for tests and callers.
    batch_size: int = 0  # most rows per call of a non-LLM block (rows ready at once are coalesced); 0 = no limit
    check_endpoint: bool = True
    stop_after_same_failures: int = 5  # the first N rows of a run all failing the same way stop it; 0 = never
    retry_failed: bool = True  # on resume, retry rows that failed for a transient reason
    target_filter: FilterOptions | None = None

    def __post_init__(self) -> None:
        if self.target_examples < 0:
            raise GenerateError("target_examples must be 0 (no limit) or positive")
        if not 1 <= self.tutor_candidates <= MAX_TUTOR_CANDIDATES:
            raise GenerateError(f"tutor_candidates must be between 1 and {MAX_TUTOR_CANDIDATES}, got {self.tutor_candidates}")
        if self.max_chunk_chars < 0:
            raise GenerateError(f"max_chunk_chars must be 0 (no limit) or positive, got {self.max_chunk_chars}")
        if self.stop_after_same_failures < 0:
            raise GenerateError(f"stop_after_same_failures must be 0 (never) or positive, got {self.stop_after_same_failures}")

    def for_shard(self, shard_index: int, num_shards: int) -> GenerateOptions:
        """The options of one of ``num_shards`` generation tasks: its share of the run-wide budgets.

        ``max_concurrency``, ``target_examples`` and ``max_requests`` are totals for the endpoint and
        the dataset; each shard gets an even share (the remainder to the first shards), so the shards
        together never send more requests at once than the endpoint is sized for.
        """
        def share(total: int, floor: int = 0) -> int:
            if not total:
                return 0
            return max(floor, total // num_shards + (1 if shard_index < total % num_shards else 0))

        return replace(
            self,
            shard=Shard(shard_index, num_shards),
            target_examples=share(self.target_examples, floor=1),
            requests=replace(self.requests, max_concurrency=share(self.requests.max_concurrency, floor=1),
                             max_requests=share(self.requests.max_requests, floor=1)),
        )


