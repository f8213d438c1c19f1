"""The leakage layer (socratic_sdg.filtering.leakage) and the math it reads (socratic_sdg.filtering.math).

A tutor turn leaks when it states the final result of the hidden reference answer (or of the
student's own equation), in whatever form: x = 4, 4, 8/2 on the right of an equation, 0.875 for
7/8, 16.7% for 1/6, seven eighths, 2x·sin x + x²·cos x. It does not leak when it repeats what the
student said, or mentions a number from the problem without asserting it as the result.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from socratic_sdg import filtering
from socratic_sdg.filtering import checks
from socratic_sdg.testing import filter_eval
from socratic_sdg.filtering import leakage
from socratic_sdg.filtering import math as fm
from socratic_sdg.filtering import FilterOptions

EVAL_DIR = Path(__file__).parent / "data" / "filter_eval"


@pytest.fixture(scope="module")
def rules() -> filtering.Rules:
    return filtering.load_rules(None)


def record(*turns: str, reference: str | None = None) -> dict[str, Any]:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    metadata = {"reference_answer": reference} if reference is not None else {}
    return {"id": "r", "messages": messages, "metadata": metadata}


def leak_codes(rec: dict[str, Any], rules, **options) -> set[str]:
    reasons = filtering.check_conversation(rec, rules, FilterOptions(check_rules=False, **options))
    return {r["code"] for r in reasons if r["layer"] == "leakage"}


def values(text: str) -> list[float]:
    return [round(m.values[0], 6) for m in fm.mentions(text)[1] if m.kind == "value"]


# --------------------------------------------------------------------------------------------
# Reading math out of prose
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so x = 4.", [4.0]),
        ("8/2", [4.0]),
        ("x=-2, 3", [-2.0, 3.0]),
        ("x = ±7", [7.0, -7.0]),
        ("$\\frac{7}{8}$", [0.875]),
        ("\\dfrac{\\sqrt{3}}{2}", [round(math.sqrt(3) / 2, 6)]),
        ("about 16.7%", [0.167]),
        ("It costs $1,200.50 in total.", [1200.5]),
        ("25π", [round(25 * math.pi, 6)]),
        ("3 × 4 = 12", [12.0, 12.0]),
        ("½ · 10 · 7 = 35", [35.0, 35.0]),
        ("sin(30°) = 1/2", [0.5, 0.5]),
        ("5!/(2!·3!) = 10", [10.0, 10.0]),
        ("seven eighths", [0.875]),
        ("three and a half", [3.5]),
        ("twenty-five", [25.0]),
        ("Great, x = 3! Now what?", [3.0]),  # an exclamation mark, not a factorial
        ("It's 60 km/h.", [60.0]),  # the unit's letter is not a result
        ("35 cm².", [35.0]),  # nor is the unit's exponent
    ],
)
def test_values_in_prose(text: str, expected: list[float]) -> None:
    assert values(text) == expected


def test_relations_and_sides() -> None:
    _, ms = fm.mentions("so x < -4, and y = 2x + 1")
    first, second = ms
    assert (first.relation, first.lhs, first.values[0]) == ("<", "x", -4.0)
    assert second.kind == "expr" and second.lhs == "y" and second.relation == "="
    _, [flipped] = fm.mentions("-4 > x")
    assert (flipped.relation, flipped.lhs) == ("<", "x")


def test_tuples_and_matrices() -> None:
    _, [vector] = fm.mentions("The solution is (6, 4).")
    assert vector.kind == "tuple" and vector.values == (6.0, 4.0)
    _, [matrix] = fm.mentions("the product is [[2, 1], [4, 3]].")
    assert matrix.values == (2.0, 1.0, 4.0, 3.0)


@pytest.mark.parametrize(
    "expression",
    ["2x sin(x) + x^2 cos(x)", "12(3x + 1)^3", "2e^(2x)", "x^3 + x^2", "(x + 3)(x + 4)", "\\frac{x^2 - 1}{x - 1}",
     "3x^{2} - 4", "\\sqrt{x^2 + 1}", "ln(x) / x", "λ^2 - 7λ + 10", "2 sin x cos x", "x^(1/2)"],
)
def test_fast_evaluator_agrees_with_sympy(expression: str) -> None:
    """The hot path never calls sympy; sympy is the oracle that says it reads expressions right."""
    import sympy

    _, ms = fm.mentions(expression)
    [mention] = [m for m in ms if m.kind == "expr"]
    exact = fm.to_sympy(mention.py, mention.variables)
    assert exact is not None
    for k, fast in enumerate(mention.values):
        point = fm._sample_values(mention.variables, k)
        oracle = complex(exact.evalf(subs={sympy.Symbol(v): point[v] for v in mention.variables}))
        assert fast is not None and abs(oracle.imag) < 1e-9 and math.isclose(fast, oracle.real, rel_tol=1e-9)


def test_structure_ignores_order_but_not_simplification() -> None:
    def expr(text: str) -> fm.Mention:
        return next(m for m in fm.mentions(text)[1] if m.kind == "expr")

    assert fm.same_structure(expr("(x + 4)(x + 3)"), expr("(x + 3)(x + 4)"))
    assert not fm.same_structure(expr("x^2 + 7x + 12"), expr("(x + 3)(x + 4)"))
    assert not fm.same_structure(expr("(x^3)^2 * x^4"), expr("x^10"))
    assert fm.same_fingerprint(expr("(x^3)^2 * x^4").values, expr("x^10").values)


def test_solving_the_students_equation() -> None:
    assert fm.solve_equation("2.0*x+3.0", "11.0", "x") == (4.0,)
    assert fm.solve_equation("x**2.0-5.0*x+6.0", "0.0", "x") == (2.0, 3.0)
    assert fm.solve_equation("x**2.0+1.0", "0.0", "x") == ()
    assert fm.solve_equation("1.0/x", "2.0", "x") == ()  # not a polynomial: no derived answer


# --------------------------------------------------------------------------------------------
# The final result of a reference answer
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Add 5 to both sides to get 3x = 15. Then divide both sides by 3, so x = 5.", ["x = 5"]),
        ("Factor it as (x - 2)(x - 3) = 0. Setting each factor to zero gives x = 2 or x = 3.", ["x = 3", "x = 2"]),
        ("Taking square roots: $\\boxed{x = \\pm 7}$.", ["x = ±7", "x = ±7"]),  # +7 and -7
        ("Dividing by -2 flips the inequality, so x < -4.", ["x < -4"]),
        ("Adding gives 2x = 12, so x = 6 and y = 4. The solution is (6, 4).", ["(6, 4)", "6", "4"]),
        ("By the product rule, the derivative is 2x sin(x) + x^2 cos(x).", ["2x sin(x) + x^2 cos(x)"]),
        ("A = πr^2 = π(5)^2 = 25π ≈ 78.54 square units.", ["78.54", "25π"]),  # exact and rounded
        ("Speed = distance / time = 150 / 2.5 = 60 km/h.", ["60"]),
        ("x = 4. You can check: 2(4) + 3 = 11.", ["x = 4"]),  # a check after the result is skipped
        ("There are 3 red marbles out of 8, so P(red) = 3/8.", ["3/8"]),
        ("The answer is seven.", ["seven"]),
    ],
)
def test_final_result_of_a_reference(reference: str, expected: list[str], rules) -> None:
    targets = leakage.targets_from_reference(reference, rules.leakage)
    assert [t.describe().replace(" ", "") for t in targets] == [e.replace(" ", "") for e in expected]


# --------------------------------------------------------------------------------------------
# Leak or not
# --------------------------------------------------------------------------------------------

LINEAR = "How do I solve 3x - 5 = 10? I keep getting confused."
LINEAR_REF = "Add 5 to both sides to get 3x = 15. Then divide both sides by 3, so x = 5."
COOKIES = "If 12 cookies are shared equally among 3 friends, how many does each friend get?"
COOKIES_REF = "12 ÷ 3 = 4, so each friend gets 4 cookies."


LEAK_OR_NOT = [
    # a distinctive value: any mention leaks, even inside a question
    ((COOKIES, "Each friend gets 4 cookies. Can you see why?"), COOKIES_REF, True),
    ((COOKIES, "Is it 4? Think about why."), COOKIES_REF, True),
    ((COOKIES, "Would 8/2 be the right count for each friend?"), COOKIES_REF, False),  # a division to do
    ((COOKIES, "So each friend gets 8/2, right?"), COOKIES_REF, False),
    ((COOKIES, "So each friend's share is x = 8/2, right?"), COOKIES_REF, True),  # the final equation
    ((COOKIES, "Imagine dealing the 12 cookies to 3 friends. How many rounds could you deal?"), COOKIES_REF, False),
    # the student already said it: confirming is fine
    ((COOKIES, "What operation?", "Division? 12 ÷ 3 = 4", "Yes, 4 is right! How could you check it?"), COOKIES_REF, False),
    # a value that is also a number of the problem counts only when asserted
    ((LINEAR, "What do you notice about the -5? Which operation would undo subtracting 5?"), LINEAR_REF, False),
    ((LINEAR, "x is 5, because 3(5) - 5 = 10. Does that make sense?"), LINEAR_REF, True),
    ((LINEAR, "Is it 5? Try it."), LINEAR_REF, True),
    ((LINEAR, "What happens if x = 5?"), LINEAR_REF, True),  # the unknown's own name with its value
    ((LINEAR, "If r = 5 were the radius, what would change?"), LINEAR_REF, False),
    # forms of the same value
    (("What's 3/4 + 1/8?", "You end up with seven eighths. Can you see why?"), "6/8 + 1/8 = 7/8.", True),
    (("What's 3/4 + 1/8?", "That comes to 0.875, right?"), "6/8 + 1/8 = 7/8.", True),
    (("Dice sum of 7?", "Is it about 16.7%? Think about why."), "6/36 = 1/6.", True),
    (("Dice sum of 7?", "About 17 percent of rolls?"), "6/36 = 1/6.", False),  # "percent" spelled out: not read
    # expressions
    (("Derivative of x^2 sin(x)?", "Is it 2x·sin x + x²·cos x?"), "It is 2x sin(x) + x^2 cos(x).", True),
    (("Integrate 3x^2 + 2x.", "Isn't it x³ + x² plus a constant?"), "It is x^3 + x^2 + C.", True),
    (("Integrate 3x^2 + 2x.", "So it's x^3 + x^2 + 7, right?"), "It is x^3 + x^2 + C.", True),  # up to a constant
    (("Factor x^2 + 7x + 12.", "What two numbers multiply to 12 in x^2 + 7x + 12?"),
     "So x^2 + 7x + 12 = (x + 3)(x + 4).", False),  # quoting the problem's own (equivalent) expression
    (("Factor x^2 + 7x + 12.", "It's (x + 4)(x + 3). Can you expand it to check?"),
     "So x^2 + 7x + 12 = (x + 3)(x + 4).", True),
    # inequalities: the direction matters
    (("Solve -2x > 8. I got x > -4.", "So it becomes x < -4. See the difference?"), "so x < -4.", True),
    (("Solve -2x > 8. I got x > -4.", "Why does your x > -4 fail for x = -3?"), "so x < -4.", False),
]


@pytest.mark.parametrize(("turns", "reference", "leaks"), LEAK_OR_NOT)
def test_leak_or_not(turns, reference, leaks: bool, rules) -> None:
    assert bool(leak_codes(record(*turns, reference=reference), rules)) is leaks


def test_leak_in_the_last_turn_of_a_long_conversation_names_that_turn(rules) -> None:
    rec = record(LINEAR, "What could you do to both sides so that the -5 disappears?", "Add 5 to both sides?",
                 "Yes! That gives 3x = 15, so x is 5. Can you see why dividing works?", reference=LINEAR_REF)
    [reason] = [r for r in filtering.check_conversation(rec, rules, FilterOptions()) if r["layer"] == "leakage"]
    assert reason["code"] == "leaks_answer_value"
    assert reason["detail"].startswith("message 4 (assistant)") and "x = 5" in reason["detail"]


def test_without_a_reference_the_students_equation_is_solved(rules) -> None:
    rec = record("Solve 7x - 4 = 24. I'm stuck.", "Would x = 4 make both sides equal?")
    assert leak_codes(rec, rules) == {"leaks_answer_value"}
    assert leak_codes(rec, rules, leakage_use_problem=False) == set()
    quality = checks.evaluate_conversation(rec, rules, FilterOptions())[1]["leakage"]
    assert quality == {"targets": ["x = 4"], "target_source": "problem"}


def test_a_praised_student_answer_is_not_a_rules_leak(rules) -> None:
    """The rules layer's "x = 3." would fire; the student wrote x = 3 first, so it is an exemption."""
    rec = record("I got x = 3 for 2x + 7 = 13. Is that right?", "Nice work getting x = 3! Can you explain why?",
                 reference="x = 3.")
    reasons, quality = checks.evaluate_conversation(rec, rules, FilterOptions())
    assert reasons == [] and quality["rules"]["exempted"] == ["bare_solution"]
    assert filtering.check_conversation(record("Solve 2x + 7 = 13.", "Nice work getting x = 3! Can you explain why?"),
                                       rules, FilterOptions())


def test_accepted_records_carry_the_targets(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        record(COOKIES, "If there were 6 cookies instead, how would you share them between the 3 friends?", reference=COOKIES_REF),
        record(COOKIES.replace("12", "15"), "What operation would share the 15 cookies equally among 3 friends?",
               reference=COOKIES_REF.replace("12 ÷ 3 = 4", "15 ÷ 3 = 5").replace("4 cookies", "5 cookies")),
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    result = filtering.run(source, tmp_path / "out", FilterOptions())
    first, second = [json.loads(line) for line in Path(result.accepted_path).read_text().splitlines()]
    assert first["metadata"]["quality"]["leakage"] == {"targets": ["4"], "target_source": "reference_answer"}
    # A turn that only repeats the student's numbers is cleared without parsing the reference.
    assert second["metadata"]["quality"]["leakage"]["skipped"] == "the tutor only repeats the student's numbers"



def _readable_records(synthetic: int, seed: int):
    """The labelled sets and ``synthetic`` generated records whose messages are a non-empty list of
    {role, content} strings (the labelled sets hold malformed records on purpose)."""
    records = (filter_eval.load_labelled(EVAL_DIR / "eval.jsonl") + filter_eval.load_labelled(EVAL_DIR / "heldout.jsonl")
               + list(filter_eval.synthetic_records(synthetic, seed=seed)))
    for record in records:
        messages = record["messages"]
        if isinstance(messages, list) and messages and all(
                isinstance(m, dict) and isinstance(m.get("content"), str) and isinstance(m.get("role"), str) for m in messages):
            yield record


def test_innocent_shortcut_never_changes_a_decision(rules) -> None:
    """The cheap shortcut (skip turns that only repeat the student's numbers) must agree with the
    full analysis on every record of the evaluation sets and on synthetic records."""
    taken = 0
    for rec in _readable_records(3000, seed=21):
        messages = rec["messages"]
        if not leakage.innocent(messages):
            continue
        taken += 1
        targets, _ = leakage.targets_for(messages, (rec.get("metadata") or {}).get("reference_answer"), rules.leakage)
        state = leakage.StudentState()
        for message in messages:
            if message["role"] == "user":
                state.add(message["content"], rules.leakage)
            elif message["role"] == "assistant":
                assert leakage.check_turn(message["content"], targets, state, rules.leakage) == [], rec["id"]
    assert taken > 500  # the shortcut is actually exercised


def test_no_catastrophic_cases_in_math_parsing(rules) -> None:
    import time

    for junk in ["(" * 400 + "1", "1+" * 2000 + "1", "x^" * 500 + "2", "9^9^9^9^9^9 = 3", "\\frac{" * 50 + "1",
                 "1, " * 2000, "sqrt " * 300 + "4", "= " * 1000 + "4"]:
        start = time.perf_counter()
        filtering.check_conversation(record("Solve 2x + 3 = 11.", junk + "?", reference="x = 4"), rules,
                                    FilterOptions(max_turn_chars=100_000))
        assert time.perf_counter() - start < 1.0, junk[:20]


def test_reference_fast_path_agrees_with_the_full_parse(rules, monkeypatch) -> None:
    """Most reference answers end on a plain number and skip tokenizing; the result must be exactly
    what the full parse finds, on every reference we have."""
    references = [r["metadata"].get("reference_answer") for name in ("eval", "heldout")
                  for r in filter_eval.load_labelled(EVAL_DIR / f"{name}.jsonl")]
    references += [r["metadata"]["reference_answer"] for r in filter_eval.synthetic_records(2000, seed=4)]
    references += ["Subtract 3 from both sides: x = 3.", "So the answer is 12 cookies.", "The total is $1,200.",
                   "so x = -4.5.", "It is 20%.", "The speed is 60 km/h.", "That gives 3 and 4.", "so x = 2 or x = 3.",
                   "so x = 2 and y = 3.", "so y = 2x + 1.", "x = 8/2 = 4.", "Each person pays 12.50 dollars.",
                   "det = ad - bc = 2·4 - 3·1 = 5.", "The answer is 7 because 3 + 4 = 7.", "It is seven."]

    def key(targets):
        return sorted((t.kind, tuple(round(v, 9) for v in t.values if v is not None), t.relation, round(t.tol, 9),
                       t.var or "") for t in targets)

    fast_taken = 0
    for reference in filter(None, references):
        fast = leakage.targets_from_reference(reference, rules.leakage)
        with monkeypatch.context() as patch:
            patch.setattr(leakage, "_plain_final", lambda sentence: None)
            full = leakage.targets_from_reference(reference, rules.leakage)
        assert key(fast) == key(full), reference
        fast_taken += leakage._plain_final(fm.normalize(reference.split(". ")[-1])) is not None
    assert fast_taken > 500


def test_tutor_turn_precheck_never_hides_a_leak(rules, monkeypatch) -> None:
    """Tutor turns that cannot state a target (no matching digits, operators, words or variable
    math) are not parsed; findings must be exactly those of parsing every turn."""
    skipped = 0
    for rec in _readable_records(2000, seed=33):
        messages = rec["messages"]
        targets, _ = leakage.targets_for(messages, (rec.get("metadata") or {}).get("reference_answer"), rules.leakage)
        state = leakage.StudentState(rules.leakage)
        for message in messages:
            if message.get("role") == "user":
                state.add(message["content"], rules.leakage)
                continue
            fast = leakage.check_turn(message["content"], targets, state, rules.leakage)
            skipped += bool(targets) and not leakage._could_match(fm.normalize(message["content"]), targets)
            with monkeypatch.context() as patch:
                patch.setattr(leakage, "_could_match", lambda *args: True)
                full = leakage.check_turn(message["content"], targets, state, rules.leakage)
            assert [(f.code, f.mention.text) for f in fast] == [(f.code, f.mention.text) for f in full], rec["id"]
    assert skipped > 300

