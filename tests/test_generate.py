import json

import pytest
from fake_openai import REFERENCE, STUDENT, TUTOR, FakeOpenAI

from socratic_sdg import generate
from socratic_sdg.endpoint import EndpointConfig, EndpointError, check
from socratic_sdg.records import read_jsonl, write_jsonl


def _chunks(n: int) -> list[dict]:
    return [
        {"chunk_id": f"chunk-{i}", "doc_id": "doc", "source": "calc.pdf", "text": f"Section {i}: the gradient of f(x, y) = x^2 + y^2 is (2x, 2y).", "headings": ["Gradients"], "pages": [1]}
        for i in range(n)
    ]


def _endpoint(server: FakeOpenAI) -> EndpointConfig:
    return EndpointConfig(api_base=server.api_base, model="fake-model", api_key="secret-key")


def test_conversations_from_chunks_through_the_socratic_flow(fake_llm, tmp_path):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(5))
    options = generate.GenerateOptions(conversations_per_chunk=2, batch_size=4)
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(fake_llm))

    assert (result.input_rows, result.output_rows, result.failed_rows) == (10, 10, 0)
    conversations = list(read_jsonl(tmp_path / "out" / "conversations.jsonl"))
    assert len({c["id"] for c in conversations}) == 10
    for conversation in conversations:
        assert conversation["messages"] == [{"role": "user", "content": STUDENT}, {"role": "assistant", "content": TUTOR}]
        meta = conversation["metadata"]
        assert meta["reference_answer"] == REFERENCE
        assert meta["flow_id"] == "socratic-single-turn" and meta["model"] == "fake-model"
    assert {(c["metadata"]["chunk_id"], c["metadata"]["sample_index"]) for c in conversations} == {(f"chunk-{i}", k) for i in range(5) for k in range(2)}
    assert fake_llm.requests == 30  # three LLM calls per conversation
    metrics = json.loads((tmp_path / "out" / "generate_metrics.json").read_text())
    assert metrics["input_rows"] == 10 and metrics["output_rows"] == 10 and metrics["failed_rows"] == 0


def test_ids_are_stable_across_runs(fake_llm, tmp_path):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(3))
    generate.run(tmp_path / "chunks.jsonl", tmp_path / "a", generate.GenerateOptions(), _endpoint(fake_llm))
    generate.run(tmp_path / "chunks.jsonl", tmp_path / "b", generate.GenerateOptions(batch_size=1), _endpoint(fake_llm))
    ids = lambda d: [c["id"] for c in read_jsonl(tmp_path / d / "conversations.jsonl")]  # noqa: E731
    assert ids("a") == ids("b")


def test_a_failing_row_fails_alone_and_is_recorded_with_its_reason(fake_llm, tmp_path):
    fake_llm.fail_when["Section 2:"] = 500
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(4))
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(batch_size=4, num_retries=1), _endpoint(fake_llm))

    assert (result.output_rows, result.failed_rows) == (3, 1)
    failed = list(read_jsonl(tmp_path / "out" / "failed.jsonl"))
    assert [f["chunk_id"] for f in failed] == ["chunk-2"] and failed[0]["reason"]
    generated = {c["metadata"]["chunk_id"] for c in read_jsonl(tmp_path / "out" / "conversations.jsonl")}
    assert generated == {"chunk-0", "chunk-1", "chunk-3"}


def test_max_chunks_limits_the_work(fake_llm, tmp_path):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(6))
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(max_chunks=2), _endpoint(fake_llm))
    assert result.input_rows == 2 and fake_llm.requests == 6


def test_endpoint_check_errors_name_the_input_and_the_fix():
    with FakeOpenAI(models=["granite"], api_key="right") as server:
        with pytest.raises(EndpointError, match=r"does not serve a model named 'llama'.*serves: granite.*LLM_MODEL"):
            check(EndpointConfig(api_base=server.api_base, model="llama", api_key="right"))
        with pytest.raises(EndpointError, match="refused the API key.*LLM_API_KEY"):
            check(EndpointConfig(api_base=server.api_base, model="granite", api_key="wrong"))
        assert check(EndpointConfig(api_base=server.api_base, model="granite", api_key="right")) == ["granite"]
    with pytest.raises(EndpointError, match="cannot reach the model endpoint at http://127.0.0.1:9/v1.*LLM_API_BASE"):
        check(EndpointConfig(api_base="http://127.0.0.1:9/v1", model="m"))


def test_endpoint_config_from_environment(monkeypatch):
    monkeypatch.delenv("LLM_API_BASE", raising=False)
    with pytest.raises(EndpointError, match="set LLM_API_BASE"):
        EndpointConfig.from_env()
    monkeypatch.setenv("LLM_API_BASE", "http://vllm:8000/v1/")
    monkeypatch.setenv("LLM_MODEL", "granite")
    monkeypatch.setenv("LLM_API_KEY", "sk-very-secret")
    config = EndpointConfig.from_env()
    assert (config.api_base, config.model, config.api_key) == ("http://vllm:8000/v1", "granite", "sk-very-secret")
    assert "sk-very-secret" not in repr(config)
    assert EndpointConfig.from_env(model="other").model == "other"
    monkeypatch.setenv("LLM_API_BASE", "vllm:8000")
    with pytest.raises(EndpointError, match="not an http"):
        EndpointConfig.from_env()


def test_unknown_flow_and_missing_flow_yaml(fake_llm, tmp_path):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(1))
    with pytest.raises(generate.GenerateError, match="no flow with id 'nope'.*socratic-single-turn"):
        generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(flow_id="nope"), _endpoint(fake_llm))
    with pytest.raises(generate.GenerateError, match="missing.yaml not found"):
        generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(flow_yaml_path=str(tmp_path / "missing.yaml")), _endpoint(fake_llm))


def test_package_flows_have_explicit_ids():
    flows = generate.package_flows()
    assert "socratic-single-turn" in flows and flows["socratic-single-turn"].is_file()
