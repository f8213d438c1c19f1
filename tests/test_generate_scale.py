"""Scale-out of generation: shards with shares of the run-wide budgets merged back deterministically,
target-driven early stop, a hard request cap, and memory that does not hold the run's records."""

from dataclasses import replace

import json
import re

import pytest
from socratic_sdg.testing.fake_openai import TUTOR, FakeOpenAI

from socratic_sdg import generate
from socratic_sdg.filtering import FilterOptions
from socratic_sdg.generate.checkpoint import Checkpoint
from socratic_sdg.records import read_jsonl, write_jsonl
from socratic_sdg.generate import RequestPolicy
from socratic_sdg.testing.generation import fake_endpoint

FAST = RequestPolicy(retry_backoff_seconds=0.02, request_timeout=5.0)
NO_DEDUP = FilterOptions(dedup=False)  # the fake server gives every row the same tutor reply


_endpoint = fake_endpoint

def _chunks(n: int) -> list[dict]:
    return [
        {
            "chunk_id": f"chunk-{i}",
            "doc_id": f"doc-{i % 3}",
            "source": f"book-{i % 3}.pdf",
            "text": f"Exercise {i}: find the gradient of f(x, y) = x^2 + {i}y.",
            "headings": ["Gradients"],
            "pages": [1],
        }
        for i in range(n)
    ]


class LeakingTutor(FakeOpenAI):
    def reply_for(self, messages):
        reply = super().reply_for(messages)
        return "The answer is (2, 4). What do you notice?" if reply == TUTOR else reply


class HalfLeakingTutor(FakeOpenAI):
    """Leaks the answer for the even-numbered exercises."""

    def reply_for(self, messages):
        reply = super().reply_for(messages)
        found = re.search(r"Exercise (\d+):", " ".join(str(m.get("content", "")) for m in messages))
        if reply == TUTOR and found and int(found.group(1)) % 2 == 0:
            return "The answer is (2, 4). What do you notice?"
        return reply




def _ids(folder, name="conversations.jsonl") -> list[str]:
    return [r.get("id") or r["row_id"] for r in read_jsonl(folder / name)]


@pytest.mark.parametrize("total, shards", [(8, 3), (2, 3), (10, 1)])
def test_each_shard_gets_its_share_of_the_run_wide_budgets(total, shards):
    options = generate.GenerateOptions(target_examples=100, requests=RequestPolicy(max_concurrency=total, max_requests=1000))
    parts = [options.for_shard(i, shards) for i in range(shards)]
    assert [p.shard.shard_index for p in parts] == list(range(shards))
    assert sum(p.target_examples for p in parts) == 100 and sum(p.requests.max_requests for p in parts) == 1000
    assert all(p.requests.max_concurrency >= 1 for p in parts)
    if total >= shards:  # the endpoint never sees more than the total at once
        assert sum(p.requests.max_concurrency for p in parts) == total
    assert max(p.requests.max_concurrency for p in parts) - min(p.requests.max_concurrency for p in parts) <= 1
    assert options.for_shard(0, 3).target_examples == 34 and generate.GenerateOptions().for_shard(1, 2).target_examples == 0


def test_three_shards_merge_to_the_same_records_in_the_same_order_as_one_run(fake_llm, tmp_path):
    chunks = tmp_path / "chunks.jsonl"
    write_jsonl(chunks, _chunks(7))
    base = generate.GenerateOptions(conversations_per_chunk=2, requests=replace(FAST, max_concurrency=6))
    single = generate.run(chunks, tmp_path / "single", base, _endpoint(fake_llm))

    shard_dirs = []
    for index in range(3):
        options = base.for_shard(index, 3)
        assert options.requests.max_concurrency == 2
        generate.run(chunks, tmp_path / f"shard-{index}", options, _endpoint(fake_llm))
        shard_dirs.append(tmp_path / f"shard-{index}")
    shard_ids = [set(_ids(d)) for d in shard_dirs]
    assert all(shard_ids) and not (shard_ids[0] & shard_ids[1]) and not (shard_ids[1] & shard_ids[2])  # disjoint work

    merged = generate.merge(list(reversed(shard_dirs)), tmp_path / "merged", chunks)  # the order shards arrive in does not matter
    assert _ids(tmp_path / "merged") == _ids(tmp_path / "single")  # same ids, same order
    assert (tmp_path / "merged" / "conversations.jsonl").read_bytes() == (tmp_path / "single" / "conversations.jsonl").read_bytes()
    assert (merged.input_rows, merged.output_rows, merged.failed_rows) == (single.input_rows, single.output_rows, 0) == (14, 14, 0)
    metrics = json.loads((tmp_path / "merged" / "generate_metrics.json").read_text())
    assert metrics["requests"] == single.stats["requests"] == 42 and metrics["num_shards"] == 3
    assert metrics["max_concurrency"] == 6 and metrics["prompt_tokens"] == single.stats["prompt_tokens"]


def test_outputs_are_one_set_and_merge_refuses_a_shard_whose_writer_was_interrupted(fake_llm, tmp_path):
    from socratic_sdg.records import IncompleteSetError, check_complete, incomplete_sets, set_manifest_path

    chunks = tmp_path / "chunks.jsonl"
    write_jsonl(chunks, _chunks(4))
    for index in range(2):
        generate.run(chunks, tmp_path / f"s{index}", generate.GenerateOptions(requests=FAST).for_shard(index, 2), _endpoint(fake_llm))
        assert incomplete_sets(tmp_path / f"s{index}") == []
    generate.merge([tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged", chunks)
    manifest = json.loads(set_manifest_path(tmp_path / "merged", "generate").read_text())
    assert manifest["complete"] and set(manifest["files"]) == {"conversations.jsonl", "failed.jsonl", "generate_metrics.json"}
    check_complete(tmp_path / "merged" / "conversations.jsonl")

    # a shard killed while replacing its files: the merge says so instead of mixing two runs
    manifest_path = set_manifest_path(tmp_path / "s1", "generate")
    manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), "complete": False}))
    with pytest.raises(IncompleteSetError, match="interrupted while replacing conversations.jsonl"):
        generate.merge([tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged2", chunks)


def test_merge_keeps_failed_rows_in_chunk_order(tmp_path):
    chunks = tmp_path / "chunks.jsonl"
    write_jsonl(chunks, _chunks(4))
    metrics = {"input_rows": 2, "output_rows": 0, "failed_rows": 2, "execution_time_seconds": 1.0, "flow_id": "f", "model": "m", "requests": 3}
    for index, failed in enumerate([[3, 1], [2, 0]]):
        folder = tmp_path / f"s{index}"
        write_jsonl(folder / "conversations.jsonl", [])
        write_jsonl(folder / "failed.jsonl", [{"row_id": f"r{i}", "chunk_id": f"chunk-{i}", "sample_index": 0, "kind": "timeout"} for i in sorted(failed)])
        (folder / "generate_metrics.json").write_text(json.dumps(metrics | {"execution_time_seconds": 1.0 + index}))
    result = generate.merge([tmp_path / "s0", tmp_path / "s1"], tmp_path / "out", chunks)
    assert _ids(tmp_path / "out", "failed.jsonl") == ["r0", "r1", "r2", "r3"]
    assert (result.input_rows, result.failed_rows, result.stats["requests"], result.execution_time_seconds) == (4, 4, 6, 2.0)


def test_target_examples_stops_starting_rows_once_enough_pass_the_filter(fake_llm, tmp_path):
    chunks = tmp_path / "chunks.jsonl"
    write_jsonl(chunks, _chunks(60))
    options = generate.GenerateOptions(target_examples=5, target_filter=NO_DEDUP, requests=replace(FAST, max_concurrency=2))
    result = generate.run(chunks, tmp_path / "out", options, _endpoint(fake_llm))

    full_run_requests = 60 * 3
    assert result.stats["stopped_early"] == "target_examples"
    assert 5 <= result.output_rows <= 5 + 16  # plus the rows already in the flow when the target was reached
    assert result.stats["prefilter_accepted"] >= 5
    assert fake_llm.requests == result.stats["requests"] <= full_run_requests / 3  # well below the full run's 180
    assert result.stats["rows_not_started"] == 60 - result.output_rows - result.failed_rows
    assert not list(read_jsonl(tmp_path / "out" / "failed.jsonl"))  # rows not started are not failures
    assert any("stopped early" in line for line in result.summary_lines())


def test_target_counts_only_conversations_the_filter_accepts(tmp_path):
    """A model that leaks never reaches the target: the run does all rows instead of stopping on raw counts."""
    chunks = tmp_path / "chunks.jsonl"
    write_jsonl(chunks, _chunks(6))
    with LeakingTutor() as server:
        options = generate.GenerateOptions(target_examples=2, target_filter=NO_DEDUP, requests=replace(FAST, max_concurrency=2))
        result = generate.run(chunks, tmp_path / "out", options, _endpoint(server))
    assert result.output_rows == 6 and result.stats["stopped_early"] is None and result.stats["prefilter_accepted"] == 0


def test_rows_in_flight_count_at_the_acceptance_rate_seen_so_far(tmp_path):
    """Half the conversations leak: the run keeps starting rows until the target really is met,
    and does not start many more than it needs."""
    chunks = tmp_path / "chunks.jsonl"
    write_jsonl(chunks, _chunks(60))
    with HalfLeakingTutor() as server:
        options = generate.GenerateOptions(target_examples=8, target_filter=NO_DEDUP, requests=replace(FAST, max_concurrency=4))
        result = generate.run(chunks, tmp_path / "out", options, _endpoint(server))
    assert result.stats["stopped_early"] == "target_examples"
    assert result.stats["prefilter_accepted"] >= 8
    assert result.output_rows <= 8 * 2 + 8  # about target / acceptance rate, plus rows in flight


def test_a_resumed_run_counts_what_the_checkpoint_already_has(fake_llm, tmp_path):
    chunks = tmp_path / "chunks.jsonl"
    write_jsonl(chunks, _chunks(20))
    checkpoint = str(tmp_path / "ckpt")
    first = generate.GenerateOptions(max_chunks=6, checkpoint_dir=checkpoint, requests=replace(FAST, max_concurrency=1))
    generate.run(chunks, tmp_path / "a", first, _endpoint(fake_llm))
    fake_llm.reset_stats()
    again = generate.GenerateOptions(checkpoint_dir=checkpoint, target_examples=6, target_filter=NO_DEDUP, requests=replace(FAST, max_concurrency=1))
    result = generate.run(chunks, tmp_path / "b", again, _endpoint(fake_llm))
    assert result.stats["stopped_early"] == "target_examples" and fake_llm.requests == 0
    assert result.output_rows == 6 and result.stats["rows_not_started"] == 14


def test_max_requests_is_a_hard_cap(fake_llm, tmp_path):
    chunks = tmp_path / "chunks.jsonl"
    write_jsonl(chunks, _chunks(30))
    options = generate.GenerateOptions(requests=replace(FAST, max_concurrency=4, max_requests=20))
    result = generate.run(chunks, tmp_path / "out", options, _endpoint(fake_llm))
    assert fake_llm.requests == result.stats["requests"] <= 20
    assert result.stats["stopped_early"] == "max_requests"
    assert result.output_rows == 20 // 3  # whole rows only: no row is started that the budget cannot finish
    assert result.stats["rows_not_started"] == 30 - result.output_rows - result.failed_rows


def test_the_checkpoint_index_holds_no_conversations(fake_llm, tmp_path):
    """Memory does not grow with the records: the run keeps statuses and file offsets, not conversations."""
    chunks = tmp_path / "chunks.jsonl"
    write_jsonl(chunks, _chunks(5))
    options = generate.GenerateOptions(checkpoint_dir=str(tmp_path / "ckpt"), requests=FAST)
    generate.run(chunks, tmp_path / "out", options, _endpoint(fake_llm))
    checkpoint = Checkpoint(tmp_path / "ckpt", json.loads((tmp_path / "ckpt" / "generate_manifest.json").read_text()))
    entries = checkpoint.open()
    try:
        assert len(entries) == 5 and all("conversations" not in e and e["num_conversations"] == 1 for e in entries.values())
        row_id = next(iter(entries))
        assert checkpoint.read_entry(row_id)["conversations"][0]["id"] in _ids(tmp_path / "out")
    finally:
        checkpoint.close()


def test_a_shard_resumes_from_its_own_checkpoint(fake_llm, tmp_path):
    chunks = tmp_path / "chunks.jsonl"
    write_jsonl(chunks, _chunks(12))
    checkpoint = str(tmp_path / "ckpt-shard-1")
    capped = generate.GenerateOptions(checkpoint_dir=checkpoint, requests=replace(FAST, max_concurrency=3, max_requests=18)).for_shard(1, 3)
    first = generate.run(chunks, tmp_path / "a", capped, _endpoint(fake_llm))
    assert first.stats["stopped_early"] == "max_requests" and first.output_rows == 2  # its share of the budget: 18 // 3 = 6 requests, 2 rows
    fake_llm.reset_stats()
    whole = generate.GenerateOptions(checkpoint_dir=checkpoint, requests=replace(FAST, max_concurrency=3)).for_shard(1, 3)
    second = generate.run(chunks, tmp_path / "b", whole, _endpoint(fake_llm))
    assert second.stats["rows_resumed"] == 2 and fake_llm.requests == (4 - 2) * 3  # only the shard's rows not done yet
    assert [c["metadata"]["chunk_id"] for c in read_jsonl(tmp_path / "b" / "conversations.jsonl")] == ["chunk-1", "chunk-4", "chunk-7", "chunk-10"]
