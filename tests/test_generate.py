import json

import pytest
from socratic_sdg.testing.fake_openai import REFERENCE, STUDENT, TUTOR, FakeOpenAI

from socratic_sdg import generate
from socratic_sdg.endpoint import EndpointConfig, EndpointError, check
from socratic_sdg.records import read_jsonl, write_jsonl
from socratic_sdg.generate import RequestPolicy
from socratic_sdg.options import from_params
from functools import partial
from socratic_sdg.testing.generation import gradient_chunks, fake_endpoint






_chunks = partial(gradient_chunks, pages=[1])
_endpoint = partial(fake_endpoint, api_key="secret-key")

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
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".socratic-sdg-set-generate.json",
        "conversations.jsonl",
        "failed.jsonl",
        "generate_metrics.json",
    ]


def test_ids_are_stable_across_runs(fake_llm, tmp_path):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(3))
    generate.run(tmp_path / "chunks.jsonl", tmp_path / "a", generate.GenerateOptions(), _endpoint(fake_llm))
    generate.run(tmp_path / "chunks.jsonl", tmp_path / "b", generate.GenerateOptions(batch_size=1), _endpoint(fake_llm))
    ids = lambda d: [c["id"] for c in read_jsonl(tmp_path / d / "conversations.jsonl")]  # noqa: E731
    assert ids("a") == ids("b")


def test_a_failing_row_fails_alone_and_is_recorded_with_its_reason(fake_llm, tmp_path):
    fake_llm.fail_when["Section 2:"] = 500
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(4))
    options = generate.GenerateOptions(batch_size=4, requests=RequestPolicy(num_retries=1, retry_backoff_seconds=0.01))
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

    from socratic_sdg.generate.gateway import PriorityLimiter

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


# --------------------------------------------------------------------------------------------
# Inputs: what a chunk must be, what a chunks file must be (issue 13)
# --------------------------------------------------------------------------------------------


def test_chunks_with_fields_of_the_wrong_type_are_recorded_not_generated_from(fake_llm, tmp_path):
    good = _chunks(1)[0]
    bad = [
        {**good, "chunk_id": "null-text", "text": None},
        {**good, "chunk_id": "dict-text", "text": {"body": "Section 9"}},
        {**good, "chunk_id": "string-headings", "headings": "notes"},
        {**good, "chunk_id": "blank-text", "text": "  \n"},
        {**good, "chunk_id": "number-source", "source": 3},
        {key: value for key, value in good.items() if key != "chunk_id"},
    ]
    write_jsonl(tmp_path / "chunks.jsonl", [good, *bad])
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(), _endpoint(fake_llm))

    assert (result.input_rows, result.output_rows, result.failed_rows) == (7, 1, 6)
    assert fake_llm.requests == 3  # only the good chunk was sent
    assert not any("None" in p or "n > o > t > e > s" in p or "body" in p for p in fake_llm.prompts)
    failed = list(read_jsonl(tmp_path / "out" / "failed.jsonl"))
    assert [f["chunk_id"] for f in failed] == ["null-text", "dict-text", "string-headings", "blank-text", "number-source", None]
    assert {f["kind"] for f in failed} == {"invalid_chunk"}
    reasons = [f["reason"] for f in failed]
    assert "record 2 of the chunks file: text is null, not a string" in reasons[0]
    assert "text is an object, not a string" in reasons[1]
    assert "headings is a string, not a list of strings" in reasons[2]
    assert "text is empty" in reasons[3] and "source is a number" in reasons[4] and "no chunk_id" in reasons[5]
    metrics = result.metrics()
    assert metrics["rows_rejected"] == 6 and metrics["rows_failed_by_kind"] == {"invalid_chunk": 6}


def test_an_oversized_chunk_is_rejected_early_under_a_settable_limit(fake_llm, tmp_path):
    chunks = _chunks(2)
    chunks[1]["text"] = "Section 1: " + "x" * 30_000
    write_jsonl(tmp_path / "chunks.jsonl", chunks)
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(), _endpoint(fake_llm))
    assert (result.output_rows, result.failed_rows) == (1, 1) and fake_llm.requests == 3
    assert max(len(p) for p in fake_llm.prompts) < 10_000  # the 30,000 characters were never sent
    [failed] = read_jsonl(tmp_path / "out" / "failed.jsonl")
    assert failed["kind"] == "chunk_too_large" and failed["chunk_id"] == "chunk-1"
    assert "30,011 characters, more than max_chunk_chars=20,000" in failed["reason"] and "--max-chunk-chars" in failed["reason"]

    fake_llm.reset_stats()
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out2", generate.GenerateOptions(max_chunk_chars=40_000), _endpoint(fake_llm))
    assert (result.output_rows, result.failed_rows) == (2, 0) and fake_llm.requests == 6
    assert generate.GenerateOptions(max_chunk_chars=0).max_chunk_chars == 0  # 0 = no limit
    with pytest.raises(generate.GenerateError, match="max_chunk_chars must be 0"):
        generate.GenerateOptions(max_chunk_chars=-1)


def test_an_input_that_is_not_a_usable_chunks_file_is_refused_in_one_sentence(fake_llm, tmp_path):
    run = lambda path, **kw: generate.run(path, tmp_path / "out", from_params(generate.GenerateOptions, kw), _endpoint(fake_llm))  # noqa: E731
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(generate.GenerateError, match=r"empty.jsonl holds no chunks; make it with `socratic-sdg chunk`"):
        run(tmp_path / "empty.jsonl")
    write_jsonl(tmp_path / "bad.jsonl", [{"chunk_id": "a", "text": None}, {"chunk_id": "b", "text": 3}])
    with pytest.raises(generate.GenerateError, match=r"holds no usable chunk: all 2 were rejected \(first, record 1: text is null.*socratic-sdg chunk"):
        run(tmp_path / "bad.jsonl")
    (tmp_path / "folder").mkdir()
    write_jsonl(tmp_path / "folder" / "chunks.jsonl", _chunks(1))
    with pytest.raises(
        generate.GenerateError,
        match=r"folder is a folder, but --input takes the chunks.jsonl file that `socratic-sdg chunk.*did you mean .*folder/chunks.jsonl",
    ):
        run(tmp_path / "folder")
    with pytest.raises(generate.GenerateError, match=r"chunks file .*missing.jsonl not found; make it with `socratic-sdg chunk"):
        run(tmp_path / "missing.jsonl")
    assert fake_llm.requests == 0 and not (tmp_path / "out").exists()

    # a shard whose share is empty while the file has usable chunks is not an error: it writes empty outputs
    write_jsonl(tmp_path / "one.jsonl", _chunks(1))
    result = run(tmp_path / "one.jsonl", shard_index=1, num_shards=2)
    assert (result.input_rows, result.output_rows) == (0, 0)


def test_the_cli_says_what_is_wrong_with_the_input_in_one_line_and_exits_2(fake_llm, tmp_path, monkeypatch, capsys):
    from socratic_sdg import cli

    monkeypatch.setenv("LLM_API_BASE", fake_llm.api_base)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "folder").mkdir()
    for given in (tmp_path / "folder", tmp_path / "missing.jsonl", tmp_path / "empty.jsonl"):
        assert cli.main(["generate", "--input", str(given), "--output-dir", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("socratic-sdg generate: error: ") and "socratic-sdg chunk" in err
        assert "Errno" not in err and "Traceback" not in err
    args = cli.build_parser().parse_args(["generate", "--input", "c", "--output-dir", "o", "--max-chunk-chars", "500", "--max-retry-after", "5"])
    options = cli._generate_options(args)
    assert (options.max_chunk_chars, options.requests.max_retry_after) == (500, 5.0)


def test_secrets_are_redacted_from_error_texts(monkeypatch):
    from socratic_sdg.endpoint import redact, register_secret

    register_secret("plain-Key-4711-xyz")
    monkeypatch.setenv("LLM_API_KEY", "env-key-0815-abc")
    assert redact("refused plain-Key-4711-xyz and env-key-0815-abc") == "refused *** and ***"
    assert redact("as url: plain-Key-4711-xyz%2F, json: env-key-0815-abc") == "as url: ***%2F, json: ***"
    assert redact('{"Authorization": "Bearer abcdefgh1234", "Host": "h"}') == '{"Authorization": "Bearer ***", "Host": "h"}'
    assert redact("{'authorization': 'Basic dXNlcjpwYXNz'}") == "{'authorization': 'Basic ***'}"
    assert redact("Authorization: Bearer zz.yy-xx\r\nHost: h") == "Authorization: Bearer ***\r\nHost: h"
    assert redact("x-api-key: abcd1234 and api_key='abcd1234'") == "x-api-key: *** and api_key='***'"
    assert redact("key sk-proj-abcdefghijk rejected") == "key sk-*** rejected"
    assert redact("http://user:pa55@proxy:3128/v1") == "http://***@proxy:3128/v1"
    for harmless in ("maximum context length is 4096 tokens; token limit", "the endpoint refused the API key (HTTP 401); check LLM_API_KEY"):
        assert redact(harmless) == harmless
