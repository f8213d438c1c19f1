"""The generation stage end to end against a real model server (llama.cpp + SmolLM2-135M, local).

Kept tiny (the model writes ~40 tokens/s here): one chunk, short completions via runtime_params.
"""

import json

import pytest

from socratic_sdg import generate
from socratic_sdg.endpoint import EndpointConfig
from socratic_sdg.local_llm import MODEL_NAME, LocalModelServer, find_model
from socratic_sdg.records import read_jsonl, write_jsonl
from socratic_sdg.generate import RequestPolicy

CHUNK = {
    "chunk_id": "e2e-0",
    "doc_id": "calc",
    "source": "calc.pdf",
    "text": "To solve a linear equation such as 3x - 5 = 10, add 5 to both sides to get 3x = 15, then divide both sides by 3 to get x = 5.",
    "headings": ["Linear equations"],
}


def _short(flow_id: str, tokens: int) -> dict:
    from sdg_hub import Flow

    flow = Flow.from_yaml(str(generate.package_flows()[flow_id]))
    return {b.block_name: {"max_tokens": tokens} for b in flow.blocks if b.__class__.__name__ == "LLMChatBlock"}


@pytest.fixture(scope="module")
def local_server():
    try:
        find_model()
    except Exception as exc:  # the GGUF comes with `make`; without it there is nothing to test against
        pytest.skip(f"local model not available: {exc}")
    with LocalModelServer() as server:
        yield server


@pytest.mark.e2e
@pytest.mark.parametrize("flow_id, rows, tokens", [("socratic-single-turn", 2, 40), ("socratic-multi-turn", 1, 24)])
def test_generation_against_a_real_local_model_server(tmp_path, local_server, flow_id, rows, tokens):
    write_jsonl(tmp_path / "chunks.jsonl", [CHUNK])
    endpoint = EndpointConfig(api_base=local_server.api_base, model=MODEL_NAME)
    options = generate.GenerateOptions(flow_id=flow_id, conversations_per_chunk=rows, runtime_params=_short(flow_id, tokens),
        checkpoint_dir=str(tmp_path / "ckpt"), requests=RequestPolicy(max_concurrency=4, request_timeout=120))
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, endpoint)
    metrics = json.loads((tmp_path / "out" / "generate_metrics.json").read_text())

    conversations = list(read_jsonl(tmp_path / "out" / "conversations.jsonl"))
    failed = list(read_jsonl(tmp_path / "out" / "failed.jsonl"))
    assert len(conversations) + len(failed) == rows == result.input_rows  # every row accounted for
    assert len({c["id"] for c in conversations}) == len(conversations)
    turns = 2 if flow_id == "socratic-single-turn" else 6
    for conversation in conversations:
        assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"] * (turns // 2)
        assert all(m["content"].strip() for m in conversation["messages"])
        assert conversation["metadata"]["model"] == MODEL_NAME and "reference_answer" in conversation["metadata"]
    # the tokens come from the real server's usage fields
    assert metrics["prompt_tokens"] > 50 * metrics["requests_succeeded"] > 0
    assert 0 < metrics["completion_tokens"] <= tokens * metrics["requests_succeeded"]
    assert metrics["requests"] == metrics["requests_succeeded"] + sum(metrics["errors_by_kind"].values())

    # resuming the finished run asks the server for nothing
    again = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, endpoint)
    assert again.metrics()["requests"] == 0 and again.output_rows == result.output_rows


@pytest.mark.e2e
def test_best_of_three_against_the_real_server(tmp_path, local_server):
    """llama.cpp answers the chat API's n: one request per tutor turn brings three different replies,
    the kept one and the rejected ones with the filter's reasons, and the export writes valid pairs."""
    from socratic_sdg import export, filtering
    from socratic_sdg.export.validate import validate

    write_jsonl(tmp_path / "chunks.jsonl", [CHUNK])
    endpoint = EndpointConfig(api_base=local_server.api_base, model=MODEL_NAME)
    options = generate.GenerateOptions(conversations_per_chunk=2, tutor_candidates=3, runtime_params=_short("socratic-single-turn", 40),
                                       requests=RequestPolicy(max_concurrency=4, request_timeout=120))
    generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, endpoint)
    metrics = json.loads((tmp_path / "out" / "generate_metrics.json").read_text())
    assert metrics["tutor_candidates"]["n_supported"] is True
    assert metrics["requests"] == 2 * 3  # student, reference, and one request for the three tutor replies
    assert metrics["tutor_candidates"]["candidates"] == 2 * 3
    for conversation in read_jsonl(tmp_path / "out" / "conversations.jsonl"):
        (turn,) = conversation["metadata"]["tutor_candidates"]
        kept = conversation["messages"][-1]["content"]
        assert turn["candidates"] == 3 and all(r["reasons"] for r in turn["rejected"])
        # the two not kept are recorded when rejected; when none passed, both are
        assert len(turn["rejected"]) <= 2 and (turn["accepted"] or len(turn["rejected"]) == 2)
        assert len({kept, *(r["content"] for r in turn["rejected"])}) > 1  # sampled, not one reply three times
    filtering.run(tmp_path / "out" / "conversations.jsonl", tmp_path / "filtered")
    result = export.run(tmp_path / "filtered" / "accepted.jsonl", tmp_path / "dataset", export.ExportOptions(validation_ratio=0))
    problems = [p for p in validate(tmp_path / "dataset").problems if "no rows" not in p]  # the tiny model may have no accepted reply
    assert not problems
    if result.train:  # accepted conversations carry their candidates: the pairs folder is written
        assert result.preference is not None
