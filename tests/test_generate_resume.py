"""Checkpoint and resume: a killed or restarted run skips what is done, regenerates nothing already
finished and never writes a record twice; its output equals an uninterrupted run's."""

from dataclasses import replace

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from socratic_sdg.testing.fake_openai import FakeOpenAI

from socratic_sdg import generate
from socratic_sdg.generate import RequestPolicy
from socratic_sdg.generate.checkpoint import ROWS, Checkpoint
from socratic_sdg.options import from_params
from socratic_sdg.records import read_jsonl, write_jsonl
from socratic_sdg.testing.generation import gradient_chunks, fake_endpoint

FAST = RequestPolicy(retry_backoff_seconds=0.02, request_timeout=5.0)

CHILD = """
import json, sys
from socratic_sdg import generate
from socratic_sdg.endpoint import EndpointConfig
from socratic_sdg.options import from_params
args = json.loads(sys.argv[1])
options = from_params(generate.GenerateOptions, args["options"])  # flat names, as a KFP component gets them
generate.run(args["input"], args["output"], options, EndpointConfig(api_base=args["api_base"], model="fake-model"))
"""






_chunks = gradient_chunks
_endpoint = fake_endpoint

def _done_lines(path) -> list[dict]:
    entries = []
    if not path.exists():
        return entries
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line torn by the kill
    return entries


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path):
    rows = 60
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(rows // 2))
    checkpoint = tmp_path / "ckpt"
    options = dict(max_concurrency=4, conversations_per_chunk=2, checkpoint_dir=str(checkpoint), save_freq=1, request_timeout=5.0)
    with FakeOpenAI(latency=0.05) as server:
        args = {"input": str(tmp_path / "chunks.jsonl"), "output": str(tmp_path / "out"), "options": options, "api_base": server.api_base}
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], env=env, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 90
            while len(_done_lines(checkpoint / ROWS)) < 10:
                assert child.poll() is None, f"the generator ended before it was killed: {child.stderr.read()[-2000:]}"
                assert time.monotonic() < deadline, "no progress checkpointed within 90 s"
                time.sleep(0.02)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == -signal.SIGKILL
        assert not (tmp_path / "out" / "conversations.jsonl").exists()  # outputs only appear when a run finishes
        done = {e["row_id"] for e in _done_lines(checkpoint / ROWS) if e["status"] == "done"}
        assert 10 <= len(done) < rows
        with (checkpoint / ROWS).open("ab") as handle:  # as if the kill had torn a line mid-write
            handle.write(b'{"row_id": "torn", "status": "do')

        server.reset_stats()
        resumed = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", from_params(generate.GenerateOptions, options), _endpoint(server))
        assert server.requests == 3 * (rows - len(done))  # nothing already checkpointed was generated again
        assert resumed.metrics()["rows_resumed"] == len(done)

        uninterrupted = generate.run(
            tmp_path / "chunks.jsonl", tmp_path / "ref", generate.GenerateOptions(conversations_per_chunk=2,
                requests=replace(FAST, max_concurrency=4)), _endpoint(server)
        )

    conversations = list(read_jsonl(tmp_path / "out" / "conversations.jsonl"))
    reference = list(read_jsonl(tmp_path / "ref" / "conversations.jsonl"))
    ids = [c["id"] for c in conversations]
    assert len(ids) == len(set(ids)) == rows
    assert set(ids) == {c["id"] for c in reference}
    assert conversations == reference  # same records, same (input) order
    assert resumed.failed_rows == uninterrupted.failed_rows == 0


def test_a_finished_run_resumed_makes_no_request_and_writes_the_same_files(tmp_path, fake_llm):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(5))
    options = generate.GenerateOptions(checkpoint_dir=str(tmp_path / "ckpt"), requests=FAST)
    generate.run(tmp_path / "chunks.jsonl", tmp_path / "a", options, _endpoint(fake_llm))
    requests = fake_llm.requests
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "b", options, _endpoint(fake_llm))
    assert fake_llm.requests == requests
    assert result.output_rows == 5 and result.metrics()["rows_resumed"] == 5 and result.metrics()["requests"] == 0
    assert (tmp_path / "a" / "conversations.jsonl").read_text() == (tmp_path / "b" / "conversations.jsonl").read_text()
    # the checkpoint holds one line per row, still
    assert len((tmp_path / "ckpt" / ROWS).read_text().splitlines()) == 5


def test_more_chunks_later_generate_only_the_new_ones(tmp_path, fake_llm):
    options = generate.GenerateOptions(checkpoint_dir=str(tmp_path / "ckpt"), requests=FAST)
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(3))
    generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(fake_llm))
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(5))
    fake_llm.reset_stats()
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(fake_llm))
    assert fake_llm.requests == 2 * 3 and result.output_rows == 5


def test_rows_that_failed_are_retried_on_resume_and_leave_no_trace(tmp_path, fake_llm):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(4))
    options = generate.GenerateOptions(checkpoint_dir=str(tmp_path / "ckpt"), requests=replace(FAST, num_retries=0))
    fake_llm.fail_when["Section 1:"] = 500
    first = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(fake_llm))
    assert (first.output_rows, first.failed_rows) == (3, 1)

    fake_llm.fail_when.clear()
    fake_llm.reset_stats()
    second = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(fake_llm))
    assert (second.output_rows, second.failed_rows) == (4, 0) and fake_llm.requests == 3
    assert list(read_jsonl(tmp_path / "out" / "failed.jsonl")) == []
    ids = [c["id"] for c in read_jsonl(tmp_path / "out" / "conversations.jsonl")]
    assert len(ids) == len(set(ids)) == 4


def test_resuming_with_other_settings_is_refused(tmp_path, fake_llm):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(2))
    generate.run(
        tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(checkpoint_dir=str(tmp_path / "ckpt"), seed=1, requests=FAST), _endpoint(fake_llm)
    )
    with pytest.raises(generate.GenerateError, match=r"other settings \(seed: 1 then, 2 now\).*new checkpoint folder"):
        generate.run(
            tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(checkpoint_dir=str(tmp_path / "ckpt"), seed=2,
                requests=FAST), _endpoint(fake_llm)
        )
    with pytest.raises(generate.GenerateError, match=r"flow_id: 'socratic-single-turn' then, 'socratic-multi-turn' now"):
        options = generate.GenerateOptions(checkpoint_dir=str(tmp_path / "ckpt"), seed=1, flow_id="socratic-multi-turn", requests=FAST)
        generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(fake_llm))


def test_checkpoint_is_locked_while_in_use_and_cuts_a_torn_line(tmp_path):
    first = Checkpoint(tmp_path, {"flow_id": "f"})
    first.open()
    first.add({"row_id": "a", "status": "done", "conversations": []})
    first.add({"row_id": "b", "status": "failed", "kind": "timeout", "reason": "r"})
    first.flush()
    with pytest.raises(generate.GenerateError, match="another generation run is using the checkpoint folder"):
        Checkpoint(tmp_path, {"flow_id": "f"}).open()
    first.close()
    with (tmp_path / ROWS).open("ab") as handle:
        handle.write(b'{"row_id": "c", "sta')
    second = Checkpoint(tmp_path, {"flow_id": "f"})
    entries = second.open()
    assert set(entries) == {"a", "b"} and second.torn_bytes == len(b'{"row_id": "c", "sta')
    second.add({"row_id": "a", "status": "done", "conversations": [{"id": "again"}]})  # never a second record for a done row
    second.add({"row_id": "b", "status": "done", "conversations": []})  # a failed row that now succeeded
    second.close()
    lines = [json.loads(line) for line in (tmp_path / ROWS).read_text().splitlines()]
    assert [(e["row_id"], e["status"]) for e in lines] == [("a", "done"), ("b", "failed"), ("b", "done")]


def test_sigterm_writes_the_finished_rows_before_exiting(tmp_path):
    """A pod being stopped gets SIGTERM: rows finished since the last checkpoint write are not lost."""
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(40))
    checkpoint = tmp_path / "ckpt"
    options = dict(max_concurrency=2, checkpoint_dir=str(checkpoint), save_freq=1000, request_timeout=5.0)  # no write before 1 s
    with FakeOpenAI(latency=0.05) as server:
        args = {"input": str(tmp_path / "chunks.jsonl"), "output": str(tmp_path / "out"), "options": options, "api_base": server.api_base}
        child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 90
            while server.completed < 15:  # rows 0 and 1 are finished well before (later stages go first)
                assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()[-2000:] if child.poll() is not None else "timeout"
                time.sleep(0.01)
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        completed = server.completed
    assert child.returncode == 128 + signal.SIGTERM
    done = [e for e in _done_lines(checkpoint / ROWS) if e["status"] == "done"]
    assert len(done) >= 2 and len(done) <= completed // 3
