"""Stage 3, generate: chunks -> Socratic tutoring conversations through an sdg_hub flow.

The flow (one of this package's, by id, or any sdg_hub flow YAML) runs over micro-batches of rows so
that one failing request costs its batch a retry row by row, not the whole run: a row that still
fails is recorded in ``failed.jsonl`` with the reason and every input row ends up in exactly one of
``conversations.jsonl`` or ``failed.jsonl``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm fetches a cost map at import otherwise
# sdg_hub logs every block at INFO with large tables; this stage prints its own progress.
# Set LOG_LEVEL=INFO to see sdg_hub's block-by-block report again.
os.environ.setdefault("LOG_LEVEL", "WARNING")

from .endpoint import EndpointConfig, check as check_endpoint  # noqa: E402
from .records import content_id, read_jsonl, write_json, write_jsonl  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_FLOW_ID = "socratic-single-turn"


class GenerateError(RuntimeError):
    """A user-fixable problem with the generation stage as a whole."""


@dataclass(frozen=True)
class GenerateOptions:
    flow_id: str = DEFAULT_FLOW_ID
    flow_yaml_path: str | None = None  # wins over flow_id (e.g. a flow mounted from a ConfigMap)
    max_concurrency: int = 8
    conversations_per_chunk: int = 1
    max_chunks: int = 0  # 0 = all chunks; a small number makes a quick trial run
    batch_size: int = 16
    domain: str = "mathematics"
    num_retries: int = 3  # per request, by litellm, before the row is given up
    request_timeout: float = 120.0  # seconds per request
    check_endpoint: bool = True


def package_flows() -> dict[str, Path]:
    """This package's flows by their metadata id."""
    import yaml

    flows = {}
    root = resources.files("socratic_sdg") / "flows"
    for flow_yaml in sorted(Path(str(root)).glob("*/flow.yaml")):
        flow_id = yaml.safe_load(flow_yaml.read_text())["metadata"]["id"]
        flows[flow_id] = flow_yaml
    return flows


def resolve_flow_path(options: GenerateOptions) -> Path:
    if options.flow_yaml_path:
        path = Path(options.flow_yaml_path)
        if not path.is_file():
            raise GenerateError(f"flow YAML {path} not found; check --flow-yaml (or generate_flow_yaml_path)")
        return path
    ours = package_flows()
    if options.flow_id in ours:
        return ours[options.flow_id]
    from sdg_hub import FlowRegistry

    try:
        return Path(FlowRegistry.get_flow_path_safe(options.flow_id))
    except Exception:
        raise GenerateError(
            f"no flow with id {options.flow_id!r}; this package ships {', '.join(ours)}, "
            "and `socratic-sdg flows` lists sdg_hub's built-in ones"
        ) from None


def _load_flow(path: Path, endpoint: EndpointConfig, options: GenerateOptions):
    from sdg_hub import Flow

    flow = Flow.from_yaml(str(path))
    flow.set_model_config(
        model=endpoint.litellm_model,
        api_base=endpoint.api_base,
        api_key=endpoint.api_key,
        num_retries=options.num_retries,
        timeout=options.request_timeout,
    )
    return flow


def chunk_rows(chunks: list[dict], options: GenerateOptions) -> list[dict]:
    """One input row per (chunk, sample) with the columns flows commonly require."""
    rows = []
    for chunk in chunks:
        outline = " > ".join(chunk.get("headings") or []) or chunk.get("source", "")
        for sample in range(options.conversations_per_chunk):
            rows.append(
                {
                    "row_id": content_id(chunk["chunk_id"], sample),
                    "chunk_id": chunk["chunk_id"],
                    "doc_id": chunk.get("doc_id", ""),
                    "source": chunk.get("source", ""),
                    "sample_index": sample,
                    "document": chunk["text"],
                    "document_outline": outline,
                    "domain": options.domain,
                }
            )
    return rows


def _check_columns(flow, rows: list[dict]) -> None:
    required = list(getattr(flow.metadata.dataset_requirements, "required_columns", None) or [])
    missing = [c for c in required if rows and c not in rows[0]]
    if missing:
        raise GenerateError(
            f"the flow {flow.metadata.name!r} needs column(s) {', '.join(missing)} that chunks do not provide "
            "(chunks give document, document_outline, domain); pick another flow or add them to its YAML"
        )


def to_conversation(row: dict, flow_id: str, model: str) -> dict | None:
    """Map one flow output row to a ``{id, messages, metadata}`` record (None when it has no dialogue)."""
    student = row.get("student_message", row.get("question"))
    tutor = row.get("tutor_reply", row.get("response"))
    if isinstance(row.get("messages"), list):
        messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    elif isinstance(student, str) and isinstance(tutor, str):
        messages = [{"role": "user", "content": student.strip()}, {"role": "assistant", "content": tutor.strip()}]
    else:
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
    return {"id": content_id(flow_id, row["row_id"]), "messages": messages, "metadata": metadata}


def _reason(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or exc.__class__.__name__)[:300]


@dataclass
class GenerateResult:
    input_rows: int
    output_rows: int
    failed_rows: int
    execution_time_seconds: float
    flow_id: str
    model: str

    def metrics(self) -> dict:
        return {
            "input_rows": self.input_rows,
            "output_rows": self.output_rows,
            "failed_rows": self.failed_rows,
            "execution_time_seconds": round(self.execution_time_seconds, 3),
            "flow_id": self.flow_id,
            "model": self.model,
        }


def run(
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    options: GenerateOptions = GenerateOptions(),
    endpoint: EndpointConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> GenerateResult:
    """Generate conversations for the chunks in ``input_path`` (chunks.jsonl) into ``output_dir``."""
    import pandas as pd

    started = time.monotonic()
    endpoint = endpoint or EndpointConfig.from_env()
    if options.check_endpoint:
        check_endpoint(endpoint)
    flow_path = resolve_flow_path(options)
    flow = _load_flow(flow_path, endpoint, options)
    flow_id = flow.metadata.id or options.flow_id
    chunks = list(read_jsonl(input_path))
    if options.max_chunks:
        chunks = chunks[: options.max_chunks]
    rows = chunk_rows(chunks, options)
    _check_columns(flow, rows)

    conversations: list[dict] = []
    failed: list[dict] = []

    def generate_rows(batch: list[dict]) -> list[dict]:
        from sdg_hub.core.utils.error_handling import EmptyDatasetError

        try:
            out = flow.generate(pd.DataFrame(batch), max_concurrency=options.max_concurrency)
        except EmptyDatasetError:
            return []  # the flow's own filters dropped every row: not an error
        return out.to_dict(orient="records")

    def record_outputs(batch: list[dict], outputs: list[dict]) -> None:
        produced = set()
        for row in outputs:
            conversation = to_conversation(row, flow_id, endpoint.model)
            if conversation is None:
                continue
            produced.add(row["row_id"])
            conversations.append(conversation)
        for row in batch:
            if row["row_id"] not in produced:
                failed.append({"row_id": row["row_id"], "chunk_id": row["chunk_id"], "reason": "the flow produced no conversation for this row"})

    for start in range(0, len(rows), options.batch_size):
        batch = rows[start : start + options.batch_size]
        try:
            record_outputs(batch, generate_rows(batch))
        except Exception as exc:
            # One request failing fails sdg_hub's whole generate(): retry the batch row by row so
            # only the rows that really fail are lost.
            log.warning("batch %d failed (%s); retrying its rows one by one", start // options.batch_size, _reason(exc))
            for row in batch:
                try:
                    record_outputs([row], generate_rows([row]))
                except Exception as row_exc:
                    failed.append({"row_id": row["row_id"], "chunk_id": row["chunk_id"], "error": row_exc.__class__.__name__, "reason": _reason(row_exc)})
        if progress:
            done = min(start + options.batch_size, len(rows))
            progress(f"[generate {done}/{len(rows)}] {len(conversations)} conversations, {len(failed)} failed, {time.monotonic() - started:.0f}s")

    out = Path(output_dir)
    write_jsonl(out / "conversations.jsonl", conversations)
    write_jsonl(out / "failed.jsonl", failed)
    result = GenerateResult(
        input_rows=len(rows),
        output_rows=len(conversations),
        failed_rows=len(failed),
        execution_time_seconds=time.monotonic() - started,
        flow_id=flow_id,
        model=endpoint.model,
    )
    write_json(out / "generate_metrics.json", result.metrics())
    return result
