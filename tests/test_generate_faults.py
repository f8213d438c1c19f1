"""Generation against a flaky endpoint: every input row ends up generated or failed with a reason,
exactly once; retries are bounded; the request accounting matches what the server saw."""

from dataclasses import replace

import json
import time

import pytest
from socratic_sdg.testing.fake_openai import STUDENT, TUTOR, FakeOpenAI, Fault

from socratic_sdg import generate
from socratic_sdg.endpoint import EndpointConfig
from socratic_sdg.generate.errors import EndpointUnavailable
from socratic_sdg.records import read_jsonl, write_jsonl
from socratic_sdg.errors import OptionsError
from socratic_sdg.generate import RequestPolicy
from functools import partial
from socratic_sdg.testing.generation import fake_endpoint, gradient_chunks, read_outputs, write_question_flow

FAST = RequestPolicy(retry_backoff_seconds=0.02, request_timeout=0.6)








_chunks = gradient_chunks
_endpoint = partial(fake_endpoint, api_key="k")
_outputs = read_outputs

def _accounted_once(rows: int, conversations: list[dict], failed: list[dict]) -> None:
    ids = [c["id"] for c in conversations]
    assert len(ids) == len(set(ids)), "duplicate conversation ids"
    generated = [(c["metadata"]["chunk_id"], c["metadata"]["sample_index"]) for c in conversations]
    lost = [(f["chunk_id"], f["sample_index"]) for f in failed]
    assert len(generated) == len(set(generated)) and not set(generated) & set(lost)
    assert len(generated) + len(lost) == rows
    assert all(f["reason"] and f["kind"] for f in failed)


@pytest.mark.parametrize("transport", ["direct", "litellm"])
def test_faults_fail_only_their_rows_and_every_row_is_accounted_for_once(tmp_path, transport):
    with FakeOpenAI(latency=0.01) as server:
        server.faults = [
            Fault("Section 1:", "status", 500, times=1),  # transient: retried, then fine
            Fault("Section 2:", "429", retry_after=0.3, times=1),  # rate limited with Retry-After
            Fault("Section 3:", "hang", hang_seconds=3, times=1),  # no answer before the client timeout
            Fault("Section 4:", "empty", times=1),  # HTTP 200 with an empty body
            Fault("Section 5:", "malformed", times=1),  # HTTP 200, truncated JSON
            Fault("Section 6:", "no_content", times=1),  # a completion without choices
            Fault("Section 7:", "reset", times=1),  # connection dropped
            Fault("Section 8:", "status", 503),  # always down for this row
            Fault("Section 9:", "status", 400),  # refused: retrying cannot help
        ]
        write_jsonl(tmp_path / "chunks.jsonl", _chunks(11))
        options = generate.GenerateOptions(requests=replace(FAST, max_concurrency=4, num_retries=2, transport=transport))
        started = time.monotonic()
        result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(server))
        elapsed = time.monotonic() - started
        conversations, failed, metrics = _outputs(tmp_path / "out")

    _accounted_once(11, conversations, failed)
    assert {c["metadata"]["chunk_id"] for c in conversations} == {f"chunk-{i}" for i in (0, 1, 2, 3, 4, 5, 6, 7, 10)}
    assert all([m["role"] for m in c["messages"]] == ["user", "assistant"] for c in conversations)
    assert all(c["messages"][0]["content"].startswith(STUDENT) and c["messages"][1]["content"] == TUTOR for c in conversations)
    by_chunk = {f["chunk_id"]: f for f in failed}
    assert by_chunk["chunk-8"]["kind"] == "server_error" and "503" in by_chunk["chunk-8"]["reason"]
    assert by_chunk["chunk-9"]["kind"] == "bad_request" and "400" in by_chunk["chunk-9"]["reason"]
    assert (result.output_rows, result.failed_rows) == (9, 2)

    # each transient fault hit the first request of its row once (the later prompts of a row differ
    # but also contain the chunk text, so each of the three requests of rows 1-7 is hit once)
    errors = metrics["errors_by_kind"]
    assert errors["rate_limited"] == 3 and errors["timeout"] == 3
    assert errors["bad_response"] == 9  # empty body, malformed JSON, no choices
    assert errors["connection"] + errors.get("server_error", 0) == 3 + 3 + 3  # reset, transient 500, and row 8's 503 x3
    assert metrics["failures_by_kind"] == {"bad_request": 1, "server_error": 1}
    # retries: 7 rows x 3 requests x 1, plus row 8's first request twice (num_retries=2); none for the 400
    assert metrics["retries"] == 21 + 2
    assert metrics["requests"] == server.requests == 9 * 3 + 21 + 3 + 1
    assert metrics["rate_limit_pauses"] == 3
    # the tokens counted are exactly those the server reported in the answers it completed
    assert (metrics["prompt_tokens"], metrics["completion_tokens"]) == (server.prompt_tokens, server.completion_tokens)
    assert metrics["requests_succeeded"] == server.completed == 27
    assert elapsed < 20


def test_retry_after_is_honoured(tmp_path):
    with FakeOpenAI() as server:
        server.faults = [Fault("Section 0:", "429", retry_after=0.5, times=1)]
        write_jsonl(tmp_path / "chunks.jsonl", _chunks(1))
        generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(requests=FAST), _endpoint(server))
        calls = [(t, json.dumps(body["messages"])) for t, body in server.calls]
    first = calls[0]
    retry = next(t for t, prompt in calls[1:] if prompt == first[1])
    assert retry - first[0] >= 0.5


def test_the_run_wide_retry_budget_stops_a_retry_storm(tmp_path):
    with FakeOpenAI() as server:
        server.faults = [Fault("", "status", 500)]  # everything fails
        write_jsonl(tmp_path / "chunks.jsonl", _chunks(12))
        options = generate.GenerateOptions(stop_after_same_failures=0,
            requests=replace(FAST, max_concurrency=4, num_retries=3, max_total_retries=5, max_consecutive_failures=1000))
        # no row succeeded: the outputs are written, then the run fails (the CLI exits non-zero)
        with pytest.raises(generate.NothingGenerated, match=r"no conversation from .*chunks.jsonl: all 12 rows failed \(server_error 12\)") as error:
            generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(server))
        result = error.value.result
        conversations, failed, metrics = _outputs(tmp_path / "out")
    assert result.failed_rows == 12 and not conversations
    _accounted_once(12, conversations, failed)
    assert metrics["retries"] == 5 and metrics["retries_denied"] in (11, 12)  # at most one row used all its 3 retries
    assert server.requests == 12 + 5  # one attempt per row, plus the 5 retries the budget allowed
    assert any("retry budget" in f["reason"] for f in failed)


def test_a_dead_endpoint_stops_the_run_and_a_rerun_resumes(tmp_path):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(30))
    checkpoint = tmp_path / "ckpt"
    with FakeOpenAI(latency=0.01) as server:
        options = generate.GenerateOptions(checkpoint_dir=str(checkpoint), save_freq=1,
            requests=replace(FAST, max_concurrency=2, num_retries=1, max_consecutive_failures=6))
        # the endpoint breaks down (every row from 10 on fails): the run stops instead of failing them all
        server.fail_when.update({"Section 1": 503, "Section 2": 503})
        with pytest.raises(EndpointUnavailable, match=r"failed 6 requests in a row.*server_error.*resume"):
            generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(server))
        stopped_after = server.requests
        assert stopped_after < 30 * 3
        assert not (tmp_path / "out" / "conversations.jsonl").exists()
        done_before = sum(1 for e in read_jsonl(checkpoint / "generate_rows.jsonl") if e["status"] == "done")
        assert done_before >= 1

        server.fail_when.clear()
        server.faults = []
        server.reset_stats()
        result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(server))
        conversations, failed, metrics = _outputs(tmp_path / "out")
    _accounted_once(30, conversations, failed)
    assert result.failed_rows == 0 and result.output_rows == 30
    assert metrics["rows_resumed"] == done_before
    assert server.requests == 3 * (30 - done_before)  # rows already done were not generated again


def test_requests_in_flight_never_exceed_max_concurrency_and_stay_near_it(tmp_path):
    with FakeOpenAI(latency=0.03) as server:
        write_jsonl(tmp_path / "chunks.jsonl", _chunks(40))
        result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(requests=replace(FAST, max_concurrency=6)),
            _endpoint(server))
        assert server.max_in_flight <= 6
    metrics = result.metrics()
    assert metrics["max_in_flight"] == 6
    assert metrics["mean_in_flight"] > 4.5  # the pipe stays full (only the last rows drain it)


def test_a_flow_filter_that_drops_rows_is_not_an_error(tmp_path):
    keep_even = """  - block_type: ColumnValueFilterBlock
    block_config: {block_name: keep_even, input_cols: [document], filter_value: ["Section 0: x", "Section 2: x"], operation: contains}
"""
    flow = write_question_flow(tmp_path / "flow", "filter-test", "Ask about: {{document}}", before_response=keep_even)
    chunks = [{"chunk_id": f"c{i}", "text": f"Section {i}: x"} for i in range(4)]
    write_jsonl(tmp_path / "chunks.jsonl", chunks)
    with FakeOpenAI() as server:
        result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(flow_yaml_path=str(flow), requests=FAST), _endpoint(server))
        conversations, failed, _ = _outputs(tmp_path / "out")
        assert {c["metadata"]["chunk_id"] for c in conversations} == {"c0", "c2"}
        assert [(f["chunk_id"], f["kind"], f["block"]) for f in failed] == [("c1", "filtered", "keep_even"), ("c3", "filtered", "keep_even")]
        assert result.flow_id == "filter-test"

        # every row filtered out: still a normal, complete run
        write_jsonl(tmp_path / "none.jsonl", [{"chunk_id": "z", "text": "Section 7: x"}])
        result = generate.run(tmp_path / "none.jsonl", tmp_path / "out2", generate.GenerateOptions(flow_yaml_path=str(flow), requests=FAST), _endpoint(server))
        assert (result.output_rows, result.failed_rows) == (0, 1)


# --------------------------------------------------------------------------------------------
# Issue 13: secrets, systematic failures, Retry-After, odd usage blocks
# --------------------------------------------------------------------------------------------

SECRET = "k3y-TOPSECRET-0123456789"  # matches no credential pattern: only the configured key's redaction hides it


def _files_holding(root, needle: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_text(errors="replace")]


@pytest.mark.parametrize("transport", ["direct", "litellm"])
def test_an_endpoint_echoing_the_authorization_header_never_leaks_the_key(tmp_path, monkeypatch, capsys, transport):
    from socratic_sdg import cli

    write_jsonl(tmp_path / "chunks.jsonl", _chunks(6))
    with FakeOpenAI() as server:
        monkeypatch.setenv("LLM_API_BASE", server.api_base)
        monkeypatch.setenv("LLM_MODEL", "fake-model")
        monkeypatch.setenv("LLM_API_KEY", SECRET)  # secrets come from the environment only
        server.faults = [Fault("Section 1:", "echo_headers", 500), Fault("Section 2:", "echo_headers", 401)]
        common = ["--input", str(tmp_path / "chunks.jsonl"), "--num-retries", "1", "--transport", transport, "--max-concurrency", "2"]
        code = cli.main(["generate", *common, "--output-dir", str(tmp_path / "out"), "--checkpoint-dir", str(tmp_path / "ckpt")])
        assert code == 0 and server.faulted["echo_headers"] >= 2
        failed = {f["chunk_id"]: f for f in read_jsonl(tmp_path / "out" / "failed.jsonl")}
        assert failed["chunk-1"]["kind"] == "server_error" and failed["chunk-2"]["kind"] == "auth"
        assert all("***" in f["reason"] for f in failed.values())  # the echo is there, the key is not

        # every request echoes the headers with a 401: the run stops and says why on stderr
        server.faults = [Fault("", "echo_headers", 401)]
        code = cli.main(["generate", *common, "--output-dir", str(tmp_path / "out2"), "--checkpoint-dir", str(tmp_path / "ckpt2")])
        captured = capsys.readouterr()
        assert code == 2 and "failed the same way (auth: generate_student_message: " in captured.err and "refused by upstream" in captured.err
        # the circuit breaker's message (what the CLI prints for it) quotes the last failure
        options = generate.GenerateOptions(stop_after_same_failures=0,
            requests=replace(FAST, max_concurrency=1, max_consecutive_failures=3, transport=transport))
        with pytest.raises(EndpointUnavailable, match=r"in a row \(last: auth: .*Bearer \*\*\*") as error:
            generate.run(tmp_path / "chunks.jsonl", tmp_path / "out3", options, EndpointConfig.from_env())
    assert "***" in captured.err and SECRET not in captured.out + captured.err + str(error.value)
    assert _files_holding(tmp_path, SECRET) == []


def test_rows_all_failing_the_same_way_stop_the_run_and_fail_it(tmp_path, monkeypatch, capsys):
    """Before: a refusal every row gets (here HTTP 400, which is not an endpoint failure, so the circuit
    breaker does not fire) was sent for all 40 rows, and the run exited 0 with nothing generated."""
    from socratic_sdg import cli

    write_jsonl(tmp_path / "chunks.jsonl", _chunks(40))
    with FakeOpenAI() as server:
        server.faults = [Fault("", "status", 400)]
        lines: list[str] = []
        options = generate.GenerateOptions(requests=replace(FAST, max_concurrency=2))
        with pytest.raises(
            generate.NothingGenerated,
            match=r"the first 5 rows all failed the same way \(bad_request: generate_student_message: HTTP 400: injected failure 400\), so the run stopped",
        ):
            generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(server), progress=lines.append)
        assert server.requests <= 5 + 2 + 2  # the five, what was in flight, and rows starting as the fifth failed
        conversations, failed, metrics = _outputs(tmp_path / "out")  # written before the error
        assert not conversations and len(failed) >= 5 and {f["kind"] for f in failed} == {"bad_request"}
        assert metrics["stopped_early"] == "same_failure" and metrics["rows_not_started"] == 40 - len(failed)
        assert any("stopped: the first 5 rows all failed the same way" in line for line in lines)

        monkeypatch.setenv("LLM_API_BASE", server.api_base)
        monkeypatch.setenv("LLM_MODEL", "fake-model")
        code = cli.main(["generate", "--input", str(tmp_path / "chunks.jsonl"), "--output-dir", str(tmp_path / "cli")])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.count("\n") == 1 and "no conversation from" in captured.err
    assert "conversations      0 from 40 rows" in captured.out  # the summary of what was written


def test_different_failures_or_a_success_do_not_stop_the_run(tmp_path):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(12))
    with FakeOpenAI() as server:
        server.faults = [Fault(f"Section {i}:", "status", 400) for i in range(1, 12)]  # all but row 0 refused
        result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(requests=replace(FAST, max_concurrency=1)),
            _endpoint(server))
    assert (result.output_rows, result.failed_rows) == (1, 11) and result.metrics()["stopped_early"] is None


def test_the_retry_after_cap_is_an_option_and_the_pause_is_announced(tmp_path):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(2))
    lines: list[str] = []
    with FakeOpenAI() as server:
        server.faults = [Fault("Section 0:", "429", retry_after=30, times=1)]
        started = time.monotonic()
        options = generate.GenerateOptions(requests=replace(FAST, max_retry_after=0.4))
        result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(server), progress=lines.append)
        elapsed = time.monotonic() - started
    assert result.output_rows == 2 and elapsed < 10  # not the 30 s the server asked for
    assert any("the endpoint asked to wait 30s (Retry-After, more than --max-retry-after 0.4s): no request is sent for 0.4s" in line for line in lines)
    with pytest.raises(OptionsError, match="max_retry_after must be 0 or more"):
        generate.GenerateOptions(requests=RequestPolicy(max_retry_after=-1))


def test_a_usage_block_with_odd_counts_keeps_the_reply(tmp_path):
    from socratic_sdg.generate.transport import parse_completion

    reply = {"choices": [{"message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]}
    parsed = parse_completion({**reply, "usage": {"prompt_tokens": "12", "completion_tokens": "many"}})
    assert (parsed.messages[0]["content"], parsed.prompt_tokens, parsed.completion_tokens) == ("Hi", 12, 0)
    assert parse_completion({**reply, "usage": [1, 2]}).prompt_tokens == 0
    assert parse_completion({**reply, "usage": {"prompt_tokens": 3.5, "completion_tokens": float("nan")}}).completion_tokens == 0

    write_jsonl(tmp_path / "chunks.jsonl", _chunks(2))
    with FakeOpenAI() as server:
        server.faults = [Fault("Section 0:", "bad_usage")]
        result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(requests=FAST), _endpoint(server))
    metrics = result.metrics()
    assert (result.output_rows, result.failed_rows) == (2, 0) and metrics["requests_succeeded"] == 6
    assert metrics["completion_tokens"] == server.completion_tokens + 3 * 7  # the odd replies' 7.0 counts, "n/a" does not
