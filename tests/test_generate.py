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
        student, tutor = conversation["messages"]
        assert (student["role"], tutor["role"]) == ("user", "assistant")
        assert student["content"].startswith(STUDENT) and tutor["content"] == TUTOR
        meta = conversation["metadata"]
        assert meta["reference_answer"] == REFERENCE
        assert meta["flow_id"] == "socratic-single-turn" and meta["model"] == "fake-model"
    assert len({c["messages"][0]["content"] for c in conversations}) == 10  # each from its own prompt
    assert {(c["metadata"]["chunk_id"], c["metadata"]["sample_index"]) for c in conversations} == {(f"chunk-{i}", k) for i in range(5) for k in range(2)}
    assert fake_llm.requests == 30  # three LLM calls per conversation
    metrics = json.loads((tmp_path / "out" / "generate_metrics.json").read_text())
    assert metrics["input_rows"] == 10 and metrics["output_rows"] == 10 and metrics["failed_rows"] == 0
    # accounting: every request, and the tokens the server reported in `usage`, counted by the client
    assert metrics["requests"] == metrics["requests_succeeded"] == 30 and metrics["retries"] == 0
    assert (metrics["prompt_tokens"], metrics["completion_tokens"]) == (fake_llm.prompt_tokens, fake_llm.completion_tokens)
    assert metrics["prompt_tokens"] > 0 and metrics["total_tokens"] == metrics["prompt_tokens"] + metrics["completion_tokens"]
    assert metrics["requests_per_second"] > 0 and metrics["wall_time_seconds"] > 0 and metrics["failures_by_kind"] == {}
    assert result.kfp_metrics()["requests"] == 30 and all(isinstance(v, (int, float)) for v in result.kfp_metrics().values())
    # the conversations of one chunk get different personas / request types (seeded)
    kinds = {c["metadata"]["chunk_id"]: set() for c in conversations}
    for conversation in conversations:
        kinds[conversation["metadata"]["chunk_id"]].add(conversation["metadata"]["diversity"]["request_type"])
    assert all(len(k) == 2 for k in kinds.values())
    # no checkpoint folder is left behind when none was asked for
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["conversations.jsonl", "failed.jsonl", "generate_metrics.json"]


def test_ids_are_stable_across_runs(fake_llm, tmp_path):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(3))
    generate.run(tmp_path / "chunks.jsonl", tmp_path / "a", generate.GenerateOptions(), _endpoint(fake_llm))
    generate.run(tmp_path / "chunks.jsonl", tmp_path / "b", generate.GenerateOptions(batch_size=1), _endpoint(fake_llm))
    ids = lambda d: [c["id"] for c in read_jsonl(tmp_path / d / "conversations.jsonl")]  # noqa: E731
    assert ids("a") == ids("b")


def test_a_failing_row_fails_alone_and_is_recorded_with_its_reason(fake_llm, tmp_path):
    fake_llm.fail_when["Section 2:"] = 500
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(4))
    options = generate.GenerateOptions(batch_size=4, num_retries=1, retry_backoff=0.01)
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(fake_llm))

    assert (result.output_rows, result.failed_rows) == (3, 1)
    failed = list(read_jsonl(tmp_path / "out" / "failed.jsonl"))
    assert [f["chunk_id"] for f in failed] == ["chunk-2"] and failed[0]["reason"]
    assert failed[0]["kind"] == "server_error" and "500" in failed[0]["reason"] and failed[0]["block"] == "generate_student_message"
    generated = {c["metadata"]["chunk_id"] for c in read_jsonl(tmp_path / "out" / "conversations.jsonl")}
    assert generated == {"chunk-0", "chunk-1", "chunk-3"}
    # 3 rows x 3 requests, and the failing row's first request tried twice (num_retries=1), nothing more
    assert fake_llm.requests == 9 + 2
    metrics = result.metrics()
    assert (metrics["retries"], metrics["failures_by_kind"], metrics["errors_by_kind"]) == (1, {"server_error": 1}, {"server_error": 2})
    assert metrics["rows_failed_by_kind"] == {"server_error": 1}


def test_max_chunks_limits_the_work(fake_llm, tmp_path):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(6))
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(max_chunks=2), _endpoint(fake_llm))
    assert result.input_rows == 2 and fake_llm.requests == 6


def test_the_endpoint_is_checked_before_any_request(tmp_path):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(2))
    with FakeOpenAI(models=["granite"]) as server:
        with pytest.raises(EndpointError, match="does not serve a model named 'fake-model'"):
            generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(), _endpoint(server))
        # vLLM reports max_model_len: a block asking for more tokens than the context is refused up front
        endpoint = EndpointConfig(api_base=server.api_base, model="granite")
        options = generate.GenerateOptions(runtime_params={"generate_tutor_reply": {"max_tokens": 9000}})
        with pytest.raises(generate.GenerateError, match=r"generate_tutor_reply.*max_tokens=9000.*context of 8192"):
            generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, endpoint)
        assert server.requests == 0 and not (tmp_path / "out" / "conversations.jsonl").exists()


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


def test_runtime_params_and_columns_from_strings(tmp_path):
    assert generate.load_runtime_params('{"generate_tutor_reply": {"max_tokens": 120}}') == {"generate_tutor_reply": {"max_tokens": 120}}
    assert generate.load_runtime_params("") is None and generate.load_runtime_params({}) is None
    (tmp_path / "params.yaml").write_text("generate_tutor_reply:\n  temperature: 0.3\n")
    assert generate.load_runtime_params(str(tmp_path / "params.yaml")) == {"generate_tutor_reply": {"temperature": 0.3}}
    with pytest.raises(generate.GenerateError, match="must map block names"):
        generate.load_runtime_params('{"max_tokens": 120}')
    with pytest.raises(generate.GenerateError, match="not found"):
        generate.load_runtime_params(str(tmp_path / "missing.json"))
    assert generate.parse_columns(["rubric=be kind", "level=a=b"]) == {"rubric": "be kind", "level": "a=b"}
    with pytest.raises(generate.GenerateError, match="not NAME=VALUE"):
        generate.parse_columns(["oops"])
    assert generate.parse_columns('{"rubric": "be kind"}') == {"rubric": "be kind"} and generate.parse_columns("") is None
    with pytest.raises(generate.GenerateError, match="JSON object"):
        generate.parse_columns("[1]")


def test_the_request_limiter_orders_by_stage_and_drains_least_advanced_first():
    import asyncio

    from socratic_sdg.generation_engine import PriorityLimiter

    async def main():
        limiter = PriorityLimiter(1)
        await limiter.acquire((1, 0))
        served = []

        async def want(priority):
            await limiter.acquire(priority)
            served.append(priority)
            limiter.release()

        waiters = [asyncio.create_task(want(p)) for p in [(1, 5), (3, 9), (2, 1), (3, 2)]]
        abandoned = asyncio.create_task(want((9, 0)))
        await asyncio.sleep(0)
        abandoned.cancel()
        limiter.release()
        await asyncio.gather(*waiters)
        first = list(served)

        served.clear()
        await limiter.acquire((1, 0))
        waiters = [asyncio.create_task(want(p)) for p in [(3, 0), (1, 7), (2, 0), (1, 3)]]
        await asyncio.sleep(0)
        limiter.drain()  # every row started: the least advanced rows go first now
        limiter.release()
        await asyncio.gather(*waiters)
        assert limiter.active == 0 and limiter.max_active == 1
        return first, list(served)

    first, drained = asyncio.run(main())
    assert first == [(3, 2), (3, 9), (2, 1), (1, 5)]  # later stages first, then input order
    assert drained == [(1, 3), (1, 7), (2, 0), (3, 0)]
