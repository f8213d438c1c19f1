"""The optional LLM-judge layer (socratic_sdg.filtering.judge), with stub models and a local HTTP server."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from socratic_sdg.options import from_params
from socratic_sdg.testing.fake_openai import FakeOpenAI

from socratic_sdg import filtering
from socratic_sdg.filtering import judge as fj
from socratic_sdg.filtering import FilterOptions

GOOD = {"mistake_identification": 4, "answer_revealing": "no", "guidance": 4, "actionability": 4, "grounding": 5,
        "tone": 5, "rationale": "fine"}
OLD_GOOD = {"answer_revealing": "guides", "guidance": 4, "actionability": 4, "grounding": 5, "tone": 5, "rationale": "fine"}
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
        json.dumps({**GOOD, "guidance": "4/5", "actionability": "4 out of 5", "tone": 4.5}),
        json.dumps({**OLD_GOOD, "mistake_identification": 4}),  # version 1 of the rubric, plus the new score
    ],
)
def test_verdicts_are_parsed_tolerantly(reply: str) -> None:
    verdict = fj.parse_verdict(reply)
    assert verdict.revealing == "no" and verdict.answer_revealing == "guides"
    assert verdict.scores["guidance"] == 4 and verdict.scores["actionability"] == 4 and verdict.scores["tone"] == 5
    assert verdict.scores["mistake_identification"] == 4


def test_a_version_1_verdict_still_parses_without_mistake_identification() -> None:
    verdict = fj.parse_verdict(json.dumps(OLD_GOOD))
    assert verdict.scores["mistake_identification"] is None and "mistake_identification" not in verdict.labels()
    assert fj.decide(verdict, fj.JudgeOptions(min_mistake_identification=5)) == []


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("no", "no"), ("No", "no"), ("guides", "no"), (False, "no"),
        ("yes_correct", "yes_correct"), ("Yes", "yes_correct"), ("reveals_right_answer", "yes_correct"),
        ("Yes (and the revealed answer is correct)", "yes_correct"), (True, "yes_correct"),
        ("yes_incorrect", "yes_incorrect"), ("reveals_wrong_answer", "yes_incorrect"),
        ("Yes (but the revealed answer is incorrect)", "yes_incorrect"), ("yes - incorrect", "yes_incorrect"),
    ],
)
def test_revealing_labels_and_their_aliases(raw: Any, label: str) -> None:
    verdict = fj.parse_verdict(json.dumps({**GOOD, "answer_revealing": raw}))
    assert verdict.revealing == label and verdict.labels()["revealing"] == label


def test_mrbench_key_names_and_label_words_are_read() -> None:
    reply = json.dumps({"Mistake_Identification": "To some extent", "Revealing_of_the_Answer": "No",
                        "Providing_Guidance": "Yes", "Actionability": "No", "Tutor_Tone": "Neutral",
                        "rationale": "vague"})
    verdict = fj.parse_verdict(reply)
    assert verdict.scores == {"mistake_identification": 3, "guidance": 5, "actionability": 1, "grounding": None, "tone": 3}
    assert verdict.labels() == {"mistake_identification": "partly", "revealing": "no", "guidance": "yes",
                                "actionability": "no", "tone": "neutral"}


@pytest.mark.parametrize(
    ("score", "label", "tone"),
    [(5, "yes", "encouraging"), (4, "yes", "encouraging"), (3, "partly", "neutral"), (2, "no", "offensive"),
     (1, "no", "offensive")],
)
def test_scores_map_to_the_taxonomy_labels(score: int, label: str, tone: str) -> None:
    data = {**GOOD, "mistake_identification": score, "guidance": score, "actionability": score, "tone": score}
    labels = fj.parse_verdict(json.dumps(data)).labels()
    assert labels == {"mistake_identification": label, "revealing": "no", "guidance": label, "actionability": label,
                      "tone": tone}


@pytest.mark.parametrize("raw", [None, "null", "N/A", "not applicable", "no mistake"])
def test_no_mistake_to_identify_is_not_judged(raw: Any) -> None:
    verdict = fj.parse_verdict(json.dumps({**GOOD, "mistake_identification": raw}))
    assert verdict.scores["mistake_identification"] is None and "mistake_identification" not in verdict.labels()
    assert fj.decide(verdict, fj.JudgeOptions(min_mistake_identification=5)) == []


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        ("", "empty"),
        ("I think it is fine.", "no JSON"),
        (json.dumps({**GOOD, "answer_revealing": "maybe"}), "answer_revealing"),
        (json.dumps({**GOOD, "guidance": 9}), "guidance"),
        (json.dumps({**GOOD, "tone": "nice"}), "tone"),
        (json.dumps({**GOOD, "guidance": None}), "guidance"),  # only mistake_identification and grounding may be null
        (json.dumps({**GOOD, "tone": "no mistake"}), "tone"),
        (json.dumps({**GOOD, "mistake_identification": 0}), "mistake_identification"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "answer_revealing"}), "answer_revealing is missing"),
        (json.dumps({**GOOD, "answer_revealing": None}), "answer_revealing"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "actionability"}), "actionability"),
    ],
)
def test_unparsable_verdicts_raise(reply: str, fragment: str) -> None:
    with pytest.raises(fj.JudgeParseError, match=fragment):
        fj.parse_verdict(reply)


def test_grounding_may_be_null_and_is_then_not_judged() -> None:
    verdict = fj.parse_verdict(json.dumps({**GOOD, "grounding": None}))
    assert verdict.scores["grounding"] is None
    assert fj.decide(verdict, fj.JudgeOptions(min_grounding=5)) == []


def codes_for(data: dict[str, Any], options: fj.JudgeOptions) -> list[str]:
    return [r["code"] for r in fj.decide(fj.parse_verdict(json.dumps({**GOOD, **data})), options)]


def test_decisions_follow_thresholds() -> None:
    options = fj.JudgeOptions(min_guidance=3, min_tone=4)
    codes = lambda data: codes_for(data, options)  # noqa: E731
    assert codes({}) == []
    assert codes({"answer_revealing": "yes_correct"}) == ["judge_reveals_answer"]
    assert codes({"answer_revealing": "reveals_right_answer"}) == ["judge_reveals_answer"]
    assert codes({"answer_revealing": "yes_incorrect"}) == ["judge_reveals_wrong_answer"]
    assert codes({"answer_revealing": "reveals_wrong_answer"}) == ["judge_reveals_wrong_answer"]
    assert codes({"guidance": 2, "tone": 3}) == ["judge_low_guidance", "judge_low_tone"]
    assert codes({"mistake_identification": 2}) == ["judge_low_mistake_identification"]
    assert codes({"mistake_identification": 1, "answer_revealing": "yes_correct", "guidance": 1, "actionability": 1,
                  "grounding": 1, "tone": 1}) == ["judge_reveals_answer", "judge_low_mistake_identification",
                                                  "judge_low_guidance", "judge_low_actionability",
                                                  "judge_low_grounding", "judge_low_tone"]
    lenient = fj.JudgeOptions(reject_wrong_answer=False)
    assert codes_for({"answer_revealing": "yes_incorrect"}, lenient) == []
    assert codes_for({"answer_revealing": "yes_correct"}, fj.JudgeOptions(reject_revealed_answer=False)) == []


@pytest.mark.parametrize("name", fj.SCORES)
def test_each_threshold_applies_to_its_own_score(name: str) -> None:
    """Default 3: "partly" (3) is accepted, "no" (2) is not; a minimum of 4 asks for "yes", 0 turns it off."""
    code = f"judge_low_{name}"
    assert codes_for({name: 3}, fj.JudgeOptions()) == []
    assert codes_for({name: 2}, fj.JudgeOptions()) == [code]
    assert codes_for({name: 3}, fj.JudgeOptions(**{f"min_{name}": 4})) == [code]
    assert codes_for({name: 1}, fj.JudgeOptions(**{f"min_{name}": 0})) == []
    with pytest.raises(ValueError, match=f"min_{name}"):
        fj.JudgeOptions(**{f"min_{name}": 6})


def test_filter_options_carry_the_mistake_identification_threshold() -> None:
    options = from_params(FilterOptions, {"judge": True, "judge_min_mistake_identification": 4}).judge
    assert options.min_mistake_identification == 4
    assert codes_for({"mistake_identification": 3}, options) == ["judge_low_mistake_identification"]


def test_prompt_file_is_data_and_validated(tmp_path: Path) -> None:
    prompt = fj.load_judge_prompt()
    messages = fj.render(prompt, convo("r", "What do you notice?"), "Linear equations: undo operations.")
    assert messages[0]["role"] == "system" and "Linear equations: undo operations." in messages[1]["content"]
    assert "[Student] " + PROBLEM in messages[1]["content"] and "x = 5" in messages[1]["content"]
    rubric = messages[0]["content"] + messages[1]["content"]
    for word in ("mistake_identification", "answer_revealing", "yes_correct", "yes_incorrect", "guidance",
                 "actionability", "tone", "grounding", "FINAL [Tutor] turn", "to some extent", "encouraging",
                 "neutral", "offensive"):
        assert word in rubric, word
    fj.parse_verdict(re.search(r"\{\"rationale.*\}", rubric).group(0))  # the example reply parses
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

    with fj.Judge(fj.JudgeOptions(max_retries=3, backoff_base_seconds=0.1), complete=complete, sleep=sleeps.append) as judge:
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
    prompts: list[str] = []

    def complete(messages):
        prompts.append(messages[-1]["content"])
        return "Looks great to me!"

    with fj.Judge(fj.JudgeOptions(parse_retries=1), complete=complete, sleep=lambda s: None) as judge:
        [outcome] = judge.judge_many([(convo("r", "What?"), None)])
    assert outcome.attempts == 2 and [r["code"] for r in outcome.reasons] == ["judge_unparsable"]
    # the retry is not the same request again (at temperature 0 it would get the same reply)
    assert prompts[1] == prompts[0] + fj.PARSE_REMINDER
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
        filtering.run(source, tmp_path / "out", FilterOptions(judge=fj.JudgeOptions(complete=complete)))
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
    result = filtering.run(source, tmp_path / "out", FilterOptions(judge=fj.JudgeOptions(complete=complete)))
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
    options = FilterOptions(judge=fj.JudgeOptions(endpoint=chat_server, model="judge-model", max_concurrency=2), chunks_path=str(chunks))
    result = filtering.run(source, tmp_path / "out", options)
    assert result.accepted == 2
    assert {r["path"] for r in _ChatServer.requests} == {"/v1/chat/completions"}
    assert all(r["body"]["model"] == "judge-model" and r["auth"] == "Bearer sk-test" for r in _ChatServer.requests)
    prompts = sorted(r["body"]["messages"][-1]["content"] for r in _ChatServer.requests)
    assert any("undo + b, then divide by a" in p for p in prompts)  # grounding: the source chunk is shown
    assert any("score grounding as null" in p for p in prompts)  # no chunk found for "missing"


def test_judge_endpoint_errors_are_one_line(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", [convo("a", "What could you do first?")])
    with pytest.raises(fj.JudgeError, match="not an http"):
        filtering.run(source, tmp_path / "out", from_params(FilterOptions, {"judge_endpoint": "localhost:8000"}))
    with pytest.raises(ValueError, match="on_error"):
        from_params(FilterOptions, {"judge": True, "judge_on_error": "ignore"})


# --------------------------------------------------------------------------------------------
# Which tutor turns are judged
# --------------------------------------------------------------------------------------------


def two_turns() -> dict[str, Any]:
    return {"id": "multi", "metadata": {"reference_answer": "x = 5"}, "messages": [
        {"role": "user", "content": PROBLEM},
        {"role": "assistant", "content": "FIRST: it is x = 5, right?"},
        {"role": "user", "content": "Is it 3x = 5?"},
        {"role": "assistant", "content": "SECOND: what do you get when you add 5 to both sides?"},
    ]}


def turn_scripted(messages) -> str:
    """A stub judge: reveals for a dialogue ending on FIRST, good (but partly actionable) for SECOND."""
    if "[Tutor] SECOND" not in messages[-1]["content"]:  # the dialogue is cut after the first tutor turn
        return json.dumps({**GOOD, "answer_revealing": "yes_correct", "mistake_identification": None, "guidance": 2,
                           "rationale": "gives x = 5"})
    return json.dumps({**GOOD, "mistake_identification": 5, "actionability": 3, "rationale": "asks about +5"})


def test_the_final_tutor_turn_is_judged_by_default() -> None:
    prompts: list[str] = []

    def complete(messages):
        prompts.append(messages[-1]["content"])
        return turn_scripted(messages)

    with fj.Judge(fj.JudgeOptions(), complete=complete) as judge:
        [outcome] = judge.judge_many([(two_turns(), None)])
    assert len(prompts) == 1 and "FIRST" in prompts[0] and "SECOND" in prompts[0]  # the whole dialogue as context
    assert outcome.reasons == [] and outcome.verdict.labels()["mistake_identification"] == "yes"


def test_graded_turns_all_judges_every_tutor_turn_and_keeps_the_worst() -> None:
    prompts: list[str] = []

    def complete(messages):
        prompts.append(messages[-1]["content"])
        return turn_scripted(messages)

    with fj.Judge(fj.JudgeOptions(graded_turns="all"), complete=complete) as judge:
        [outcome] = judge.judge_many([(two_turns(), None)])
        assert judge.stats["calls"] == 2 and judge.stats["judged"] == 1
    assert "SECOND" not in prompts[0] and "SECOND" in prompts[1]  # turn 1 is judged on the dialogue up to it
    verdict = outcome.verdict
    assert verdict.revealing == "yes_correct"
    assert verdict.scores == {"mistake_identification": 5, "guidance": 2, "actionability": 3, "grounding": 5, "tone": 5}
    assert [r["code"] for r in outcome.reasons] == ["judge_reveals_answer", "judge_low_guidance"]
    assert "tutor turn 1: gives x = 5" in verdict.rationale and "tutor turn 2: asks about +5" in verdict.rationale
    with pytest.raises(ValueError, match="graded_turns"):
        fj.JudgeOptions(graded_turns="first")


def test_graded_turns_all_fails_the_record_when_one_turn_fails() -> None:
    def complete(messages):
        return "no idea" if "SECOND" in messages[-1]["content"] else turn_scripted(messages)

    with fj.Judge(fj.JudgeOptions(graded_turns="all", parse_retries=0), complete=complete) as judge:
        [outcome] = judge.judge_many([(two_turns(), None)])
    assert outcome.verdict is None and outcome.attempts == 2
    assert [r["code"] for r in outcome.reasons] == ["judge_unparsable"] and "tutor turn 2" in outcome.reasons[0]["detail"]


# --------------------------------------------------------------------------------------------
# Agreement with human labels: socratic-sdg evaluate --judge against a fake endpoint
# --------------------------------------------------------------------------------------------

# Six labelled replies (the human labels), and what the scripted judge answers for each.
HUMAN = {
    "A": {"mistake_identification": "yes", "revealing": "no", "guidance": "yes", "actionability": "yes", "tone": "encouraging"},
    "B": {"mistake_identification": "no", "revealing": "yes_correct", "guidance": "no", "actionability": "partly", "tone": "neutral"},
    "C": {"mistake_identification": "partly", "revealing": "no", "guidance": "partly", "actionability": "yes", "tone": "encouraging"},
    "D": {"mistake_identification": "yes", "revealing": "yes_incorrect", "guidance": "no", "actionability": "no", "tone": "neutral"},
    "E": {"mistake_identification": "no", "revealing": "no", "guidance": "yes", "actionability": "yes", "tone": "offensive"},
    "F": {"mistake_identification": "yes", "revealing": "no", "guidance": "partly", "actionability": "no", "tone": "encouraging"},
}
# The judge's scores: it differs from the humans on B (mistake identification partly, actionability
# no), C (reveals, guidance yes), D (reveals the right answer, tone encouraging), E (no mistake to
# identify: null, tone neutral).
SCRIPTED = {
    "A": {"mistake_identification": 5, "answer_revealing": "no", "guidance": 4, "actionability": 4, "tone": 5},
    "B": {"mistake_identification": 3, "answer_revealing": "yes_correct", "guidance": 2, "actionability": 1, "tone": 3},
    "C": {"mistake_identification": 3, "answer_revealing": "yes_correct", "guidance": 5, "actionability": 4, "tone": 4},
    "D": {"mistake_identification": 4, "answer_revealing": "yes_correct", "guidance": 1, "actionability": 2, "tone": 5},
    "E": {"mistake_identification": None, "answer_revealing": "no", "guidance": 4, "actionability": 5, "tone": 3},
    "F": {"mistake_identification": 4, "answer_revealing": "no", "guidance": 3, "actionability": 2, "tone": 4},
}
_WORDS = {"yes": "Yes", "partly": "To some extent", "no": "No", "encouraging": "Encouraging", "neutral": "Neutral",
          "offensive": "Offensive", "yes_correct": "Yes (and the revealed answer is correct)",
          "yes_incorrect": "Yes (but the revealed answer is incorrect)"}


class ScriptedJudge(FakeOpenAI):
    """The project's fake endpoint, answering each judge prompt with the verdict scripted for the reply
    it shows ("Reply X: ..."), or unparsable text for reply G."""

    def __init__(self, verdicts: dict[str, str]):
        super().__init__(models=["judge-model"])
        self.verdicts = verdicts

    def reply_for(self, messages: list[dict]) -> str:
        final = messages[-1]["content"].rsplit("[Tutor] Reply ", 1)[1]
        return self.verdicts.get(final[0], "I cannot grade this, sorry.")


def labelled_set(path: Path, with_unparsable: bool = False) -> Path:
    rows = []
    for key, labels in HUMAN.items():
        rows.append({"id": f"d{key}", "tutor": "model-1" if key in "ABC" else "model-2",
                     "messages": [{"role": "user", "content": f"I solved 3x - 5 = 10 and got x = {ord(key)}. Is that right?"},
                                  {"role": "assistant", "content": f"Reply {key}: what do you get when you add 5 to both sides?"}],
                     "metadata": {"reference_answer": "x = 5"}, "labels": labels})
    if with_unparsable:
        rows.append({"id": "dG", "tutor": "model-2", "metadata": {"reference_answer": "x = 5"},
                     "messages": [{"role": "user", "content": "I got x = 3."},
                                  {"role": "assistant", "content": "Reply G: which step would you check first?"}],
                     "labels": {"mistake_identification": "yes", "revealing": "no"}})
    return write(path, rows)


def run_evaluate(tmp_path: Path, verdicts: dict[str, str], capsys, with_unparsable: bool = False) -> tuple[dict, str]:
    from socratic_sdg import cli

    source = labelled_set(tmp_path / "labelled.jsonl", with_unparsable)
    with ScriptedJudge(verdicts) as server:
        code = cli.main(["evaluate", "--input", str(source), "--output-dir", str(tmp_path / "eval"),
                         "--judge-endpoint", server.api_base, "--judge-model", "judge-model",
                         "--judge-max-concurrency", "3"])
        prompts = list(server.prompts)
    assert code == 0
    assert len(prompts) == len(HUMAN) + (2 if with_unparsable else 0)  # one request per reply (+1 parse retry)
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    return report, capsys.readouterr().out


def test_evaluate_a_judge_that_always_agrees(tmp_path: Path, capsys) -> None:
    # the human labels themselves, in the annotation's words and key names
    verdicts = {key: json.dumps({"Mistake_Identification": _WORDS[h["mistake_identification"]],
                                 "Revealing_of_the_Answer": _WORDS[h["revealing"]],
                                 "Providing_Guidance": _WORDS[h["guidance"]], "Actionability": _WORDS[h["actionability"]],
                                 "Tutor_Tone": _WORDS[h["tone"]], "rationale": "as annotated"})
                for key, h in HUMAN.items()}
    report, out = run_evaluate(tmp_path, verdicts, capsys)
    judge = report["judge"]
    assert judge["judged"] == 6 and judge["replies"] == 6 and judge["stats"]["unparsable"] == 0
    for dimension in fj.LABEL_DIMENSIONS:
        assert judge[dimension] == {"pairs": 6, "macro_f1": 1.0, "f1": 1.0, "binary_macro_f1": 1.0, "kappa": 1.0,
                                    "binary_kappa": 1.0}, dimension
    assert "judge agreement" in out and "| mistake_identification | 6 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |" in out


def test_evaluate_agreement_figures_match_a_hand_count(tmp_path: Path, capsys) -> None:
    verdicts = {key: json.dumps({"rationale": f"reply {key}", **v}) for key, v in SCRIPTED.items()}
    report, out = run_evaluate(tmp_path, verdicts, capsys, with_unparsable=True)
    judge = report["judge"]
    assert judge["judged"] == 6 and judge["replies"] == 7  # G: unparsable twice (one parse retry), not paired
    assert judge["stats"] == {"calls": 8, "judged": 6, "retries": 1, "failures": 1, "unparsable": 1, "errors": 0}
    # Hand count, (human, judge) pairs; F1 of a label = 2tp / (2tp + fp + fn); kappa = (po - pe) / (1 - pe).
    expected = {
        # A yes/yes, B no/partly, C partly/partly, D yes/yes, F yes/yes (E: null, not paired).
        # F1 yes 1, partly 2/3, no 0 -> macro 5/9; po 4/5, pe (3*3 + 1*2 + 1*0)/25 = 11/25 -> kappa 9/14.
        # Binary (yes / not yes): all five agree -> 1, 1.
        "mistake_identification": {"pairs": 5, "macro_f1": 5 / 9, "f1": 1.0, "binary_macro_f1": 1.0,
                                   "kappa": 9 / 14, "binary_kappa": 1.0},
        # A no/no, B yc/yc, C no/yc, D yi/yc, E no/no, F no/no. F1 no 6/7, yc 1/2, yi 0 -> 19/42;
        # po 4/6, pe (4*3 + 1*3 + 1*0)/36 = 15/36 -> 3/7. Binary (no / yes): F1 yes 4/5, no 6/7;
        # po 5/6, pe (4*3 + 2*3)/36 = 1/2 -> 2/3.
        "revealing": {"pairs": 6, "macro_f1": 19 / 42, "f1": 4 / 5, "binary_macro_f1": 29 / 35,
                      "kappa": 3 / 7, "binary_kappa": 2 / 3},
        # A yes/yes, B no/no, C partly/yes, D no/no, E yes/yes, F partly/partly. F1 yes 4/5, no 1,
        # partly 2/3 -> 37/45; po 5/6, pe (2*3 + 2*2 + 2*1)/36 = 1/3 -> 3/4.
        # Binary (yes / not yes): only C disagrees; F1 yes 4/5, not 6/7 -> 29/35; po 5/6, pe 1/2 -> 2/3.
        "guidance": {"pairs": 6, "macro_f1": 37 / 45, "f1": 4 / 5, "binary_macro_f1": 29 / 35,
                     "kappa": 3 / 4, "binary_kappa": 2 / 3},
        # A yes/yes, B partly/no, C yes/yes, D no/no, E yes/yes, F no/no. F1 yes 1, no 4/5, partly 0
        # -> 3/5; po 5/6, pe (3*3 + 2*3 + 1*0)/36 = 5/12 -> 5/7.
        # Binary (yes / not yes): all six agree -> 1, 1.
        "actionability": {"pairs": 6, "macro_f1": 3 / 5, "f1": 1.0, "binary_macro_f1": 1.0,
                          "kappa": 5 / 7, "binary_kappa": 1.0},
        # A enc/enc, B neu/neu, C enc/enc, D neu/enc, E off/neu, F enc/enc. F1 enc 6/7, neu 1/2, off 0
        # -> 19/42; po 4/6, pe (3*4 + 2*2 + 1*0)/36 = 4/9 -> 2/5.
        # Binary (encouraging / not): only D disagrees; F1 6/7 and 4/5 -> 29/35; po 5/6, pe 1/2 -> 2/3.
        "tone": {"pairs": 6, "macro_f1": 19 / 42, "f1": 6 / 7, "binary_macro_f1": 29 / 35,
                 "kappa": 2 / 5, "binary_kappa": 2 / 3},
    }
    for dimension, figures in expected.items():
        assert judge[dimension] == {k: v if k == "pairs" else round(v, 4) for k, v in figures.items()}, dimension
    assert "| revealing | 6 | 0.452 | 0.800 | 0.829 | 0.429 | 0.667 |" in out
    # Default thresholds in the "filter + judge" decision: B, C, D reveal, F is not actionable (2 < 3),
    # G is unparsable: A and E (the two labelled good) are kept.
    [with_judge] = [d for d in report["decisions"] if d["name"] == "filter + judge"]
    assert with_judge["overall"]["replies"] == 7 and with_judge["overall"]["accepted"] == 2
    assert with_judge["overall"]["good_recall"] == 1.0 and with_judge["overall"]["bad_rejected"] == 1.0


class NoSchemaJudge(ScriptedJudge):
    """A server without JSON-schema output: 400 on any request that asks for it."""

    async def _chat(self, request):
        from aiohttp import web

        if "response_format" in json.loads(await request.read() or b"{}"):
            self.refused = getattr(self, "refused", 0) + 1
            return web.json_response({"error": {"message": "response_format is not supported"}}, status=400)
        return await super()._chat(request)


def test_the_judge_asks_for_its_json_schema_and_falls_back_when_the_server_refuses_it() -> None:
    verdict = json.dumps({"rationale": "ok", "mistake_identification": 4, "answer_revealing": "no", "guidance": 4,
                          "actionability": 4, "tone": 4, "grounding": None})
    record = {"messages": [{"role": "user", "content": "I got x = 3."},
                           {"role": "assistant", "content": "Reply A: what do you get when you add 5 to both sides?"}]}
    with ScriptedJudge({"A": verdict}) as server:
        complete = fj.openai_complete(fj.JudgeOptions(endpoint=server.api_base, model="judge-model"))
        assert fj.parse_verdict(complete(fj.render(fj.load_judge_prompt(), record, None))).labels()["guidance"] == "yes"
        body = server.calls[-1][1]
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"] == fj.VERDICT_SCHEMA
    with NoSchemaJudge({"A": verdict}) as server:
        complete = fj.openai_complete(fj.JudgeOptions(endpoint=server.api_base, model="judge-model"))
        prompt = fj.render(fj.load_judge_prompt(), record, None)
        assert fj.parse_verdict(complete(prompt)).labels()["revealing"] == "no"
        complete(prompt)  # the refusal is remembered: no second 400
        assert server.refused == 1 and "response_format" not in server.calls[-1][1]


def test_the_schema_accepts_what_the_rubric_asks_for() -> None:
    import jsonschema

    reply = {"rationale": "r", "mistake_identification": None, "answer_revealing": "yes_correct", "guidance": 2,
             "actionability": 3, "tone": 5, "grounding": 4}
    jsonschema.validate(reply, fj.VERDICT_SCHEMA)
    assert fj.parse_verdict(json.dumps(reply)).labels()["revealing"] == "yes_correct"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**reply, "guidance": 6}, fj.VERDICT_SCHEMA)


# --------------------------------------------------------------------------------------------
# Secrets never reach a judge error text (issue 13)
# --------------------------------------------------------------------------------------------

JUDGE_SECRET = "judge-KEY-987654321-zyx"  # matches no credential pattern: only the configured key's redaction hides it


class Echoing(Exception):
    """A client error whose text echoes the request's headers, as some proxies do."""

    def __init__(self, status: int | None):
        super().__init__(f"Error code: {status} - upstream said: Authorization: Bearer {JUDGE_SECRET}; key={JUDGE_SECRET}")
        self.status_code = status


@pytest.mark.parametrize("status", [500, 404, None])
def test_judge_errors_never_hold_the_api_key(monkeypatch, status) -> None:
    monkeypatch.setenv("LLM_API_KEY", JUDGE_SECRET)

    def complete(messages):
        raise Echoing(status)

    with fj.Judge(fj.JudgeOptions(max_retries=0, max_consecutive_failures=1), complete=complete, sleep=lambda s: None) as judge:
        try:
            outcomes = judge.judge_many([(convo("r", "What?"), None)])
            text = json.dumps([o.__dict__ for o in outcomes], default=str)
        except fj.JudgeError as exc:  # the breaker (or a 404) stops the run with one line
            text = str(exc)
    assert "***" in text and JUDGE_SECRET not in text


def test_an_unparsable_judge_reply_echoing_the_key_is_redacted(monkeypatch) -> None:
    monkeypatch.setenv("LLM_API_KEY", JUDGE_SECRET)
    with fj.Judge(fj.JudgeOptions(parse_retries=0), complete=lambda m: f"Bearer {JUDGE_SECRET}", sleep=lambda s: None) as judge:
        [outcome] = judge.judge_many([(convo("r", "What?"), None)])
    assert outcome.reasons and JUDGE_SECRET not in json.dumps(outcome.reasons) + str(outcome.error)


def test_a_judge_endpoint_echoing_the_authorization_header_leaks_no_key(monkeypatch) -> None:
    from socratic_sdg.testing.fake_openai import Fault

    monkeypatch.delenv("LLM_API_KEY", raising=False)  # the key only in the options: redacted all the same
    with FakeOpenAI() as server:
        server.faults = [Fault("", "echo_headers", 500)]
        options = fj.JudgeOptions(endpoint=server.api_base, model="fake-model", api_key=JUDGE_SECRET, max_retries=0, max_consecutive_failures=99)
        with fj.Judge(options, sleep=lambda s: None) as judge:
            [outcome] = judge.judge_many([(convo("r", "What?"), None)])
        assert server.faulted["echo_headers"] >= 1
    text = json.dumps(outcome.reasons) + str(outcome.error) + json.dumps(outcome.quality)
    assert "Bearer ***" in text and JUDGE_SECRET[:12] not in text  # not even the start of it, before a cut
