"""The dialogue checks: a reply read against the turns before it (praise of a wrong result, answering
the question the student was asked), and grading only the last tutor turn."""

from __future__ import annotations

import pytest

from socratic_sdg import filtering
from socratic_sdg.filtering.dialogue import ANSWERS_PENDING_QUESTION, PRAISES_WRONG_ANSWER

RULES = filtering.load_rules()
OPTIONS = filtering.FilterOptions(dedup=False)

STEPS_REFERENCE = ("He walked 10,000 / 2 = 5,000 steps to school and 1,000 with a friend, 6,000 in all. With 2,000 "
                   "left, he took 10,000 - 2,000 = 8,000 steps, so the jog was 8,000 - 6,000 = 2,000 steps.")
STEPS_PROBLEM = ("Elliott wants 10,000 steps a day. Half were on his walks to school, 1,000 with a friend, then a jog; "
                 "after it he had 2,000 left. How many steps was the jog?")


def codes(messages, **metadata):
    record = {"messages": messages, "metadata": metadata}
    return {reason["code"] for reason in filtering.check_conversation(record, RULES, OPTIONS)}


def dialogue(student: str, tutor: str, *history: str) -> list[dict[str, str]]:
    turns = [*history, student, tutor]
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(turns)]


# --- praise of a wrong result ------------------------------------------------------------------


def test_praising_a_planted_wrong_attempt_is_rejected_and_qualified_or_effort_praise_is_not():
    history = ("How do I solve 3x - 5 = 16?", "What could you do to both sides to undo the -5?")
    attempt = "I subtracted 5 and got 3x = 11, so x = 11/3?"
    mark = {"wrong_student_turns": [2], "reference_answer": "Add 5 to get 3x = 21, then divide by 3: x = 7."}
    assert PRAISES_WRONG_ANSWER in codes(dialogue(attempt, "Great job! What would you do next with 3x = 11?", *history), **mark)
    assert PRAISES_WRONG_ANSWER in codes(dialogue(attempt, "That's correct. What is x then, as a decimal?", *history), **mark)
    for fine in ("Good try! Look at the first step: what does subtracting 5 do to the -5 on the left?",
                 "Great job writing out your steps, but check the first one: what undoes a -5?",
                 "Not quite: which operation undoes subtracting 5 on the left side?"):
        assert PRAISES_WRONG_ANSWER not in codes(dialogue(attempt, fine, *history), **mark), fine


def test_a_result_that_is_no_value_of_the_worked_reference_makes_praise_false():
    history = (STEPS_PROBLEM, "Can you tell me how you got your answer?")
    wrong = "I took away the 6,000 from the goal, so he took 4000 steps during his jog."
    reply = "Great job! Can you explain how you would check it?"
    assert PRAISES_WRONG_ANSWER in codes(dialogue(wrong, reply, *history), reference_answer="2000",
                                         reference_solution=STEPS_REFERENCE)
    # The same praise after a correct intermediate result, and after a correct computation the
    # worked reference happens not to contain, is fair (so a right computation of the wrong
    # quantity goes unnoticed: arithmetic the student shows is taken as theirs to be right about).
    right = "Half of 10,000 is 5,000 and then 1,000 more makes 6,000 before the jog."
    assert PRAISES_WRONG_ANSWER not in codes(dialogue(right, "Great job! What do the 2,000 left tell you?", *history),
                                             reference_answer="2000", reference_solution=STEPS_REFERENCE)
    other_path = "Per hour he walks 1,250 steps, since 10,000 / 8 = 1250."
    assert PRAISES_WRONG_ANSWER not in codes(dialogue(other_path, "That's right! How does that help with the jog?", *history),
                                             reference_answer="2000", reference_solution=STEPS_REFERENCE)
    # With only a final value there is nothing to judge an intermediate step against.
    assert PRAISES_WRONG_ANSWER not in codes(dialogue(wrong, reply, *history), reference_answer="2000")


def test_a_wrong_answer_to_a_plain_arithmetic_question_makes_praise_false():
    history = ("Mike has 4 cookies and eats 3. How many are left? I think 7.", "What is 4 - 3?")
    assert PRAISES_WRONG_ANSWER in codes(dialogue("7", "Correct! So how many cookies are left?", *history))
    assert PRAISES_WRONG_ANSWER not in codes(dialogue("1", "Correct! So how many cookies does Mike have left?", *history))
    factor = ("We are missing the divisor of 24 / ? = 3.", "What times 3 is 24?")
    assert PRAISES_WRONG_ANSWER in codes(dialogue("12", "That's correct, well done! What number divided by 3 gives 8?", *factor))
    # "What is 1/3?" asks for a fraction of something, not for 1 divided by 3.
    fraction = ("If 12 is 2/3 of the vacuum cleaners, how many were there?", "If 12 is 2/3, what is 1/3?")
    assert PRAISES_WRONG_ANSWER not in codes(dialogue("6", "Great job! So how many were there in all?", *fraction))


def test_the_reason_quotes_the_praise_and_says_why():
    history = ("Mike has 4 cookies and eats 3. How many are left?", "What is 4 - 3?")
    record = {"messages": dialogue("7", "Correct! So how many cookies are left?", *history)}
    reason = next(r for r in filtering.check_conversation(record, RULES, OPTIONS) if r["code"] == PRAISES_WRONG_ANSWER)
    assert reason["layer"] == "leakage"
    assert '"Correct"' in reason["detail"] and "with 7, not 1" in reason["detail"]


# --- answering the question the student was asked ----------------------------------------------


def test_stating_what_the_student_was_asked_is_rejected():
    history = ("A quadrilateral has four sides; both drawings are quadrilaterals.", "What is a rectangle?")
    for telling in ("Remember, a rectangle also has four right angles. Can you check your shape for them?",
                    "A rectangle is a quadrilateral with four right angles, can you check if your shapes have that?",
                    "Good start - a rectangle is a shape with four right angles, so which of your shapes is one?"):
        assert ANSWERS_PENDING_QUESTION in codes(dialogue("a shape with 4 sides", telling, *history)), telling
    history = ("I need 6 times 2 for the carrots and I wrote 8.", "What is 6 times 2?")
    assert ANSWERS_PENDING_QUESTION in codes(dialogue("8", "Actually, 6 times 2 is 12. How many onions then?", *history))


def test_restating_the_students_answer_or_asking_again_is_not_telling():
    history = ("A quadrilateral has four sides; both drawings are quadrilaterals.", "What is a rectangle?")
    for fine in ("You are correct that a rectangle has 4 sides! What else is special about its angles?",
                 "Good start! What makes a rectangle different from other shapes with four sides?"):
        assert ANSWERS_PENDING_QUESTION not in codes(dialogue("a shape with 4 sides", fine, *history)), fine
    history = ("I need 6 times 2 for the carrots and I wrote 8.", "What is 6 times 2?")
    assert ANSWERS_PENDING_QUESTION not in codes(dialogue("8", "Let's count it: what are two groups of 6?", *history))


# --- grading the last turn only ----------------------------------------------------------------


def test_graded_turns_last_treats_earlier_tutor_turns_as_context():
    messages = dialogue("So the jog was 4000 steps.", "What does the 2,000 steps left tell you about the total?",
                        STEPS_PROBLEM, "ok")  # a human tutor's terse history turn
    record = {"messages": messages, "metadata": {}}
    everything = {r["code"] for r in filtering.check_conversation(record, RULES, OPTIONS)}
    assert filtering.TURN_TOO_SHORT in everything
    last = filtering.FilterOptions(dedup=False, graded_turns="last")
    assert filtering.check_conversation(record, RULES, last) == []
    with pytest.raises(ValueError, match="graded_turns"):
        filtering.FilterOptions(graded_turns="first")


def test_a_rules_file_without_dialogue_patterns_uses_the_packaged_ones(tmp_path):
    custom = tmp_path / "rules.yaml"
    custom.write_text("red_flags:\n  - code: says_answer\n    pattern: 'the answer is'\n    explanation: x\n")
    rules = filtering.load_rules(custom)
    assert rules.dialogue is not None
    broken = tmp_path / "broken.yaml"
    broken.write_text(custom.read_text() + "dialogue:\n  affirmation: 'right'\n  typo: 'x'\n")
    with pytest.raises(ValueError, match=r"broken.yaml: dialogue has unknown key\(s\) typo"):
        filtering.load_rules(broken)
