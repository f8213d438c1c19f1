"""Tests for the quality filter stage (socratic_sdg.filtering): format and rules layers, run() and files.

The rules are the product here: each leak case below is a way a generator really gives the answer
away, and each guiding case is a reply that must survive even though it mentions numbers or the
equation from the problem. A change to default_rules.yaml that breaks either list is a regression.
The leakage, dedup and judge layers have their own files (test_filter_leakage.py, ...), and the
labelled evaluation set is scored in test_filter_eval.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from socratic_sdg import filtering
from socratic_sdg.filtering import FilterOptions

PROBLEM = "Solve 2x + 3 = 11 for x. I'm stuck."


@pytest.fixture(scope="module")
def rules() -> filtering.Rules:
    return filtering.load_rules(None)


@pytest.fixture
def opts() -> FilterOptions:
    return FilterOptions()


def dialogue(*turns: str, system: str | None = None, **extra: Any) -> dict[str, Any]:
    """A record whose turns alternate user/assistant, starting with user."""
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(turns)]
    return {"id": extra.pop("id", "r1"), "messages": messages, **extra}


def codes(record: dict[str, Any], rules: filtering.Rules, opts: FilterOptions) -> set[str]:
    return {reason["code"] for reason in filtering.check_conversation(record, rules, opts)}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------
# Rules layer: leaks are rejected with the right code
# --------------------------------------------------------------------------------------------

LEAKS = [
    ("The answer is 4, does that make sense?", "states_answer"),
    ("I think the answer is 4. What do you think?", "states_answer"),
    ("You're right, the answer is four. Can you explain why?", "states_answer"),
    ("The answer to 2x + 3 = 11 is x = 4. Can you see why?", "states_answer"),
    ("The correct answer would be -3. How could you check that?", "states_answer"),
    ("Answer: 4. Does that make sense to you now?", "states_answer"),
    ("x = 4 is the answer. Can you see why that works?", "states_answer"),
    ("The solution is x = 4. How could you check it?", "states_solution"),
    ("The result is 12. What could you do next with it?", "states_result"),
    ("Great, that's 4. Can you see why it works?", "states_result"),
    ("The final answer is 7. Do you agree with that?", "final_answer"),
    ("So the result is $\\boxed{4}$. Any questions about it?", "boxed_answer"),
    ("So x = 4. Can you check it in the equation?", "concludes_value"),
    ("Therefore, x = 5. What do you think about that?", "concludes_value"),
    ("So we have 2x = 8, which means x = 4. Do you follow?", "concludes_value"),
    ("x equals 5. Why does that work, do you think?", "variable_equals"),
    ("Great! The missing number is 7. Why do you think that is?", "variable_equals"),
    ("Thus the value of x must be 4. How would you check?", "concludes_value"),
    ("Nice. Then x = 4. Can you plug it back in to check?", "bare_solution"),
    ("Careful with the signs: x = 4, right?", "bare_solution"),
    ("You get x = 4 after dividing. Does that make sense?", "you_get_value"),
    ("You'll end up with 4 when you divide. Can you try it?", "you_get_value"),
    ("Divide both sides by 2 to get x = 4. Does that help?", "you_get_value"),
    ("Subtract 3 and divide by 2, which gives us x = 4. Do you see why?", "which_gives"),
    ("Dividing both sides by 2 gives x = 4. Can you verify that?", "which_gives"),
    ("Good: 6 × 7 = 42. What could you try next?", "ends_with_result"),
    ("Remember that 12 divided by 3 is 4. What does that tell you?", "ends_with_result"),
    (
        "Step 1: Subtract 3 from both sides to get 2x = 8. Step 2: Divide by 2 to get x = 4. Does that make sense?",
        "step_walkthrough",
    ),
    ("1. Subtract 3: 2x = 8\n2. Divide by 2: x = 4\nDoes that make sense?", "step_walkthrough"),
    ("First subtract 3 from both sides, then divide by 2, and you have x = 4. Can you check it?", "step_walkthrough"),
    ("Here's how to solve it: subtract 3, then divide by 2. Got it?", "here_is_how"),
    ("Let me solve this for you quickly. Ready to follow along?", "here_is_how"),
    ("I'll just have to find the answer for you. Do you have time for a more detailed answer?", "here_is_how"),
    ("Let me give you the solution first. Shall we then see why it works?", "here_is_how"),
    ("Plug in 3 and you get 12. What do you notice about that?", "plug_in_result"),
    ("Since 2(4) + 3 = 11, it works. What do you think?", "plug_in_result"),
]


@pytest.mark.parametrize(("reply", "code"), LEAKS, ids=[code + ":" + reply[:30] for reply, code in LEAKS])
def test_leak_is_rejected_with_its_code(reply: str, code: str, rules, opts) -> None:
    reasons = filtering.check_conversation(dialogue(PROBLEM, reply), rules, opts)
    assert code in {reason["code"] for reason in reasons}
    # The detail quotes the offending text so a reviewer can see why without re-running anything.
    detail = next(reason["detail"] for reason in reasons if reason["code"] == code)
    assert "message 2 (assistant)" in detail and '"' in detail


def test_leak_ending_with_a_question_is_still_a_leak(rules, opts) -> None:
    record = dialogue(PROBLEM, "The answer is 4, does that make sense?")
    assert filtering.ends_with_question(record["messages"][-1]["content"])
    # The wording (rules), the value x = 4 solved from the student's equation (leakage), and the only
    # question being a comprehension check: three independent reasons, each explained.
    assert codes(record, rules, opts) == {"states_answer", "leaks_answer_value", "no_guiding_question"}
    rules_only = FilterOptions(check_leakage=False)
    assert "states_answer" in codes(record, rules, rules_only)


# --------------------------------------------------------------------------------------------
# Rules layer: guiding replies are accepted, even when they mention numbers from the problem
# --------------------------------------------------------------------------------------------

GUIDING = [
    "What do you get when you divide both sides by 2?",
    "What is x + 3 = 7 asking you to find?",
    "What do you notice about the 3 in 2x + 3 = 11?",
    "If you subtract 3 from both sides of 2x + 3 = 11, what happens?",
    "You have 12 apples and 3 friends. How could you share them equally?",
    "Great start! You found that 2x = 8. What could you do next to get x by itself?",
    "Good, you got 2x = 8. Now what could you do to both sides?",
    "What happens if x = 0? Does the equation still balance?",
    "What if x equals 5? Would both sides be equal?",
    "How could you get 12 using groups of 3?",
    "Do you think the answer is positive or negative?",
    "What do you think the answer to 12 ÷ 3 is?",
    "Is your answer to x + 3 = 7 reasonable?",
    "What operation would undo the + 3 in 2x + 3 = 11?",
    "Step 1 is to look at the equation. Step 2: what could you do to both sides of 2x + 3 = 11?",
    "Here's a hint: what do you notice about the 3?",
    "Why do you think we divide by 2 here?",
    "The equation says 2x + 3 = 11. What is being done to x first?",
    "If you plug in 3, what do you get?",
    "Does subtracting 3 give you 2x = 8? Why or why not?",
    "The problem gives you 24 cookies shared among 6 kids. What operation would tell you how many each kid gets?",
    "You said x = 5. What do you get when you put 5 into 2x + 3?",
    "Not quite. If x were 5, would 2(5) + 3 equal 11?",
    "In $2x + 3 = 11$, what is being done to $x$ first?",
    "What is the value of x that makes both sides equal?",
    "Let me know: how will you find the answer to 2x + 3 = 11?",
]

# Guiding in wording (the rules layer passes them), but they offer the correct value x = 4, which the
# leakage layer finds by solving the student's own equation: a careful teacher calls that a leak.
OFFERS_THE_ANSWER = [
    "Which of 3, 4, or 5 is the answer, and how could you check?",
    "Try plugging in 4 and see whether it works. What happens?",
]


@pytest.mark.parametrize("reply", GUIDING)
def test_guiding_reply_is_accepted(reply: str, rules, opts) -> None:
    assert filtering.check_conversation(dialogue(PROBLEM, reply), rules, opts) == []


@pytest.mark.parametrize("reply", OFFERS_THE_ANSWER)
def test_offering_the_correct_value_is_a_leak(reply: str, rules, opts) -> None:
    assert filtering.check_conversation(dialogue(PROBLEM, reply), rules, FilterOptions(check_leakage=False)) == []
    assert codes(dialogue(PROBLEM, reply), rules, opts) == {"leaks_answer_value"}


def test_numbers_unrelated_to_the_answer_pass(rules, opts) -> None:
    reply = "Look at the pattern 2, 4, 6, 8. What do you notice about how each number changes?"
    assert codes(dialogue("What comes next in 2, 4, 6, 8? I need to find the rule.", reply), rules, opts) == set()


def test_quality_summary_of_accepted_reply(tmp_path: Path) -> None:
    reply = "What do you notice about 2x + 3 = 11? How could you undo the + 3 first?"
    source = write_lines(tmp_path / "in.jsonl", [json.dumps(dialogue(PROBLEM, reply, metadata={"source": "ch1"}))])
    result = filtering.run(source, tmp_path / "out", FilterOptions())
    [record] = read_lines(Path(result.accepted_path))
    assert record["metadata"]["source"] == "ch1"  # original metadata kept
    quality = record["metadata"]["quality"]
    assert quality["ends_with_question"] is True
    assert set(quality["green_flags"]) >= {"notice_prompt", "how_could_you"}
    assert quality["green_score"] == len(quality["green_flags"])
    assert "drop_reasons" not in record["metadata"]


def test_reply_without_a_question_is_rejected(rules, opts) -> None:
    record = dialogue(PROBLEM, "Think about what undoes adding 3 to a number.")
    reasons = filtering.check_conversation(record, rules, opts)
    assert [reason["code"] for reason in reasons] == ["no_guiding_question"]
    relaxed = FilterOptions(require_question=False)
    assert filtering.check_conversation(record, rules, relaxed) == []


def test_question_mark_behind_closing_quotes_or_latex_counts() -> None:
    assert filtering.ends_with_question('What would "balance" mean here?"  ')
    assert filtering.ends_with_question("What is $x$ here?$")
    assert filtering.ends_with_question("(What could you try first?)")
    assert not filtering.ends_with_question("What? Now divide by 2.")


def test_min_green_score(rules) -> None:
    plain = dialogue(PROBLEM, "Is 2 the number in front of x in this equation?")
    guided = dialogue(PROBLEM, "What do you notice about the 2? What operation would undo it?")
    strict = FilterOptions(min_green_score=2)
    assert codes(plain, rules, strict) == {"low_green_score"}
    assert codes(guided, rules, strict) == set()


# --------------------------------------------------------------------------------------------
# Multi-turn
# --------------------------------------------------------------------------------------------


def test_leak_only_in_last_tutor_turn_rejects_conversation(rules, opts) -> None:
    record = dialogue(
        PROBLEM,
        "What do you notice about the + 3? How could you undo it?",
        "I subtract 3 from both sides and get 2x = 8.",
        "Exactly, and dividing by 2 you get x = 4. Does that make sense?",
        system="You are a patient Socratic math tutor.",
    )
    reasons = filtering.check_conversation(record, rules, opts)
    assert "you_get_value" in {reason["code"] for reason in reasons}
    assert any("message 5 (assistant)" in reason["detail"] for reason in reasons)


def test_leak_in_earlier_tutor_turn_rejects_conversation(rules, opts) -> None:
    record = dialogue(
        PROBLEM,
        "The answer is 4. Can you see why?",
        "Not really.",
        "What happens when you put 4 in place of x?",
    )
    assert codes(record, rules, opts) == {"states_answer", "leaks_answer_value"}


def test_clean_multi_turn_with_system_prompt_is_accepted(rules, opts) -> None:
    record = dialogue(
        PROBLEM,
        "What do you notice about the + 3? How could you undo it?",
        "Subtract 3? Then it's 2x = 8.",
        "Nice work getting 2x = 8! What is being done to x now, and how could you undo that?",
        system="You are a patient Socratic math tutor.",
    )
    assert filtering.check_conversation(record, rules, opts) == []


# --------------------------------------------------------------------------------------------
# Format layer
# --------------------------------------------------------------------------------------------

GOOD_REPLY = "What do you notice about the + 3? How could you undo it?"


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([{"role": "assistant", "content": GOOD_REPLY}], "bad_roles"),
        ([{"role": "user", "content": PROBLEM}], "bad_roles"),
        ([{"role": "user", "content": PROBLEM}, {"role": "user", "content": "hello?"}], "bad_roles"),
        (
            [
                {"role": "user", "content": PROBLEM},
                {"role": "system", "content": "be nice"},
                {"role": "assistant", "content": GOOD_REPLY},
            ],
            "bad_roles",
        ),
        ([{"role": "student", "content": PROBLEM}, {"role": "assistant", "content": GOOD_REPLY}], "bad_roles"),
        ([{"role": "system", "content": "You are a tutor."}], "bad_roles"),
        ([{"role": "user", "content": "   "}, {"role": "assistant", "content": GOOD_REPLY}], "empty_turn"),
        ([{"role": "user", "content": PROBLEM}, {"role": "assistant", "content": ""}], "empty_turn"),
        ([{"role": "user", "content": PROBLEM}, {"role": "assistant", "content": 42}], "bad_message"),
        ([{"role": "user"}, {"role": "assistant", "content": GOOD_REPLY}], "bad_message"),
        (["hello", {"role": "assistant", "content": GOOD_REPLY}], "bad_message"),
        ([], "no_messages"),
    ],
)
def test_malformed_structure(messages: list[Any], code: str, rules, opts) -> None:
    assert code in codes({"id": "m", "messages": messages}, rules, opts)


def test_missing_or_non_list_messages(rules, opts) -> None:
    assert codes({"id": "m"}, rules, opts) == {"no_messages"}
    assert codes({"id": "m", "messages": "hi"}, rules, opts) == {"no_messages"}


def test_non_object_metadata_is_rejected_but_kept(tmp_path: Path) -> None:
    record = dialogue(PROBLEM, GOOD_REPLY, metadata=["not", "a", "dict"])
    source = write_lines(tmp_path / "in.jsonl", [json.dumps(record)])
    result = filtering.run(source, tmp_path / "out", FilterOptions())
    [rejected] = read_lines(Path(result.rejected_path))
    assert rejected["metadata"]["original_metadata"] == ["not", "a", "dict"]
    assert rejected["metadata"]["drop_reasons"][0]["code"] == "bad_metadata"


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ("What do you notice about {{ question }}? How could you start?", "template_leftover"),
        ("[QUESTION] What do you notice about the 3? How could you undo it?", "template_leftover"),
        ("What do you notice about the 3? How could you undo it? [END]", "template_leftover"),
        ("<|im_start|>assistant\nWhat do you notice about the 3 in the equation?", "template_leftover"),
        ("### Tutor\nWhat do you notice about the 3 in the equation?", "template_leftover"),
        ("What do you notice? Fill in {STUDENT_NAME} later. How could you start?", "template_leftover"),
        ("Tutor: What do you notice about the 3 in the equation?", "role_tag"),
        ("**Assistant:** What do you notice about the 3 in the equation?", "role_tag"),
        ("What do you notice about the 3?\nStudent: I see it is added.\nTutor: Good, and then?", "role_tag"),
        ("As an AI language model, I prefer to ask: what do you notice about the 3?", "refusal"),
        ("I'm sorry, but I can't help with homework. What else would you like to talk about?", "refusal"),
        ("I cannot help with that request. Is there anything else you want?", "refusal"),
    ],
)
def test_format_patterns(reply: str, code: str, rules, opts) -> None:
    assert code in codes(dialogue(PROBLEM, reply), rules, opts)


def test_template_leftover_in_user_turn_is_caught(rules, opts) -> None:
    assert codes(dialogue("{{problem_text}}", GOOD_REPLY), rules, opts) == {"template_leftover"}


def test_latex_braces_are_not_template_leftovers(rules, opts) -> None:
    reply = "What do you notice about \\frac{x}{2} and \\text{LCM}? How could you use \\sqrt{17} here?"
    assert codes(dialogue(PROBLEM, reply), rules, opts) == set()
    # sqrt(16) is 4, the answer: a leak, not a template leftover.
    assert codes(dialogue(PROBLEM, reply.replace("17", "16")), rules, opts) == {"leaks_answer_value"}


def test_turn_length_bounds(rules) -> None:
    opts = FilterOptions(min_turn_chars=20, max_turn_chars=200)
    assert codes(dialogue(PROBLEM, "Why?"), rules, opts) == {"turn_too_short"}
    long_reply = "What do you notice about the numbers here? " * 10
    assert codes(dialogue(PROBLEM, long_reply), rules, opts) == {"turn_too_long"}
    # Bounds apply to the tutor only: a terse student is normal.
    assert codes(dialogue("help?", GOOD_REPLY), rules, opts) == set()


def test_filter_options_are_validated() -> None:
    with pytest.raises(ValueError, match="min_turn_chars"):
        FilterOptions(min_turn_chars=50, max_turn_chars=10)
    with pytest.raises(ValueError, match="min_green_score"):
        FilterOptions(min_green_score=-1)


# --------------------------------------------------------------------------------------------
# run(): files, partition, metrics
# --------------------------------------------------------------------------------------------


def _mixed_input(tmp_path: Path) -> tuple[Path, list[str]]:
    records = [
        dialogue(PROBLEM, GOOD_REPLY, id="good1", metadata={"chunk_id": "c1"}),
        dialogue(PROBLEM, "The answer is 4, does that make sense?", id="leak1", metadata={"chunk_id": "c2"}),
        dialogue("Solve 5x - 2 = 13 for x.", "What happens if you add 2 to both sides first?", id="good2"),
        {"id": "roles1", "messages": [{"role": "assistant", "content": GOOD_REPLY}]},
        dialogue(PROBLEM, "", id="empty1"),
        dialogue(PROBLEM, "What do you notice about {{ question }}? How could you start?", id="tmpl1"),
        dialogue(PROBLEM, "So x = 4. Can you check it in the equation?", id="leak2"),
    ]
    lines = [json.dumps(record) for record in records]
    lines.insert(3, '{"id": "broken", "messages": [')  # truncated JSON
    lines.insert(5, "[1, 2, 3]")  # valid JSON, not an object
    lines.insert(6, "")  # blank lines are not records
    return write_lines(tmp_path / "in.jsonl", lines), lines


def test_run_partitions_every_line_exactly_once(tmp_path: Path) -> None:
    source, lines = _mixed_input(tmp_path)
    result = filtering.run(source, tmp_path / "out", FilterOptions())
    accepted = read_lines(Path(result.accepted_path))
    rejected = read_lines(Path(result.rejected_path))

    non_blank = [line for line in lines if line.strip()]
    assert result.total == len(non_blank) == 9
    assert len(accepted) + len(rejected) == result.total
    assert (result.accepted, result.rejected) == (len(accepted), len(rejected)) == (2, 7)

    # Each input line maps to exactly one output record, in input order within each file.
    assert [r["id"] for r in accepted] == ["good1", "good2"]
    assert [r.get("id", r.get("raw")) for r in rejected] == [
        "leak1", '{"id": "broken", "messages": [', "roles1", "[1, 2, 3]", "empty1", "tmpl1", "leak2",
    ]
    # Original fields survive; only metadata gains the filter's annotation.
    parsed = [json.loads(line) for line in non_blank if line.startswith('{"id": "') and line.endswith("}")]
    originals = {record["id"]: record for record in parsed}
    for record in accepted + [r for r in rejected if "id" in r]:
        original = originals[record["id"]]
        assert record["messages"] == original["messages"]
        kept = {k: v for k, v in record["metadata"].items() if k not in ("quality", "drop_reasons")}
        assert kept == original.get("metadata", {})

    by_id = {r.get("id", r.get("raw")): r["metadata"]["drop_reasons"] for r in rejected}
    # Rules first, then the leakage layer (x = 4 solved from the student's equation), each explained.
    assert [d["code"] for d in by_id["leak1"]] == ["states_answer", "no_guiding_question", "leaks_answer_value"]
    assert [d["layer"] for d in by_id["leak1"]] == ["rules", "rules", "leakage"]
    assert [d["code"] for d in by_id['{"id": "broken", "messages": [']] == ["invalid_json"]
    assert "line 4" in by_id['{"id": "broken", "messages": ['][0]["detail"]
    assert [d["code"] for d in by_id["[1, 2, 3]"]] == ["invalid_json"]
    assert "list" in by_id["[1, 2, 3]"][0]["detail"]
    assert {d["code"] for d in by_id["roles1"]} >= {"bad_roles"}
    assert "empty_turn" in {d["code"] for d in by_id["empty1"]}
    assert "template_leftover" in {d["code"] for d in by_id["tmpl1"]}
    assert "concludes_value" in {d["code"] for d in by_id["leak2"]}
    for reasons in by_id.values():
        assert all(set(reason) == {"code", "layer", "detail"} and reason["detail"] for reason in reasons)
        assert all(reason["layer"] in filtering.LAYERS for reason in reasons)


def test_metrics_file_matches_result(tmp_path: Path) -> None:
    source, _ = _mixed_input(tmp_path)
    result = filtering.run(source, tmp_path / "out", FilterOptions())
    metrics = json.loads(Path(result.metrics_path).read_text(encoding="utf-8"))
    assert Path(result.metrics_path).name == "filter_metrics.json"
    assert metrics["total"] == 9 and metrics["accepted"] == 2 and metrics["rejected"] == 7
    assert metrics["acceptance_rate"] == pytest.approx(2 / 9, abs=1e-4)
    assert metrics["reasons"] == result.reasons
    assert metrics["reasons"]["invalid_json"] == 2
    assert metrics["reasons"]["states_answer"] == 1
    # Counts are records per code, so they agree with the per-record reasons in rejected.jsonl.
    rejected = read_lines(Path(result.rejected_path))
    recount: dict[str, int] = {}
    for record in rejected:
        for code in {reason["code"] for reason in record["metadata"]["drop_reasons"]}:
            recount[code] = recount.get(code, 0) + 1
    assert recount == metrics["reasons"]
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic writes left no temp files


def test_empty_input_writes_empty_outputs(tmp_path: Path) -> None:
    source = tmp_path / "empty.jsonl"
    source.write_text("\n\n", encoding="utf-8")
    result = filtering.run(source, tmp_path / "out", FilterOptions())
    assert (result.total, result.accepted, result.rejected, result.reasons) == (0, 0, 0, {})
    assert Path(result.accepted_path).read_text() == "" and Path(result.rejected_path).read_text() == ""
    metrics = json.loads(Path(result.metrics_path).read_text())
    assert {k: metrics[k] for k in ("total", "accepted", "rejected", "reasons", "acceptance_rate")} == {
        "total": 0, "accepted": 0, "rejected": 0, "reasons": {}, "acceptance_rate": 0.0}
    assert metrics["rejected_by_layer"] == {layer: 0 for layer in filtering.LAYERS}
    assert metrics["layers"] == ["format", "rules", "leakage", "dedup"]


def test_undecodable_line_is_rejected_not_fatal(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    good = json.dumps(dialogue(PROBLEM, GOOD_REPLY)).encode()
    source.write_bytes(b"\xef\xbb\xbf" + good + b"\n" + b'{"id": "\xff\xfe"}\n')
    result = filtering.run(source, tmp_path / "out", FilterOptions())
    assert (result.accepted, result.rejected) == (1, 1)  # BOM on line 1 tolerated
    [bad] = read_lines(Path(result.rejected_path))
    assert bad["metadata"]["drop_reasons"][0]["code"] == "invalid_json"
    assert "UTF-8" in bad["metadata"]["drop_reasons"][0]["detail"]


def test_input_record_is_not_mutated(rules, opts) -> None:
    record = dialogue(PROBLEM, "The answer is 4. Okay?", metadata={"k": 1})
    before = json.dumps(record)
    filtering.check_conversation(record, rules, opts)
    assert json.dumps(record) == before


# --------------------------------------------------------------------------------------------
# Rules files
# --------------------------------------------------------------------------------------------


def test_default_rules_are_packaged_and_well_formed(rules) -> None:
    assert rules.source.endswith("default_rules.yaml")
    assert rules.red_flags and rules.green_flags and rules.format_flags
    format_codes = {rule.code for rule in rules.format_flags}
    assert format_codes == {"template_leftover", "role_tag", "refusal"}
    for rule in rules.red_flags + rules.green_flags:
        assert rule.explanation and rule.code.islower()
    assert filtering.load_rules(None).red_flags[0].pattern == rules.red_flags[0].pattern


def test_custom_rules_file_changes_the_outcome(tmp_path: Path) -> None:
    # A rules file with no "the answer is" rule lets that leak through, and adds a new red flag.
    custom = tmp_path / "custom.yaml"
    custom.write_text(
        "red_flags:\n"
        "  - code: no_praise\n"
        "    pattern: '\\bgreat\\s+job\\b'\n"
        "    explanation: empty praise teaches nothing\n"
        "green_flags:\n"
        "  - code: asks_why\n"
        "    pattern: '\\bwhy\\b'\n"
        "    explanation: asks for reasons\n",
        encoding="utf-8",
    )
    lines = [
        json.dumps(dialogue(PROBLEM, "The answer is 4, does that make sense?", id="leak")),
        json.dumps(dialogue(PROBLEM, "Great job! Why do you think subtracting 3 helps?", id="praise")),
    ]
    source = write_lines(tmp_path / "in.jsonl", lines)

    rules_only = {"check_leakage": False, "dedup": False}
    default = filtering.run(source, tmp_path / "default", FilterOptions(**rules_only))
    assert [r["id"] for r in read_lines(Path(default.accepted_path))] == ["praise"]

    result = filtering.run(source, tmp_path / "custom", FilterOptions(rules_path=str(custom), **rules_only))
    assert [r["id"] for r in read_lines(Path(result.accepted_path))] == ["leak"]
    [rejected] = read_lines(Path(result.rejected_path))
    assert rejected["metadata"]["drop_reasons"][0]["code"] == "no_praise"
    assert "Great job" in rejected["metadata"]["drop_reasons"][0]["detail"]
    [accepted] = read_lines(Path(result.accepted_path))
    assert accepted["metadata"]["quality"]["green_flags"] == []  # custom green flags replace the defaults

    # A custom rules file without a leakage section does not switch the leakage layer off: its data
    # falls back to the packaged defaults, and the value x = 4 is still found.
    with_leakage = filtering.run(source, tmp_path / "custom2", FilterOptions(rules_path=str(custom), dedup=False))
    [leak] = [r for r in read_lines(Path(with_leakage.rejected_path)) if r["id"] == "leak"]
    assert [d["code"] for d in leak["metadata"]["drop_reasons"]] == ["leaks_answer_value"]


def test_custom_rules_support_macros_and_statement_scope(tmp_path: Path) -> None:
    custom = tmp_path / "custom.yaml"
    custom.write_text(
        "macros:\n"
        "  NUM: '\\d+'\n"
        "red_flags:\n"
        "  - code: says_number\n"
        "    scope: statement\n"
        "    pattern: 'it is ${NUM}'\n"
        "    explanation: names a number\n",
        encoding="utf-8",
    )
    rules = filtering.load_rules(str(custom))
    opts = FilterOptions(check_leakage=False)
    assert codes(dialogue(PROBLEM, "I think it is 4. Why would that be?"), rules, opts) == {"says_number"}
    assert codes(dialogue(PROBLEM, "Do you think it is 4 or 5?"), rules, opts) == set()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("red_flags: [\n  - code: x\n", "not valid YAML"),
        ("", "empty"),
        ("- just\n- a list\n", "mapping"),
        ("green_flags: []\n", "red_flags"),
        ("red_flag: []\n", "unknown top-level key"),
        ("red_flags:\n  - code: bad\n    pattern: '(unclosed'\n    explanation: e\n", "not a valid regex"),
        ("red_flags:\n  - code: bad\n    pattern: 'x*'\n    explanation: e\n", "matches empty text"),
        ("red_flags:\n  - code: bad\n    pattern: 'x'\n", "explanation"),
        ("red_flags:\n  - code: Bad-Code\n    pattern: 'x'\n    explanation: e\n", "snake_case"),
        ("red_flags:\n  - code: bad\n    pattern: 'x'\n    explanation: e\n    roles: [user]\n", "unknown key"),
        ("red_flags:\n  - code: bad\n    pattern: 'x'\n    explanation: e\n    scope: sentence\n", "scope"),
        ("red_flags:\n  - code: bad\n    pattern: '${NOPE}'\n    explanation: e\n", "undefined macro"),
        ("red_flags: []\nformat_flags:\n  - code: f\n    pattern: 'x'\n    explanation: e\n    roles: [tutor]\n",
         "roles"),
    ],
)
def test_broken_rules_file_raises_value_error_naming_the_file(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "broken_rules.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        filtering.load_rules(str(path))
    message = str(info.value)
    assert str(path) in message
    assert fragment in message
    assert "\n" not in message


def test_missing_rules_file_raises_value_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ValueError, match="does not exist") as info:
        filtering.load_rules(str(path))
    assert str(path) in str(info.value)


def test_run_with_broken_rules_fails_before_writing(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [json.dumps(dialogue(PROBLEM, GOOD_REPLY))])
    broken = tmp_path / "broken.yaml"
    broken.write_text("red_flags: 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.yaml"):
        filtering.run(source, tmp_path / "out", FilterOptions(rules_path=str(broken)))
    assert not (tmp_path / "out" / "accepted.jsonl").exists()


# --------------------------------------------------------------------------------------------
# Speed
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "junk",
    ["step 1 " * 300, "first then x " * 160, "the answer to " * 150, "1. a\n2. b\n" * 200, "= " * 1000, "1 + " * 500],
)
def test_no_catastrophic_backtracking(junk: str, rules) -> None:
    record = dialogue(PROBLEM, junk)
    start = time.perf_counter()
    filtering.check_conversation(record, rules, FilterOptions(max_turn_chars=10_000))
    assert time.perf_counter() - start < 1.0


def test_throughput_is_thousands_per_second(tmp_path: Path) -> None:
    replies = [GOOD_REPLY, "The answer is 4, does that make sense?", "What happens if you divide both sides by 2?"]
    # Distinct problems, so that dedup keeps them all (benchmarks/bench_filter.py measures properly).
    lines = [json.dumps(dialogue(f"Solve 2x + {i} = {i + 8} for x. I'm stuck.", replies[i % 3], id=str(i)))
             for i in range(3000)]
    source = write_lines(tmp_path / "in.jsonl", lines)
    start = time.perf_counter()
    result = filtering.run(source, tmp_path / "out", FilterOptions())
    elapsed = time.perf_counter() - start
    assert result.total == 3000 and result.accepted == 2000
    assert elapsed < 3.0, f"{result.total / elapsed:.0f} records/s"  # generous: ~6000/s on a laptop core


# --------------------------------------------------------------------------------------------
# Issue 13: inputs and outputs an operator ran into
# --------------------------------------------------------------------------------------------


def test_a_deeply_nested_line_is_one_rejected_record_not_a_crash(tmp_path: Path) -> None:
    good = json.dumps(dialogue(PROBLEM, GOOD_REPLY, id="good"))
    deep = '{"id": "deep", "messages": ' + "[" * 200_000 + "]" * 200_000 + "}"
    huge = '{"id": "huge", "n": ' + "1" * 5000 + "}"  # more digits than Python converts
    source = write_lines(tmp_path / "in.jsonl", [good, deep, huge])
    result = filtering.run(source, tmp_path / "out", FilterOptions())
    assert (result.total, result.accepted, result.rejected) == (3, 1, 2)
    rejected = read_lines(Path(result.rejected_path))
    assert [r["metadata"]["drop_reasons"][0]["code"] for r in rejected] == ["invalid_json", "invalid_json"]
    assert "line 2" in rejected[0]["metadata"]["drop_reasons"][0]["detail"]
    assert "nested" in rejected[0]["metadata"]["drop_reasons"][0]["detail"]


def test_a_file_where_no_line_parses_is_an_input_error_and_keeps_the_previous_outputs(tmp_path: Path, samples_dir: Path) -> None:
    source, _ = _mixed_input(tmp_path)
    first = filtering.run(source, tmp_path / "out", FilterOptions())
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    pdf = sorted(samples_dir.glob("*.pdf"))[0]
    with pytest.raises(ValueError) as raised:
        filtering.run(pdf, tmp_path / "out", FilterOptions())
    message = str(raised.value)
    assert str(pdf) in message and "PDF" in message and "socratic-sdg generate" in message and "\n" not in message
    text = write_lines(tmp_path / "notes.txt", ["some notes", "not json at all"])
    with pytest.raises(ValueError, match="no JSON record") as raised:
        filtering.run(text, tmp_path / "out", FilterOptions())
    assert str(text) in str(raised.value)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before and first.accepted == 2
    # an input with some good lines still sorts the bad ones one by one
    mixed = write_lines(tmp_path / "mixed.jsonl", ["not json", json.dumps(dialogue(PROBLEM, GOOD_REPLY))])
    assert filtering.run(mixed, tmp_path / "out2", FilterOptions()).rejected == 1


def test_a_missing_input_names_the_file_and_what_writes_it(tmp_path: Path) -> None:
    missing = tmp_path / "generated" / "conversations.jsonl"
    with pytest.raises(FileNotFoundError) as raised:
        filtering.run(missing, tmp_path / "out", FilterOptions())
    assert str(missing) in str(raised.value) and "socratic-sdg generate" in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_invalid_utf8_in_the_chunks_names_the_file_and_line(tmp_path: Path) -> None:
    chunks = tmp_path / "chunks.jsonl"
    chunks.write_bytes(b'{"chunk_id": "a", "text": "ok"}\n{"chunk_id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(ValueError, match="UTF-8") as raised:
        filtering.load_passages(chunks)
    assert f"{chunks}:2" in str(raised.value)
    chunks.write_text('{"chunk_id": "a", "text": ' + "[" * 200_000 + "]" * 200_000 + "}\n")
    with pytest.raises(ValueError, match=f"{chunks}:1"):
        filtering.load_passages(chunks)


def test_accepted_and_rejected_are_one_set_a_kill_between_them_is_refused_downstream(tmp_path: Path) -> None:
    from socratic_sdg import export, records
    from test_records import killed_during_renames

    source, _ = _mixed_input(tmp_path)
    filtering.run(source, tmp_path / "out", FilterOptions())
    more = write_lines(tmp_path / "more.jsonl", [json.dumps(dialogue(PROBLEM, GOOD_REPLY, id=f"g{i}")) for i in range(3)])
    killed_during_renames(f"""
        from socratic_sdg import filtering
        filtering.run({str(more)!r}, {str(tmp_path / 'out')!r}, filtering.FilterOptions(dedup=False))
    """, ("accepted.jsonl", "rejected.jsonl"))
    accepted = tmp_path / "out" / "accepted.jsonl"
    with pytest.raises(records.IncompleteSetError) as raised:
        export.run(accepted, tmp_path / "dataset")
    assert str(accepted) in str(raised.value) and "filter" in str(raised.value)
    filtering.run(more, tmp_path / "out", FilterOptions(dedup=False))  # the rerun completes the set
    assert export.run(accepted, tmp_path / "dataset").train + export.run(accepted, tmp_path / "dataset").validation == 3


def test_stale_temp_files_of_the_outputs_are_removed_on_start(tmp_path: Path) -> None:
    source, _ = _mixed_input(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".accepted.jsonl.abcd1234.tmp", out / ".rejected.jsonl.x_y_z_w_.tmp", out / ".filter_metrics.json.12345678.tmp"]
    kept = [out / "mine.tmp", out / ".train.jsonl.abcd1234.tmp"]
    for path in stale + kept:
        path.write_bytes(b"x" * 1000)
    filtering.run(source, out, FilterOptions())
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_a_huge_message_is_rejected_before_any_check_runs():
    rules = filtering.load_rules()
    huge = "I have a question about 2x + 3 = 11. " * 1_500_000  # ~55 MB student turn
    record = {"messages": [{"role": "user", "content": huge}, {"role": "assistant", "content": "What could you undo first?"}]}
    reasons = filtering.check_conversation(record, rules, FilterOptions())
    assert [r["code"] for r in reasons] == ["message_too_long"]  # and nothing else ran (it took 16 s)
    assert "message 1 (user) has 55,500,000 characters, more than max_message_chars 100,000" in reasons[0]["detail"]
    assert filtering.check_conversation({**record, "messages": [record["messages"][0] | {"content": "x + 1 = 2?"}, record["messages"][1]]},
                        rules, FilterOptions()) == []
    with pytest.raises(ValueError, match="max_message_chars"):
        FilterOptions(max_message_chars=-1)
