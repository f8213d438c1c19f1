import json
import math

import pytest
from socratic_sdg.testing.estimate_helpers import LEAK_MARKER, LeakyFakeOpenAI, endpoint, write_chunks
from socratic_sdg.testing.fake_openai import FakeOpenAI

from socratic_sdg.generate import estimate
from socratic_sdg.endpoint import EndpointConfig, EndpointError
from socratic_sdg.generate.estimate import EstimateOptions
from socratic_sdg.generate.catalog import show_flow
from socratic_sdg.generate.errors import EndpointUnavailable, GenerateError
from socratic_sdg.generate import GenerateOptions, RequestPolicy
from socratic_sdg.records import read_jsonl, write_jsonl


def _probe_options(target: int, probe_rows: int = 8, **requests) -> EstimateOptions:
    return EstimateOptions(target_examples=target, probe_rows=probe_rows, generate_options=GenerateOptions(requests=RequestPolicy(**requests)))


@pytest.mark.parametrize("flow_id", ["socratic-single-turn", "socratic-multi-turn"])
def test_count_only_estimate_comes_from_the_chunks_and_the_flow(tmp_path, monkeypatch, flow_id):
    for key in ("LLM_API_BASE", "LLM_MODEL"):
        monkeypatch.delenv(key, raising=False)  # no probe: no endpoint needed, no network
    chunks = write_chunks(tmp_path / "chunks.jsonl", 12, tokens_every=2)
    write_jsonl(tmp_path / "chunks.jsonl", chunks + [chunks[3]])  # a duplicate chunk is generated once
    options = EstimateOptions(target_examples=7, probe_rows=0, generate_options=GenerateOptions(flow_id=flow_id, conversations_per_chunk=2))
    result = estimate.run(tmp_path / "chunks.jsonl", options)

    tokens = sum(c["num_tokens"] if "num_tokens" in c else math.ceil(len(c["text"]) / 4) for c in chunks)
    requests_per_row = show_flow(flow_id)["llm_requests_per_row"]
    assert (result.chunks, result.rows_available, result.chunk_tokens) == (12, 24, tokens)
    assert result.basis == "assumed" and result.probe is None and result.model == ""
    assert result.requests_per_row == requests_per_row == len(result.llm_blocks)
    assert result.acceptance_rate == estimate.ASSUMED_ACCEPTANCE
    assert result.rows_needed == result.rows == math.ceil(7 / estimate.ASSUMED_ACCEPTANCE)
    assert result.requests == result.rows * requests_per_row
    assert result.completion_tokens == result.rows * sum(result.llm_blocks.values())  # max_tokens: an upper bound
    assert result.prompt_tokens > result.rows * requests_per_row * tokens / 12  # a chunk per request, plus the templates
    assert result.target_reachable and result.time_seconds is None
    text = "\n".join(result.summary_lines())
    assert "assumed" in text and "unknown without a probe" in text and "1 duplicate chunk" in text


def test_runtime_params_change_the_flow_figures(tmp_path):
    write_chunks(tmp_path / "chunks.jsonl", 4)
    generate = GenerateOptions(runtime_params={"generate_tutor_reply": {"max_tokens": 50}})
    result = estimate.run(tmp_path / "chunks.jsonl", EstimateOptions(target_examples=2, probe_rows=0, generate_options=generate))
    assert result.llm_blocks["generate_tutor_reply"] == 50
    with pytest.raises(GenerateError, match="does not have"):
        estimate.run(tmp_path / "chunks.jsonl", EstimateOptions(probe_rows=0, generate_options=GenerateOptions(runtime_params={"nope": {"max_tokens": 1}})))


def test_probe_measures_the_endpoint_and_the_estimate_scales_with_the_target(tmp_path):
    write_chunks(tmp_path / "chunks.jsonl", 40)
    messages: list[str] = []
    with FakeOpenAI(latency=0.05) as server:
        small = estimate.run(tmp_path / "chunks.jsonl", _probe_options(10, max_concurrency=4), endpoint(server), progress=messages.append)
        assert server.requests == 8 * 3  # the probe: 8 rows through the 3 LLM blocks, nothing more
        probe_tokens = (server.prompt_tokens, server.completed)
        large = estimate.run(tmp_path / "chunks.jsonl", _probe_options(20, max_concurrency=4), endpoint(server))

    assert small.basis == "probe" and small.model == "fake-model" and small.probe["rows"] == 8
    assert (small.requests_per_row, small.conversations_per_row, small.acceptance_rate) == (3.0, 1.0, 1.0)
    assert small.prompt_tokens_per_request == round(probe_tokens[0] / probe_tokens[1], 1)
    assert (small.rows_needed, small.requests, small.expected_examples) == (10, 30, 10)
    assert small.prompt_tokens == round(10 * small.probe["prompt_tokens"] / 8)
    assert small.mean_request_seconds >= 0.05
    assert small.time_seconds == pytest.approx(30 * small.mean_request_seconds / 4, abs=0.1)
    assert (large.rows_needed, large.requests) == (2 * small.rows_needed, 2 * small.requests)
    assert large.time_seconds == pytest.approx(60 * large.mean_request_seconds / 4, abs=0.1)  # twice the requests
    assert any(m.startswith("[estimate] probe:") for m in messages) and any(m.startswith("[generate") for m in messages)
    text = "\n".join(small.summary_lines())
    for word in ("requests", "tokens", "time", "measured by the probe"):
        assert word in text


def test_acceptance_scales_the_rows_and_the_probe_samples_the_whole_file(tmp_path):
    write_chunks(tmp_path / "chunks.jsonl", 40, leaky=range(20))  # the first half leaks answers
    with LeakyFakeOpenAI() as server:
        result = estimate.run(tmp_path / "chunks.jsonl", _probe_options(10), endpoint(server))
        prompts = " ".join(server.prompts)

    indices = result.probe["chunk_indices"]
    assert indices == estimate.spread_indices(40, 8, GenerateOptions().seed) and len(indices) == 8
    assert indices != list(range(8)) and min(indices) < 20 <= max(indices)  # not the first rows: both halves
    assert all(f"{LEAK_MARKER if i < 20 else 'Section'} {i}:" in prompts for i in indices)  # the picked chunks were generated
    assert result.acceptance_rate == 0.5 and result.probe["drop_reasons"] == {"leaks_answer_value": 4}
    assert (result.rows_needed, result.requests) == (20, 60)  # half accepted: twice the rows of the all-accepted case
    assert estimate.spread_indices(40, 8, 7) != indices and estimate.spread_indices(3, 8, 0) == [0, 1, 2]


def test_a_probe_that_accepts_nothing_says_so_instead_of_dividing_by_zero(tmp_path):
    write_chunks(tmp_path / "chunks.jsonl", 6, leaky=range(6))
    with LeakyFakeOpenAI() as server:
        result = estimate.run(tmp_path / "chunks.jsonl", _probe_options(100, probe_rows=3), endpoint(server), output_dir=tmp_path / "out")

    assert result.acceptance_rate == 0.0 and not result.estimable
    assert result.rows_needed is None and result.requests is None and result.time_seconds is None
    text = "\n".join(result.summary_lines())
    assert "accepted nothing" in text and "leaks_answer_value 3" in text and "bigger" in text
    rejected = list(read_jsonl(tmp_path / "out" / "probe" / "filter" / "rejected.jsonl"))  # kept to look at
    assert len(rejected) == 3
    assert json.loads((tmp_path / "out" / "estimate.json").read_text())["estimable"] is False


def test_a_target_the_chunks_cannot_reach_gives_the_maximum_and_writes_estimate_json(fake_llm, tmp_path):
    write_chunks(tmp_path / "chunks.jsonl", 10)
    result = estimate.run(tmp_path / "chunks.jsonl", _probe_options(25, probe_rows=4), endpoint(fake_llm), output_dir=tmp_path / "out")

    assert not result.target_reachable and result.rows_needed == 25
    assert (result.rows, result.reachable_examples, result.expected_examples, result.requests) == (10, 10, 10, 30)
    assert result.suggested_conversations_per_chunk == 3
    text = "\n".join(result.summary_lines())
    assert "NOT reachable" in text and "at most ~10" in text and "conversations_per_chunk to 3" in text

    saved = json.loads((tmp_path / "out" / "estimate.json").read_text())
    assert saved == json.loads(json.dumps(result.as_dict())) and saved["requests"] == 30 and saved["probe"]["rows"] == 4
    metrics = result.kfp_metrics()
    assert metrics["requests"] == 30 and metrics["target_reachable"] == 0.0 and metrics["probe_requests"] == 12
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values())
    markdown = result.markdown()
    assert markdown.startswith("# Estimate for 25 accepted examples") and "| requests | 30 |" in markdown and "NOT reachable" in markdown


def test_user_errors_are_clear(tmp_path):
    with pytest.raises(GenerateError, match="not found"):
        estimate.run(tmp_path / "missing.jsonl", EstimateOptions(probe_rows=0))
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(GenerateError, match="holds no chunks"):
        estimate.run(tmp_path / "empty.jsonl", EstimateOptions(probe_rows=0))
    write_jsonl(tmp_path / "bad.jsonl", [{"text": "no id"}])
    with pytest.raises(GenerateError, match="chunk_id"):
        estimate.run(tmp_path / "bad.jsonl", EstimateOptions(probe_rows=0))
    with pytest.raises(GenerateError, match="target_examples must be at least 1"):
        EstimateOptions(target_examples=-1)
    assert EstimateOptions(target_examples=0).target_examples == estimate.DEFAULT_TARGET_EXAMPLES  # 0: the pipeline's "no target"
    write_chunks(tmp_path / "chunks.jsonl", 4)
    with pytest.raises(EndpointError, match="cannot reach the model endpoint"):
        estimate.run(tmp_path / "chunks.jsonl", EstimateOptions(probe_rows=2), EndpointConfig(api_base="http://127.0.0.1:9/v1", model="m"))


def test_an_endpoint_failing_every_request_stops_the_probe(fake_llm, tmp_path):
    write_chunks(tmp_path / "chunks.jsonl", 8)
    fake_llm.fail_when["gradient"] = 503
    options = _probe_options(10, probe_rows=8, max_concurrency=1, num_retries=0, max_consecutive_failures=3)
    with pytest.raises(EndpointUnavailable, match="failed 3 requests in a row"):
        estimate.run(tmp_path / "chunks.jsonl", options, endpoint(fake_llm))


def test_a_probe_whose_rows_all_fail_is_reported_not_extrapolated(fake_llm, tmp_path):
    write_chunks(tmp_path / "chunks.jsonl", 5)
    fake_llm.fail_when["gradient"] = 500
    result = estimate.run(tmp_path / "chunks.jsonl", _probe_options(10, probe_rows=3, num_retries=0), endpoint(fake_llm))
    assert result.probe["failed_rows"] == 3 and result.probe["conversations"] == 0
    assert not result.estimable and result.requests is None
    text = "\n".join(result.summary_lines())
    assert "3 of 3 probe rows failed (server_error 3)" in text and "generated no conversation" in text


def test_chunks_generate_would_reject_are_not_counted(tmp_path):
    chunks = write_chunks(tmp_path / "chunks.jsonl", 4)
    write_jsonl(tmp_path / "chunks.jsonl", chunks + [{**chunks[0], "chunk_id": "null", "text": None},
                                                     {**chunks[1], "chunk_id": "huge", "text": "x" * 30_000}])
    result = estimate.run(tmp_path / "chunks.jsonl", EstimateOptions(probe_rows=0))
    assert result.chunks == 4 and result.rows_available == 4
    assert any(note.startswith("2 chunk(s) cannot be generated from and are not counted (first, record 5: text is null") for note in result.notes)
    limit = EstimateOptions(probe_rows=0, generate_options=GenerateOptions(max_chunk_chars=50_000))
    assert estimate.run(tmp_path / "chunks.jsonl", limit).chunks == 5  # the limit is the run's


def test_best_of_k_in_the_estimate(tmp_path, monkeypatch):
    """Without a probe, k tutor replies cost k times the tutor block's completion tokens in the same
    requests (the chat API's n) and a conversation is accepted when any candidate is; with a probe,
    acceptance is measured with k, and requests per accepted example drop."""
    for key in ("LLM_API_BASE", "LLM_MODEL"):
        monkeypatch.delenv(key, raising=False)
    write_chunks(tmp_path / "chunks.jsonl", 40)
    def options(k: int, probe_rows: int) -> EstimateOptions:
        return EstimateOptions(target_examples=20, probe_rows=probe_rows, generate_options=GenerateOptions(tutor_candidates=k))

    one, three = (estimate.run(tmp_path / "chunks.jsonl", options(k, 0)) for k in (1, 3))
    tutor_tokens = one.llm_blocks["generate_tutor_reply"]
    assert three.requests_per_row == one.requests_per_row == 3
    assert three.acceptance_rate == pytest.approx(1 - (1 - estimate.ASSUMED_ACCEPTANCE) ** 3, abs=1e-4)
    assert three.completion_tokens / three.rows == pytest.approx(one.completion_tokens / one.rows + 2 * tutor_tokens)
    assert three.requests_per_accepted < one.requests_per_accepted
    assert any("tutor_candidates=3" in note for note in three.notes)
    assert "per accepted" in "\n".join(three.summary_lines()) and "best of 3" in "\n".join(three.summary_lines())

    with FakeOpenAI(leak_rate=0.5) as server:
        probed = [estimate.run(tmp_path / "chunks.jsonl", options(k, 16), endpoint(server)) for k in (1, 3)]
    assert probed[1].acceptance_rate > probed[0].acceptance_rate  # measured: a leak is kept only when all three leak
    assert probed[1].requests_per_accepted < probed[0].requests_per_accepted
