"""socratic-sdg evaluate: loaders, figures, report, and the filter's floors on human-labelled replies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from socratic_sdg import cli, evaluate
from socratic_sdg import filtering

MRBENCH = Path(__file__).resolve().parents[1] / "samples" / "tutor-eval" / "mrbench-dev.json"


def test_transcripts_become_alternating_dialogues_that_start_with_the_student():
    history = ("Tutor: Hi, could you solve this? The question is: What is 3 + 4?\u00a0\n\u00a0Student: 8\n"
               "Tutor: How did you get it?\nTutor: Show me.\nStudent: I added.\nTutor: I counted on my fingers.")
    messages = evaluate.dialogue_messages(history)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "What is 3 + 4?\n8"  # the opening tutor turn poses the problem
    assert messages[1]["content"] == "How did you get it?\nShow me."  # one speaker's turns joined
    # A transcript ending on a tutor turn has it mislabelled: the labelled reply answers the student.
    assert messages[2]["content"] == "I added.\nI counted on my fingers."


def test_reference_is_the_last_line_of_the_worked_solution():
    assert evaluate.reference_from_solution("5,000 + 1,000 = 6,000 steps.\n 2000\u00a0") == "2000"
    assert evaluate.reference_from_solution("Not Available") is None
    assert evaluate.reference_from_solution(None) is None


def test_mrbench_loads_every_reply_as_a_well_formed_record():
    replies = evaluate.load(MRBENCH)
    assert len(replies) == 766
    assert {r.tutor for r in replies} >= {"Expert", "GPT4", "Gemini", "Llama31405B", "Llama318B", "Mistral", "Phi3", "Sonnet"}
    rules = filtering.load_rules()
    options = filtering.FilterOptions(graded_turns="last", check_rules=False, check_leakage=False,
                                           check_format=False, dedup=False)
    malformed = [r.id for r in replies if filtering.check_conversation(r.record, rules, options)
                 and r.reply.strip()]
    assert malformed == []  # the structure (alternating roles, ending on the reply) always holds
    with_reference = [r for r in replies if r.record["metadata"].get("reference_answer")]
    assert with_reference and all("reference_solution" in r.record["metadata"] for r in with_reference)
    assert {r.labels["revealing"] for r in replies} == {"no", "yes_correct", "yes_incorrect"}
    assert {r.labels["guidance"] for r in replies} == {"yes", "partly", "no"}


def _reply(labels, reply="What do you notice?", tutor="t"):
    record = {"id": reply, "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": reply}],
              "metadata": {}}
    return evaluate.LabelledReply(reply, tutor, record, {k: evaluate.normalise_label(k, v) for k, v in labels.items()})


def test_headline_figures_count_what_they_say():
    good = {"revealing": "No", "guidance": "Yes", "actionability": "Yes", "mistake_identification": "Yes"}
    reveals = {"revealing": "Yes (and the answer is correct)", "guidance": "Yes", "actionability": "Yes",
               "mistake_identification": "Yes"}
    vague = {"revealing": "No", "guidance": "To some extent", "actionability": "Yes", "mistake_identification": "No"}
    replies = [_reply(good, "a?"), _reply(good, "b."), _reply(reveals, "c?"), _reply(vague, "d?")]
    figures = evaluate.headline(replies, [True, False, True, False])
    assert figures["accepted"] == 2
    assert figures["accepted_reveal_share"] == 0.5
    assert figures["accepted_good_share"] == 0.5
    assert figures["accepted_identifies_mistake_share"] == 1.0
    assert figures["good_recall"] == 0.5
    assert figures["good_question_recall"] == 1.0  # "a?" kept; "b." does not end in a question
    assert figures["bad_rejected"] == 0.5  # of c and d, d was rejected
    assert figures["balanced_accuracy"] == 0.5
    table = evaluate.confusion(replies, [True, False, True, False])
    assert table["guidance"] == {"partly": {"accepted": 0, "rejected": 1}, "yes": {"accepted": 2, "rejected": 1}}


def test_teacher_moves_give_a_balanced_accuracy_of_telling_rejected_and_asking_kept():
    replies = [_reply({"move": m}, f"{i}") for i, m in enumerate(["telling", "telling", "focus", "probing", "generic"])]
    moves = evaluate.headline(replies, [False, True, True, False, True])["moves"]
    assert moves == {"asking_kept": 0.5, "telling_rejected": 0.5, "balanced_accuracy": 0.5}


def test_agreement_scores():
    assert evaluate.cohen_kappa([("a", "a"), ("a", "b"), ("b", "b"), ("b", "b")]) == 0.5
    assert evaluate.cohen_kappa([("a", "a"), ("b", "b")]) == 1.0
    scores = evaluate.f1_scores([("yes", "yes"), ("yes", "no"), ("no", "no"), ("no", "yes")], "yes")
    assert scores == {"f1": 0.5, "macro_f1": 0.5}


def test_labelled_jsonl_loads_and_bad_input_is_one_sentence(tmp_path):
    good = tmp_path / "labelled.jsonl"
    good.write_text(json.dumps({"id": "r1", "tutor": "me", "messages": [{"role": "user", "content": "x + 2 = 5?"},
                                                                          {"role": "assistant", "content": "What undoes + 2?"}],
                                "labels": {"revealing": "No", "guidance": "yes", "move": "Focus"}}) + "\n")
    (reply,) = evaluate.load(good)
    assert reply.labels == {"revealing": "no", "guidance": "yes", "move": "focus"} and reply.good
    bad_dimension = tmp_path / "typo.jsonl"
    bad_dimension.write_text(json.dumps({"messages": [], "labels": {"guidence": "yes"}}) + "\n")
    with pytest.raises(evaluate.EvaluateError, match=r"typo.jsonl:1: unknown label dimension\(s\) guidence"):
        evaluate.load(bad_dimension)
    (tmp_path / "broken.json").write_text("[{]")
    with pytest.raises(evaluate.EvaluateError, match="broken.json is not valid JSON"):
        evaluate.load(tmp_path / "broken.json")


def test_cli_writes_the_report_and_exits_2_on_a_missing_file(tmp_path, capsys):
    assert cli.main(["evaluate", "--input", str(MRBENCH), "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| socratic-sdg filter |" in out and "| workshop filter |" in out
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert [d["name"] for d in report["decisions"]] == ["accept everything", "workshop filter", "socratic-sdg filter"]
    ours = report["decisions"][-1]
    kept = sum(cell["accepted"] for cell in ours["confusion"]["revealing"].values())
    assert kept == ours["overall"]["accepted"] == sum(t["accepted"] for t in ours["per_tutor"].values())
    assert "## Per tutor" in (tmp_path / "evaluation.md").read_text()
    assert cli.main(["evaluate", "--input", str(tmp_path / "nope.json"), "--output-dir", str(tmp_path)]) == 2
    assert "nope.json does not exist" in capsys.readouterr().err


def test_on_human_labelled_replies_the_filter_keeps_what_people_call_good():
    """Floors on the MRBench dev half (figures in README); a filter change that drops below fails."""
    replies = evaluate.load(MRBENCH)
    options = filtering.FilterOptions(dedup=False, graded_turns="last")
    ours = evaluate.run_decision("filter", replies, evaluate.filter_decide(options)).overall
    workshop = evaluate.run_decision("workshop", replies, evaluate.workshop_decide).overall
    everything = evaluate.run_decision("all", replies, evaluate.accept_all).overall
    assert ours["accepted_reveal_share"] <= 0.01 < workshop["accepted_reveal_share"] < everything["accepted_reveal_share"]
    assert ours["accepted_good_share"] >= 0.80 > workshop["accepted_good_share"]
    assert ours["good_question_recall"] >= 0.95
    assert ours["accepted"] >= 150
