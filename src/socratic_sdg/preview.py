"""A look before a run: generate a few conversations from chunks spread over the course, filter them,
and show each one with the filter's verdict, its drop reasons and the workshop keyword filter's
verdict on the same reply. The CLI prints it (``socratic-sdg preview``); a notebook shows the
result's ``to_markdown()`` or its ``rows()`` as a table.

Without ``LLM_API_BASE`` the embedded local model answers (its slots and a slow machine's timeout).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import artifacts, filtering, generate
from .endpoint import EndpointConfig
from .local_llm import REQUEST_TIMEOUT_SECONDS
from .evaluate import workshop_verdict
from .generate.estimate import spread_indices
from .records import read_jsonl, write_jsonl
from .results import PathLike, Progress, StageResult

DEFAULT_ROWS = 3


@dataclass
class PreviewItem:
    conversation: dict
    accepted: bool
    reasons: list[dict]  # the filter's drop reasons (code, layer, detail); empty when accepted
    workshop: str | None  # the workshop keyword filter's drop reason for the last tutor reply, None = keep


@dataclass
class PreviewResult(StageResult):
    items: list[PreviewItem] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # rows that gave no conversation (kind, reason)
    model: str = ""
    flow_id: str = ""

    def metrics(self) -> dict:
        return {"conversations": len(self.items), "accepted": sum(i.accepted for i in self.items), "failed": len(self.failed)}

    def summary_lines(self) -> list[str]:
        lines = []
        for number, item in enumerate(self.items, start=1):
            verdict = "ACCEPTED" if item.accepted else "REJECTED: " + ", ".join(sorted({r["code"] for r in item.reasons}))
            lines.append(f"--- {number}. {verdict}   (workshop filter: {'keep' if item.workshop is None else 'drop, ' + item.workshop})")
            for message in item.conversation["messages"]:
                who = {"user": "student", "assistant": "tutor"}.get(message["role"], message["role"])
                lines.append(f"  {who:>7}: {' '.join(message['content'].split())}")
            lines += [f"          why: {r['detail']}" for r in item.reasons]
        lines += [f"--- no conversation from chunk {f.get('chunk_id')}: {f.get('kind')}: {f.get('reason')}" for f in self.failed]
        m = self.metrics()
        lines.append(f"{m['accepted']} of {m['conversations']} accepted ({self.model}, flow {self.flow_id}); {m['failed']} rows failed")
        return lines

    def rows(self) -> list[dict]:
        """One flat row per conversation, for a table (pandas.DataFrame(result.rows()))."""
        return [{"student": item.conversation["messages"][0]["content"], "tutor": item.conversation["messages"][-1]["content"],
                 "accepted": item.accepted, "drop_reasons": ", ".join(sorted({r["code"] for r in item.reasons})),
                 "why": " | ".join(r["detail"] for r in item.reasons), "workshop_filter": item.workshop or "keep"}
                for item in self.items]

    def to_markdown(self) -> str:
        return "```\n" + "\n".join(self.summary_lines()) + "\n```\n"


@contextlib.contextmanager
def endpoint_or_embedded(model_path: str | None = None, progress: Progress | None = None) -> Iterator[tuple[EndpointConfig, int | None]]:
    """The endpoint of LLM_API_BASE / LLM_MODEL / LLM_API_KEY, or the embedded local model while the
    block runs; with the embedded model, also its number of slots (the requests it serves at once)."""
    if os.environ.get("LLM_API_BASE"):
        yield EndpointConfig.from_env(), None
        return
    from .local_llm import MODEL_NAME, LocalModelServer

    if progress:
        progress("LLM_API_BASE is not set: starting the embedded local model server (llama.cpp + SmolLM2-135M)")
    server = LocalModelServer(model_path).start()
    try:
        yield EndpointConfig(api_base=server.api_base, model=MODEL_NAME), server.parallel
    finally:
        server.stop()


def preview(chunks_path: PathLike, rows: int = DEFAULT_ROWS, options: generate.GenerateOptions = generate.GenerateOptions(),
            filter_options: filtering.FilterOptions | None = None, endpoint: EndpointConfig | None = None,
            progress: Progress | None = None, model_path: str | None = None) -> PreviewResult:
    """Generate ``rows`` conversations from chunks spread over ``chunks_path`` and filter them (dedup
    off: a preview is too small for duplicates to mean anything)."""
    chunks_path = generate.check_chunks_file(chunks_path)
    usable = [chunk for chunk in read_jsonl(chunks_path) if generate.chunk_problem(chunk, options.max_chunk_chars) is None]
    picked = [usable[i] for i in spread_indices(len(usable), rows, options.seed)]
    filter_options = dataclasses.replace(filter_options or filtering.FilterOptions(), dedup=None)
    with tempfile.TemporaryDirectory(prefix="socratic-sdg-preview-") as work, contextlib.ExitStack() as stack:
        work = Path(work)
        write_jsonl(work / artifacts.CHUNKS_FILE, picked)
        if endpoint is None:
            endpoint, slots = stack.enter_context(endpoint_or_embedded(model_path, progress))
            if slots:  # the embedded model: no more at once than its slots, and patience
                options = dataclasses.replace(options, requests=dataclasses.replace(
                    options.requests, max_concurrency=slots, request_timeout=REQUEST_TIMEOUT_SECONDS))
        options = dataclasses.replace(options, conversations_per_chunk=1, max_chunks=0, checkpoint_dir=None, target_examples=0)
        try:
            generated = generate.run(work / artifacts.CHUNKS_FILE, work / "generated", options, endpoint, progress)
        except generate.NothingGenerated as nothing:
            generated = nothing.result
        filtered = filtering.run(work / "generated" / artifacts.CONVERSATIONS_FILE, work / "filtered", filter_options)
        items = [PreviewItem(record, True, [], None) for record in read_jsonl(filtered.accepted_path)]
        items += [PreviewItem(record, False, record["metadata"].get("drop_reasons", []), None) for record in read_jsonl(filtered.rejected_path)]
        for item in items:
            item.conversation["metadata"].pop("drop_reasons", None)
            replies = [m["content"] for m in item.conversation["messages"] if m.get("role") == "assistant"]
            item.workshop = workshop_verdict(replies[-1]) if replies else "no tutor reply"
        failed = list(read_jsonl(work / "generated" / artifacts.GENERATE_FAILED_FILE))
    order = {chunk["chunk_id"]: position for position, chunk in enumerate(picked)}
    items.sort(key=lambda item: order.get(item.conversation["metadata"].get("chunk_id"), len(order)))
    return PreviewResult(items=items, failed=failed, model=generated.model, flow_id=generated.flow_id)
