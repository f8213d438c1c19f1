"""The optional LLM-judge layer (socratic_sdg.filter_judge), with stub models and a local HTTP server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from socratic_sdg import filter as quality_filter
from socratic_sdg import filter_judge as fj
from socratic_sdg.filter import FilterOptions

GOOD = {"answer_revealing": "guides", "guidance": 4, "actionability": 4, "grounding": 5, "tone": 5, "rationale": "fine"}
PROBLEM = "How do I solve 3x - 5 = 10? I keep getting confused."


def convo(rid: str, reply: str, question: str = PROBLEM, chunk: str = "c1") -> dict[str, Any]:
    return {"id": rid, "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": reply}],
            "metadata": {"chunk_id": chunk, "reference_answer": "Add 5, divide by 3: x = 5."}}


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def lines(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        json.dumps(GOOD),
        "```json\n" + json.dumps(GOOD) + "\n```",
        "Here is my assessment:\n" + json.dumps(GOOD) + "\nThanks.",
        json.dumps({**GOOD, "answer_revealing": "Guides", "guidance": "4", "tone": 4.6}),
    ],
)
def test_verdicts_are_parsed_tolerantly(reply: str) -> None:
    verdict = fj.parse_verdict(reply)
    assert verdict.answer_revealing == "guides" and verdict.scores["guidance"] == 4 and verdict.scores["tone"] in (5, 5)


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        ("", "empty"),
        ("I think it is fine.", "no JSON"),
        (json.dumps({**GOOD, "answer_revealing": "maybe"}), "answer_revealing"),
        (json.dumps({**GOOD, "guidance": 9}), "guidance"),
        (json.dumps({**GOOD, "tone": "nice"}), "tone"),
    ],
)
def test_unparsable_verdicts_raise(reply: str, fragment: str) -> None:
    with pytest.raises(fj.JudgeParseError, match=fragment):
        fj.parse_verdict(reply)


def test_grounding_may_be_null_and_is_then_not_judged() -> None:
    verdict = fj.parse_verdict(json.dumps({**GOOD, "grounding": None}))
    assert verdict.scores["grounding"] is None
    assert fj.decide(verdict, fj.JudgeOptions(min_grounding=5)) == []


def test_decisions_follow_thresholds() -> None:
    options = fj.JudgeOptions(min_guidance=3, min_tone=4)
    codes = lambda data: [r["code"] for r in fj.decide(fj.parse_verdict(json.dumps({**GOOD, **data})), options)]  # noqa: E731
    assert codes({}) == []
    assert codes({"answer_revealing": "reveals_right_answer"}) == ["judge_reveals_answer"]
    assert codes({"answer_revealing": "reveals_wrong_answer"}) == ["judge_reveals_wrong_answer"]
    assert codes({"guidance": 2, "tone": 3}) == ["judge_low_guidance", "judge_low_tone"]
    lenient = fj.JudgeOptions(reject_wrong_answer=False)
    assert fj.decide(fj.parse_verdict(json.dumps({**GOOD, "answer_revealing": "reveals_wrong_answer"})), lenient) == []


def test_prompt_file_is_data_and_validated(tmp_path: Path) -> None:
    prompt = fj.load_judge_prompt()
    messages = fj.render(prompt, convo("r", "What do you notice?"), "Linear equations: undo operations.")
    assert messages[0]["role"] == "system" and "Linear equations: undo operations." in messages[1]["content"]
    assert "[Student] " + PROBLEM in messages[1]["content"] and "x = 5" in messages[1]["content"]
    bad = tmp_path / "prompt.yaml"
    bad.write_text("system: s\nuser: 'Judge {{conversation}} with {{teacher}}'\n", encoding="utf-8")
    with pytest.raises(ValueError, match="teacher"):
        fj.load_judge_prompt(bad)
    bad.write_text("system: s\nuser: 'no conversation here'\n", encoding="utf-8")
    with pytest.raises(ValueError, match="conversation"):
        fj.load_judge_prompt(bad)


# --------------------------------------------------------------------------------------------
# Transport: retries, concurrency, failures
# --------------------------------------------------------------------------------------------


class Flaky(Exception):
    def __init__(self, status: int | None = None):
        super().__init__(f"HTTP {status}" if status else "connection reset")
        self.status_code = status


def test_transient_failures_are_retried_with_backoff() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def complete(messages):
        calls.append(1)
        if len(calls) < 3:
            raise Flaky(503)
        return json.dumps(GOOD)

    with fj.Judge(fj.JudgeOptions(max_retries=3, backoff_base=0.1), complete=complete, sleep=sleeps.append) as judge:
        [outcome] = judge.judge_many([(convo("r", "What do you notice?"), None)])
    assert outcome.verdict is not None and outcome.attempts == 3 and outcome.reasons == []
    assert len(sleeps) == 2 and 0.05 <= sleeps[0] <= 0.15 and 0.1 <= sleeps[1] <= 0.3  # jittered, doubling


def test_bounded_retries_then_a_recorded_failure() -> None:
    def complete(messages):
        raise Flaky(None)

    with fj.Judge(fj.JudgeOptions(max_retries=2), complete=complete, sleep=lambda s: None) as judge:
        [outcome] = judge.judge_many([(convo("r", "What do you notice?"), None)])
    assert outcome.attempts == 3 and outcome.verdict is None
    assert [r["code"] for r in outcome.reasons] == ["judge_error"] and "connection reset" in outcome.reasons[0]["detail"]


def test_bad_requests_are_not_retried() -> None:
    calls = []

    def complete(messages):
        calls.append(1)
        raise Flaky(400)

    with fj.Judge(fj.JudgeOptions(max_retries=5), complete=complete, sleep=lambda s: None) as judge:
        judge.judge_many([(convo("r", "What?"), None)])
    assert len(calls) == 1


def test_unparsable_output_is_a_failure_not_a_crash() -> None:
    with fj.Judge(fj.JudgeOptions(parse_retries=1), complete=lambda m: "Looks great to me!", sleep=lambda s: None) as judge:
        [outcome] = judge.judge_many([(convo("r", "What?"), None)])
    assert outcome.attempts == 2 and [r["code"] for r in outcome.reasons] == ["judge_unparsable"]
    with fj.Judge(fj.JudgeOptions(on_error="accept"), complete=lambda m: "nope", sleep=lambda s: None) as judge:
        [outcome] = judge.judge_many([(convo("r", "What?"), None)])
    assert outcome.reasons == [] and outcome.quality["error"] == "judge_unparsable"


def test_concurrency_is_bounded() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def complete(messages):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        return json.dumps(GOOD)

    with fj.Judge(fj.JudgeOptions(max_concurrency=3), complete=complete) as judge:
        outcomes = judge.judge_many([(convo(str(i), "What?"), None) for i in range(12)])
    assert len(outcomes) == 12 and peak == 3


def test_a_refused_key_stops_the_run(tmp_path: Path) -> None:
    def complete(messages):
        raise Flaky(401)

    source = write(tmp_path / "in.jsonl", [convo("a", "What could you do to both sides first?")])
    with pytest.raises(fj.JudgeError, match="refused the API key"):
        quality_filter.run(source, tmp_path / "out", FilterOptions(judge_complete=complete))
    assert not (tmp_path / "out" / "accepted.jsonl").exists()  # nothing half-written


def test_repeated_failures_trip_the_breaker() -> None:
    options = fj.JudgeOptions(max_retries=0, max_consecutive_failures=5, max_concurrency=1)
    with fj.Judge(options, complete=lambda m: (_ for _ in ()).throw(Flaky(None)), sleep=lambda s: None) as judge:
        with pytest.raises(fj.JudgeError, match="5 times in a row"):
            judge.judge_many([(convo(str(i), "What?"), None) for i in range(20)])


# --------------------------------------------------------------------------------------------
# In a run
# --------------------------------------------------------------------------------------------


def test_only_records_the_deterministic_layers_accept_are_judged(tmp_path: Path) -> None:
    seen: list[str] = []

    def complete(messages):
        text = messages[-1]["content"]
        seen.append(text)
        if "Do you like" in text:
            return json.dumps({**GOOD, "guidance": 1, "actionability": 1, "rationale": "off task"})
        return json.dumps(GOOD)

    records = [
        convo("good", "What could you do to both sides to get the 3x term by itself?"),
        convo("leak", "So x = 5. Can you check it?", question="How do I solve 3x - 5 = 10 please?"),
        convo("offtask", "Do you like solving equations like this one?", question="Solve 3x - 5 = 10 for me."),
    ]
    source = write(tmp_path / "in.jsonl", records)
    result = quality_filter.run(source, tmp_path / "out", FilterOptions(judge_complete=complete))
    assert len(seen) == 2  # the leak was rejected before paying for a judge call
    [accepted] = lines(result.accepted_path)
    assert accepted["id"] == "good" and accepted["metadata"]["quality"]["judge"]["guidance"] == 4
    assert "judge" in accepted["metadata"]["quality"]["layers"]
    rejected = {r["id"]: [d["code"] for d in r["metadata"]["drop_reasons"]] for r in lines(result.rejected_path)}
    assert rejected["offtask"] == ["judge_low_guidance", "judge_low_actionability"]
    metrics = json.loads(Path(result.metrics_path).read_text())
    assert metrics["judge"]["judged"] == 2 and metrics["rejected_by_layer"]["judge"] == 1


class _ChatServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/chat/completions that answers a canned verdict and records requests."""

    requests: list[dict[str, Any]] = []
    verdict: dict[str, Any] = GOOD

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        reply = {
            "id": "cmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": json.dumps(type(self).verdict)}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def chat_server():
    _ChatServer.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_judge_over_http_with_source_passages(tmp_path: Path, chat_server: str, monkeypatch) -> None:
    monkeypatch.setenv("LLM_API_KEY", "sk-test")
    chunks = write(tmp_path / "chunks.jsonl", [{"chunk_id": "c1", "text": "To solve ax + b = c, undo + b, then divide by a."}])
    records = [convo("a", "What could you do to both sides to get the 3x term by itself?"),
               convo("b", "Which operation would undo the - 5 on the left side?", question="Solve 3x - 5 = 10, please.",
                     chunk="missing")]
    source = write(tmp_path / "in.jsonl", records)
    options = FilterOptions(judge_endpoint=chat_server, judge_model="judge-model", chunks_path=str(chunks),
                            judge_max_concurrency=2)
    result = quality_filter.run(source, tmp_path / "out", options)
    assert result.accepted == 2
    assert {r["path"] for r in _ChatServer.requests} == {"/v1/chat/completions"}
    assert all(r["body"]["model"] == "judge-model" and r["auth"] == "Bearer sk-test" for r in _ChatServer.requests)
    prompts = sorted(r["body"]["messages"][-1]["content"] for r in _ChatServer.requests)
    assert any("undo + b, then divide by a" in p for p in prompts)  # grounding: the source chunk is shown
    assert any("score grounding as null" in p for p in prompts)  # no chunk found for "missing"


def test_judge_endpoint_errors_are_one_line(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", [convo("a", "What could you do first?")])
    with pytest.raises(fj.JudgeError, match="not an http"):
        quality_filter.run(source, tmp_path / "out", FilterOptions(judge_endpoint="localhost:8000"))
    with pytest.raises(ValueError, match="on_error"):
        FilterOptions(judge=True, judge_on_error="ignore")
