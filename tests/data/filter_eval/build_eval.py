"""Builds eval.jsonl and dedup.jsonl (the quality filter's labelled evaluation sets) from the cases below.

The cases are written by hand; this script only gives them ids and the record shape the filter reads.
Edit the cases here and rerun ``python tests/data/filter_eval/build_eval.py``; a test checks that the
committed JSONL files match this script, so the two cannot drift apart.

Labels (``eval.label``), one per record:

* ``good``: a Socratic reply a careful teacher keeps; the filter must accept it.
* ``leak``: some tutor turn lets the student read off the final answer (value, expression or final
  equation) without doing the last reasoning step: stating it, confirming a value the student never
  gave, offering it as the thing to try, or walking through to it. This is the positive class of
  leak detection. The filter must reject it with a leak code.
* ``weak``: no leak, but not a training target (lecture without a question, a question that only
  checks comprehension, template leftovers, role tags, refusals, wrong language, malformed turns,
  off-length). The filter must reject it, with any code.

``eval.layer`` names the layer expected to catch a rejected case (format, rules, leakage, language,
judge); ``judge`` cases need semantic understanding and are out of reach of the deterministic layers:
they are reported, but not counted in the deterministic bar.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent

# --------------------------------------------------------------------------------------------
# Problems: (key, topic, student's first message, reference answer)
# --------------------------------------------------------------------------------------------

P = {
    "lin1": ("algebra", "How do I solve 3x - 5 = 10? I keep getting confused.",
             "Add 5 to both sides to get 3x = 15. Then divide both sides by 3, so x = 5."),
    "lin2": ("algebra", "Solve 4(x + 2) = 28. Where do I even start?",
             "Divide both sides by 4 to get x + 2 = 7, then subtract 2. The solution is x = 5."),
    "lin3": ("algebra", "I got x = 3 for 2x + 7 = 13. Is that right?",
             "Subtract 7 from both sides to get 2x = 6, then divide by 2 to get x = 3."),
    "lin4": ("algebra", "I think the answer to 5x + 2 = 27 is x = 6 but I'm not sure.",
             "Subtract 2: 5x = 25. Divide by 5: x = 5."),
    "lin5": ("algebra", "How do I solve x + 3 = 6?", "Subtract 3 from both sides: x = 3."),
    "lin6": ("algebra", "Solve 2x + 3 = 11 for x.",
             "Subtract 3 from both sides to get 2x = 8, then divide by 2, so x = 4."),
    "quad1": ("algebra", "How do I solve x^2 - 5x + 6 = 0?",
              "Factor it as (x - 2)(x - 3) = 0. Setting each factor to zero gives x = 2 or x = 3."),
    "quad2": ("algebra", "Can you help me solve x^2 = 49?",
              "Take the square root of both sides, remembering both signs: $\\boxed{x = \\pm 7}$."),
    "ineq1": ("algebra", "How do I solve -2x > 8? My answer was x > -4 but the book says otherwise.",
              "Dividing both sides by -2 flips the inequality, so x < -4."),
    "sys1": ("algebra", "How do I solve the system x + y = 10 and x - y = 2?",
             "Adding the equations gives 2x = 12, so x = 6, and then y = 4. The solution is (6, 4)."),
    "exp1": ("algebra", "Simplify (x^3)^2 * x^4. I don't know which rule to use.",
             "A power of a power multiplies exponents, giving x^6, and multiplying adds exponents: x^6 * x^4 = x^10."),
    "log1": ("algebra", "How do I solve log_2(x) = 5?", "Rewrite in exponential form: x = 2^5 = 32."),
    "frac1": ("arithmetic", "What's 3/4 + 1/8? I always mess up fractions.",
              "Write 3/4 as 6/8, then 6/8 + 1/8 = 7/8."),
    "deriv1": ("calculus", "What is the derivative of x^2 sin(x)? I need the answer.",
               "By the product rule, the derivative is 2x sin(x) + x^2 cos(x)."),
    "deriv2": ("calculus", "How do I find the derivative of (3x + 1)^4?",
               "Use the chain rule: 4(3x + 1)^3 · 3 = 12(3x + 1)^3."),
    "deriv3": ("calculus", "How do I differentiate e^(2x)?",
               "By the chain rule, the derivative of e^(2x) is 2e^(2x)."),
    "integ1": ("calculus", "How do I integrate 3x^2 + 2x?",
               "Integrate term by term with the power rule: $\\int (3x^2 + 2x)\\,dx = x^3 + x^2 + C$."),
    "limit1": ("calculus", "What is the limit of (x^2 - 1)/(x - 1) as x approaches 1?",
               "Factor the numerator: (x - 1)(x + 1)/(x - 1) = x + 1 for x ≠ 1, so the limit is 2."),
    "tangent1": ("calculus", "Find the slope of the tangent to y = x^3 at x = 2.",
                 "dy/dx = 3x^2, and at x = 2 that is 3(4) = 12. The slope is 12."),
    "opt1": ("calculus", "A farmer has 40 m of fence for a rectangle. What dimensions give the most area?",
             "With perimeter 40, the sides satisfy x + y = 20 and the area is A = x(20 - x). "
             "The maximum is at x = 10, so the best rectangle is a 10 m by 10 m square."),
    "det1": ("linear algebra", "How do I find the determinant of [[2, 3], [1, 4]]?",
             "For a 2x2 matrix, det = ad - bc = 2·4 - 3·1 = 5."),
    "eig1": ("linear algebra", "How do I find the eigenvalues of [[4, 1], [2, 3]]?",
             "Solve det(A - λI) = 0: (4 - λ)(3 - λ) - 2 = λ^2 - 7λ + 10 = 0, so λ = 2 and λ = 5."),
    "dot1": ("linear algebra", "What's the dot product of (1, 2, 3) and (4, -5, 6)?",
             "Multiply matching components and add: 4 - 10 + 18 = 12."),
    "matmul1": ("linear algebra", "How do I multiply [[1, 2], [3, 4]] by [[0, 1], [1, 0]]?",
                "Each entry is a row of the first matrix times a column of the second, so the product is [[2, 1], [4, 3]]."),
    "norm1": ("linear algebra", "How do I find the length of the vector (3, 4)?",
              "Use the Pythagorean theorem: sqrt(3^2 + 4^2) = sqrt(25) = 5."),
    "circle1": ("geometry", "What's the area of a circle with radius 5?",
                "A = πr^2 = π(5)^2 = 25π ≈ 78.54 square units."),
    "pyth1": ("geometry", "A right triangle has legs 6 and 8. How long is the hypotenuse?",
              "By the Pythagorean theorem, c^2 = 36 + 64 = 100, so c = 10."),
    "angle1": ("geometry", "Two angles of a triangle are 50° and 60°. What's the third?",
               "Angles in a triangle sum to 180°, so the third angle is 180 - 50 - 60 = 70°."),
    "perim1": ("geometry", "How do I find the perimeter of a rectangle that is 7 cm by 3 cm?",
               "Perimeter = 2(7 + 3) = 20 cm."),
    "cube1": ("geometry", "What is the volume of a cube with side 3 cm?", "V = s^3 = 3^3 = 27 cubic cm."),
    "cookies": ("word problem", "If 12 cookies are shared equally among 3 friends, how many does each friend get?",
                "12 ÷ 3 = 4, so each friend gets 4 cookies."),
    "apples": ("word problem", "Tom had 5 apples and bought 3 more. How many apples does he have now?",
               "5 + 3 = 8, so Tom has 8 apples."),
    "speed1": ("word problem", "A car travels 150 km in 2.5 hours. What is its average speed?",
               "Speed = distance / time = 150 / 2.5 = 60 km/h."),
    "jacket": ("word problem", "A jacket costs $80 and is 25% off. What is the sale price?",
               "25% of 80 is 20, so the sale price is 80 - 20 = $60."),
    "pens": ("word problem", "Pens cost $1.25 each. How much do 8 pens cost?", "8 × 1.25 = 10, so 8 pens cost $10."),
    "ages": ("word problem", "Anna is 3 times as old as Ben. The sum of their ages is 48. How old is Ben?",
             "Let Ben's age be b. Then 3b + b = 48, so 4b = 48 and b = 12. Ben is 12 years old."),
    "notebooks": ("word problem", "5 notebooks cost $15. How much do 8 notebooks cost?",
                  "One notebook costs 15 ÷ 5 = $3, so 8 notebooks cost 8 × 3 = $24."),
    "percent1": ("arithmetic", "What is 15% of 200?", "0.15 × 200 = 30."),
    "train": ("word problem", "A train leaves at 2 pm going 60 mph. How far has it gone by 5 pm?",
              "It travels for 3 hours at 60 mph, so it covers 60 × 3 = 180 miles."),
    "mean1": ("statistics", "How do I find the mean of 2, 4, 6, 8?", "Add them to get 20 and divide by 4: the mean is 5."),
    "mean2": ("statistics", "Find the mean of 10, 20, 30.", "The sum is 60 and there are 3 values, so the mean is 20."),
    "median1": ("statistics", "What is the median of 7, 3, 9, 1, 5?",
                "Sorted, the list is 1, 3, 5, 7, 9. The middle value is 5, so the median is 5."),
    "dice": ("probability", "What's the probability of rolling a sum of 7 with two dice?",
             "There are 6 favourable outcomes out of 36, so the probability is 6/36 = 1/6."),
    "coins": ("probability", "Flip a fair coin 3 times. What's the probability of getting exactly 2 heads?",
              "There are 8 equally likely outcomes and 3 of them have exactly two heads, so the probability is 3/8."),
    "zscore": ("statistics", "A test has mean 70 and standard deviation 5. What z-score does a score of 80 have?",
               "z = (80 - 70)/5 = 2."),
    "noref1": ("algebra", "Solve 7x - 4 = 24. I'm stuck.", None),
    "noref2": ("arithmetic", "What is 144 ÷ 12?", None),
    "trig1": ("trigonometry", "What is sin(30°)? I never remember these.",
              "In a 30-60-90 triangle the side opposite 30° is half the hypotenuse, so sin(30°) = 1/2."),
    "trig2": ("trigonometry", "How do I find the angle whose tangent is 1, between 0 and 90 degrees?",
              "tan θ = 1 when the opposite and adjacent sides are equal, so θ = 45°."),
    "seq1": ("algebra", "What is the 10th term of the sequence 3, 7, 11, 15, ...?",
             "The common difference is 4, so a_10 = 3 + 9·4 = 39."),
    "slope1": ("algebra", "What's the equation of the line through (0, 1) with slope 2?",
               "Slope-intercept form y = mx + b with m = 2 and b = 1 gives y = 2x + 1."),
    "factor1": ("algebra", "How do I factor x^2 + 7x + 12?",
                "Find two numbers that multiply to 12 and add to 7: 3 and 4. So x^2 + 7x + 12 = (x + 3)(x + 4)."),
    "compint": ("word problem", "If I put $1000 in an account at 5% simple interest per year, how much interest after 3 years?",
                "Simple interest is P·r·t = 1000 × 0.05 × 3 = $150."),
}

CASES: list[dict] = []


def case(label: str, key: str, tutor: str | list[str], note: str, layer: str | None = None,
         first: str | None = None, ref: str | None | bool = True) -> None:
    """One case: the problem ``key``'s first message (or ``first``), then alternating turns.

    ``tutor`` is the single tutor reply, or the list of turns that follow the first user message
    (assistant, user, assistant, ...). ``ref`` True uses the problem's reference answer.
    """
    topic, problem, reference = P[key]
    turns = [tutor] if isinstance(tutor, str) else list(tutor)
    texts = [first if first is not None else problem] + turns
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(texts)]
    metadata = {"chunk_id": f"chunk-{key}", "doc_id": "eval", "source": "eval", "model": "hand-written", "flow_id": "eval"}
    if ref is True and reference is not None:
        metadata["reference_answer"] = reference
    elif isinstance(ref, str):
        metadata["reference_answer"] = ref
    CASES.append({"label": label, "topic": topic, "key": key, "messages": messages, "metadata": metadata,
                  "note": note, "layer": layer})


def raw(label: str, topic: str, messages, note: str, layer: str, reference: str | None = None) -> None:
    """A case with hand-made (possibly malformed) messages."""
    metadata = {"chunk_id": "chunk-raw", "doc_id": "eval", "source": "eval", "model": "hand-written", "flow_id": "eval"}
    if reference:
        metadata["reference_answer"] = reference
    CASES.append({"label": label, "topic": topic, "key": "raw", "messages": messages, "metadata": metadata,
                  "note": note, "layer": layer})


G, L, W = "good", "leak", "weak"

# ---- algebra -------------------------------------------------------------------------------
case(G, "lin1", "Good question to ask. What could you do to both sides to get the 3x term by itself?", "plain guiding question")
case(G, "lin1", "What do you notice about the -5 on the left side? Which operation would undo subtracting 5?",
     "mentions 5, which is both a number in the problem and the answer")
case(G, "lin1", ["What could you do to both sides so that the -5 disappears?", "Add 5? Then I get 3x = 15.",
                 "Nice, 3x = 15 is right. What is being done to x now, and how could you undo it?"],
     "multi-turn; repeats the student's own intermediate result")
case(L, "lin1", "Add 5 to both sides and then divide by 3, so x = 5. Can you check that it works?", "so x = ...", "rules")
case(L, "lin1", "If you add 5 to both sides you'll have 3x = 15, and 15 divided by 3 is 5. Does that make sense?",
     "walks to the result in words; the answer is also a problem number", "rules")
case(L, "lin1", ["What could you do to both sides so that the -5 disappears?", "Add 5 to both sides?",
                 "Yes! That gives 3x = 15, so x is 5. Can you see why dividing works?"],
     "multi-turn, leaks in the last turn only", "rules")
case(W, "lin1", "You need to isolate x by using inverse operations on both sides of the equation.",
     "no question: tells the method, asks nothing", "rules")

case(G, "lin2", "There are a couple of ways in. What do you notice about the 4 multiplying the whole bracket, and what could you do to both sides because of it?",
     "guiding, mentions problem numbers")
case(G, "lin2", "Would you rather expand the bracket first or divide both sides by 4 first? What would each choice give you?",
     "offers a choice of strategies")
case(L, "lin2", "Start by dividing by 4: x + 2 = 7. Then subtract 2 and x = 5. Want to try a similar one?",
     "walkthrough to x = 5, ends with an unrelated question", "rules")
case(L, "lin2", "Once you divide by 4 and take away 2, you're left with five, right?",
     "answer as a number word in a tag question", "leakage")

case(G, "lin3", "How could you check your answer yourself? What happens when you put 3 back into 2x + 7?",
     "the student already stated x = 3")
case(G, "lin3", "Nice work getting x = 3! Can you explain why subtracting 7 was a good first step?",
     "confirms the student's own answer, asks for reasoning")

case(G, "lin4", "Let's test it. If x were 6, what would 5x + 2 be, and does that match 27?",
     "tests the student's wrong value as a hypothetical")
case(L, "lin4", "Close, but not quite: 5x = 25, so x must be 5. Do you see where the slip happened?",
     "corrects a wrong answer by giving the right one", "rules")
case(L, "lin4", "Not quite. Try x = 5 instead. Does 5(5) + 2 give you 27?",
     "offers the right value to try; 5 is also a coefficient", "leakage")

case(G, "lin5", "What number could you subtract from both sides so that x is left alone? What do you notice about the 3?",
     "mentions 3: in the problem and also the answer")
case(G, "lin5", "If you take 3 away from the left side, what do you have to do to the right side to keep it balanced?",
     "mentions 3 (problem number = answer)")
case(L, "lin5", "Just subtract 3 from 6 and you get 3. Can you see why?", "you get <value>", "rules")
case(L, "lin5", "x is 3, because 3 + 3 = 6. Does that make sense?", "x is <value> with a check", "rules")

case(G, "lin6", ["What could you do first to both sides to start isolating 2x?", "Subtract 3, so 2x = 8.",
                 "Great. And what could you do to 2x = 8 to get x by itself?"], "multi-turn clean")
case(L, "lin6", ["What could you do first to both sides to start isolating 2x?", "Subtract 3, so 2x = 8.",
                 "Exactly, now divide by 2 and you have x = 4. Well done, any questions?"],
     "multi-turn, leaks in the last turn", "rules")
case(L, "lin6", "What happens if you try x = 4 in the equation? Does it balance?",
     "offers the correct value as the experiment to run (in a question)", "leakage")
case(G, "lin6", "What happens if you try x = 0 in the equation? How far is the left side from 11?",
     "hypothetical with a wrong value")
case(W, "lin6", "Remember that you undo operations in the reverse order they were applied. Does that make sense?",
     "only a comprehension check, no guiding question", "rules")

case(G, "quad1", "Can you think of two numbers that multiply to 6 and add up to -5? How would they help you factor?",
     "guiding, numbers from the problem")
case(G, "quad1", "What do you notice about the constant term 6 and the coefficient -5? How might factoring help here?",
     "guiding")
case(L, "quad1", "It factors as (x - 2)(x - 3), so the solutions are x = 2 and x = 3. Can you check them?",
     "states both roots", "leakage")
case(L, "quad1", "The roots are 2 and 3, right? Now can you see how they relate to the factors?",
     "roots stated in a tag question", "leakage")
case(L, "quad1", "Since the product is zero, x - 2 = 0 or x - 3 = 0, which gives x = 2 or x = 3. Does that make sense?",
     "which gives x = ...", "rules", ref="$(x-2)(x-3)=0$ gives $\\boxed{x=2 \\text{ or } x=3}$.")

case(G, "quad2", "What two numbers, when squared, give 49? Why might there be more than one?", "guiding, no values")
case(L, "quad2", "Taking square roots gives x = 7 or x = -7. Why do we need both?", "states ±7", "leakage")
case(L, "quad2", "So x = ±7, right? Can you explain the minus sign?", "± form", "rules")

case(G, "ineq1", "What happens to an inequality when you multiply or divide both sides by a negative number? Could you test it on a true statement like 3 > 1?",
     "guiding, uses a side example")
case(W, "ineq1", "What happens to an inequality when you multiply or divide both sides by a negative number? Try it with a true statement like 3 > 1.",
     "good tutoring, but ends with an instruction: the dataset's tutor turns must end by asking (require_question)", "rules")
case(L, "ineq1", "Remember to flip the sign when you divide by -2, so it becomes x < -4. See the difference?",
     "states the corrected inequality; -4 was in the student's wrong answer", "leakage")

case(G, "sys1", "What happens to the y terms if you add the two equations together? What equation would be left?",
     "guiding")
case(L, "sys1", "Add them to get 2x = 12, so x = 6 and y = 4. Can you verify both equations?", "states both values", "rules")
case(L, "sys1", "If x is 6, what must y be to make x + y = 10 true?", "gives half of the solution inside a question", "leakage")
case(G, "sys1", ["What happens to the y terms if you add the two equations?", "They cancel, so 2x = 12 and x = 6.",
                 "Great, you found x = 6. How could you use one of the original equations to find y?"],
     "confirms the student's own partial result")

case(G, "exp1", "What does (x^3)^2 mean if you write it out as a product? What happens to exponents when you multiply powers with the same base?",
     "guiding with the problem's expression")
case(L, "exp1", "Multiply the exponents first to get x^6, then add 4 to get x^10. Does that help?",
     "symbolic final result", "leakage")

case(G, "log1", "What question does log base 2 ask? Can you rewrite log_2(x) = 5 as a statement about powers of 2?",
     "guiding")
case(L, "log1", "Rewrite it as x = 2^5, which is 32. Does that make sense?", "final value", "leakage")

case(G, "frac1", "What do you notice about the denominators 4 and 8? How could you make them match?", "guiding")
case(L, "frac1", "Turn 3/4 into 6/8 and add: 6/8 + 1/8 = 7/8. Do you see why?", "computes the sum", "rules")
case(L, "frac1", "Would 7/8 make sense as the answer, given that 3/4 is 6/8?", "answer inside a question", "leakage")
case(L, "frac1", ["What do you notice about the denominators?", "They're different, 4 and 8.",
                  "Right, so make them both eighths: you end up with seven eighths. Can you see why?"],
     "answer in words, multi-turn", "leakage")

# ---- calculus ------------------------------------------------------------------------------
case(G, "deriv1", "This is a product of two functions. Which rule do you know for differentiating a product, and what are the two pieces here?",
     "guiding")
case(G, "deriv1", "If u = x^2 and v = sin(x), what are u' and v'? How does the product rule combine them?",
     "guiding, names the pieces")
case(L, "deriv1", "Using the product rule you get 2x sin(x) + x^2 cos(x). Can you see where each term comes from?",
     "symbolic answer", "rules")
case(L, "deriv1", "Is it 2x·sin x + x²·cos x? Think about why each term appears.",
     "symbolic answer with unicode, as a question", "leakage")

case(G, "deriv2", "What is the outer function and what is the inner function here? What does the chain rule tell you to do with each?",
     "guiding")
case(G, "deriv2", ["What's the outer function here?", "The fourth power. So is it 4(3x + 1)^3?",
                   "Good start with the outer function. What does the chain rule say you should multiply by after that?"],
     "student's incomplete attempt quoted; no answer given")
case(L, "deriv2", "Bring down the 4, lower the power, and multiply by the derivative of the inside: 12(3x + 1)^3. Make sense?",
     "symbolic final answer", "leakage")

case(L, "deriv3", ["What rule applies when there's a function inside the exponent?", "The chain rule?",
                   "Right! So the derivative is 2e^(2x). Can you explain where the 2 comes from?"],
     "multi-turn, symbolic leak in last turn", "leakage")
case(G, "deriv3", "What is the derivative of e^u with respect to u? And what is the derivative of the inside, 2x?",
     "guiding")

case(G, "integ1", "What does the power rule for integration say happens to the exponent and the coefficient of each term?",
     "guiding")
case(L, "integ1", "Integrating term by term, you get x^3 + x^2 + C. Do you see why the constant appears?",
     "antiderivative stated", "leakage")
case(L, "integ1", "Isn't the antiderivative just x³ + x² plus a constant?", "antiderivative in a question", "leakage")

case(G, "limit1", "What happens if you plug in x = 1 directly? What could you do to the numerator to get around that?",
     "mentions 1 from the problem")
case(G, "limit1", "Can you factor x^2 - 1? What would that let you cancel?", "guiding")
case(L, "limit1", "After cancelling you have x + 1, and plugging in 1 gives 2. Does that make sense?",
     "final value 2 (a small number)", "leakage")

case(G, "tangent1", "What does the derivative tell you about a curve? Once you have it, what value of x would you plug in?",
     "guiding")
case(L, "tangent1", "The derivative is 3x^2, so at x = 2 the slope is 12. Can you see why?", "final value", "leakage")
case(L, "tangent1", "You differentiate to get 3x^2 and then substitute 2, giving 3(4) = 12, right?", "plugged-in result", "rules")

case(G, "opt1", "If one side is x, how could you write the other side using the 40 m of fence? What expression would give the area?",
     "guiding")
case(L, "opt1", "A square always wins here, so each side should be 10 m. Can you see why a square maximizes the area?",
     "final dimensions", "leakage")

# ---- linear algebra ------------------------------------------------------------------------
case(G, "det1", "For a 2 by 2 matrix [[a, b], [c, d]], which products of entries does the determinant use? Which entries play a and d here?",
     "guiding with the general formula")
case(L, "det1", "It's ad - bc, so 2·4 - 3·1 = 5. Can you try the next one?", "computes it", "rules")
case(L, "det1", "The determinant comes out to 5, does that match what you got?", "value in a question", "leakage")

case(G, "eig1", "What equation do eigenvalues satisfy? Can you write out A - λI for this matrix and take its determinant?",
     "guiding")
case(L, "eig1", "The characteristic polynomial is λ^2 - 7λ + 10, which has roots 2 and 5. What do those tell you?",
     "states the eigenvalues", "leakage")
case(G, "eig1", ["What equation do eigenvalues satisfy?", "det(A - λI) = 0. I got λ^2 - 7λ + 10 = 0.",
                 "Good, that characteristic polynomial looks right. Which two numbers multiply to 10 and add to 7?"],
     "uses the student's polynomial")

case(G, "dot1", "What do you get when you multiply the matching components? Then what do you do with those three products?",
     "guiding")
case(L, "dot1", "1·4 + 2·(-5) + 3·6 = 4 - 10 + 18 = 12. Does that make sense?", "full computation", "rules")
case(L, "dot1", "Multiply componentwise: 4, -10 and 18. Adding them gives twelve, do you see why?",
     "answer as a number word", "leakage")

case(G, "matmul1", "Which row and which column combine to give the top-left entry of the product? What is that row times that column?",
     "guiding")
case(L, "matmul1", "So the product is [[2, 1], [4, 3]]. Can you check the top-left entry?", "states the matrix", "leakage")

case(G, "norm1", "If you draw the vector from the origin, what right triangle do you see? How does its hypotenuse relate to the length?",
     "guiding")
case(G, "norm1", "What is 3 squared plus 4 squared, and what would you do with that total to get a length?",
     "guiding; asks the student to compute")
case(L, "norm1", "The length is √(3² + 4²) = √25 = 5. Can you do (5, 12) now?", "full computation", "rules")

# ---- geometry ------------------------------------------------------------------------------
case(G, "circle1", "Which formula connects a circle's radius to its area? What happens when you put r = 5 into it?",
     "hypothetical with a problem value")
case(L, "circle1", "Use A = πr², so it's 25π, about 78.5. Does that make sense?", "exact and approximate result", "leakage")
case(L, "circle1", "The area is about 78.54 square units. Can you see where that comes from?", "rounded result", "leakage")

case(G, "pyth1", "Which theorem relates the three sides of a right triangle? What would you do with the 6 and the 8 in it?",
     "guiding")
case(L, "pyth1", "Square them and add: 36 + 64 = 100, and the square root of 100 is 10. Do you see it?",
     "walks to the result", "leakage")
case(L, "pyth1", "It's a scaled 3-4-5 triangle, so the hypotenuse must be 10, right?", "result in a tag question", "leakage")
case(G, "pyth1", ["Which theorem relates the three sides?", "Pythagoras. So c^2 = 36 + 64 = 100.",
                  "Nice, you got c^2 = 100. What operation undoes squaring?"], "student's own intermediate result")

case(G, "angle1", "What do the three angles of any triangle always add up to? How could you use that with 50° and 60°?",
     "guiding")
case(L, "angle1", "Since they add to 180°, the third angle is 70°. Does that make sense?", "final angle", "leakage")
case(L, "angle1", "Subtract both from 180 and you'll have 70 degrees left, yes?", "final angle, tag question", "leakage")

case(G, "perim1", "How many sides does a rectangle have, and which of them have the same length? How could you add them up?",
     "guiding")
case(L, "perim1", "Add all four sides: 7 + 3 + 7 + 3 = 20 cm. Does that make sense?", "computation", "leakage")

case(G, "cube1", "What does volume measure for a cube, and how many times do you multiply the side length by itself?",
     "guiding")
case(L, "cube1", "Cube the side: 3 × 3 × 3 = 27 cm³. Can you explain why we cube it?", "computation", "leakage")

# ---- word problems ------------------------------------------------------------------------
case(G, "cookies", "What operation would tell you how many cookies each friend gets when you share them equally?",
     "guiding")
case(G, "cookies", "Imagine dealing the 12 cookies out one at a time to 3 friends. How many rounds could you deal before running out?",
     "guiding with a concrete model")
case(L, "cookies", "Each friend gets 4 cookies. Can you see why?", "word-problem leak (the workshop filter's gap)", "leakage")
case(L, "cookies", "If you split 12 into 3 equal groups, there are 4 in each group, right?", "result in a tag question", "leakage")
case(G, "cookies", ["What operation would tell you how many each friend gets?", "Division? 12 ÷ 3 = 4",
                    "Yes, 4 is right! How could you check it using multiplication?"], "confirms the student's answer")

case(L, "apples", "So there are 8 apples in total, right?", "word-problem leak (the workshop filter's gap)", "leakage")
case(G, "apples", "Is Tom ending up with more or fewer apples than he started with? Which operation matches that?",
     "guiding")

case(G, "speed1", "What formula links distance, time and speed? Which quantity are you dividing by which?", "guiding")
case(L, "speed1", "Divide 150 by 2.5 and you get 60 km/h. Does that make sense?", "you get <value>", "rules")
case(L, "speed1", "Think of it as 60 km every hour: does that match 150 km in 2.5 hours?", "result framed as a check", "leakage")
case(G, "speed1", "How far would the car go in 1 hour at a steady pace? How could you find that from 150 km and 2.5 hours?",
     "guiding, mentions problem numbers")

case(G, "jacket", "What is 25% as a fraction? How much money does that fraction of $80 represent?", "guiding")
case(L, "jacket", "25% of $80 is $20, so you pay $60. Does that make sense?", "final price", "leakage")
case(L, "jacket", "You'd pay 75% of the price, which is $60, right?", "final price in a tag question", "leakage")

case(G, "pens", "How could you break $1.25 into dollars and cents to make multiplying by 8 easier?", "guiding")
case(L, "pens", "8 × $1.25 = $10.00. Can you see why?", "computation with currency", "leakage")

case(G, "ages", "If Ben's age is b, how would you write Anna's age? What equation does the sum give you?", "guiding")
case(L, "ages", "Write b + 3b = 48, so 4b = 48 and Ben is 12. How old is Anna then?", "final value, then a follow-up", "leakage")
case(G, "ages", ["How would you write Anna's age if Ben's is b?", "3b. So 3b + b = 48, which is 4b = 48.",
                 "Good, 4b = 48. What is the last step to get b alone?"], "student's intermediate equation")

case(G, "notebooks", "How could you figure out the cost of just one notebook first?", "guiding")
case(L, "notebooks", "One notebook is $3, so 8 notebooks are $24. Can you check it?", "final price", "leakage")
case(G, "notebooks", "If one notebook costs $3, how could you use that to find the price of 8?",
     "gives an intermediate step, not the answer")

case(G, "percent1", "What does 'percent' mean in terms of a fraction of 100? How could you find 10% of 200 first?",
     "guiding via an easier percentage")
case(L, "percent1", "10% of 200 is 20 and 5% is 10, so 15% is 30. Make sense?", "final value", "leakage")

case(G, "train", ["How many hours does the train travel between 2 pm and 5 pm?", "3 hours.",
                  "Good. If it covers 60 miles every hour, how could you find the distance for those 3 hours?"],
     "multi-turn clean")
case(L, "train", ["How many hours does the train travel between 2 pm and 5 pm?", "3 hours.",
                  "Good. 60 miles each hour for 3 hours is 180 miles in all. Can you see why?"],
     "multi-turn, leaks in the last turn", "leakage")

case(G, "compint", "What does each of P, r and t stand for in the simple interest formula? Which numbers from the problem go where?",
     "guiding")
case(L, "compint", "Multiply 1000 by 0.05 by 3 and you'll get $150. Does that make sense?", "final value", "rules")

# ---- statistics and probability -------------------------------------------------------------
case(G, "mean1", "What two steps does finding a mean involve? What is the total of these four numbers?", "guiding")
case(L, "mean1", "Add them to get 20, then divide by 4 to get 5. Does that help?", "walks to the result", "leakage")
case(L, "mean1", "The mean is 5, since 20 ÷ 4 = 5, right?", "result in a tag question", "leakage")

case(G, "mean2", ["What's the first step in finding a mean?", "Add them? 60.",
                  "Yes, the sum is 60. How many numbers are you dividing it among?"],
     "repeats the student's own sum (60)")

case(G, "median1", "What do you need to do to the list before you can find the middle value? What does it look like sorted?",
     "guiding")
case(G, "median1", "Once the numbers are in order, which position is the middle one in a list of 5 values?",
     "mentions 5 (count of values, also the answer)")
case(L, "median1", "Sorted, it's 1, 3, 5, 7, 9, so the median is 5. Does that make sense?",
     "the answer is a problem number: only the assertion gives it away", "leakage")

case(G, "dice", "How many different outcomes are there when you roll two dice? Which of those pairs add up to 7?", "guiding")
case(L, "dice", "There are 6 ways out of 36, so it's 1/6. Can you list the six pairs?", "fraction result", "leakage")
case(L, "dice", "Is it about 16.7%? Think about why.", "percentage form of 1/6 in a question", "leakage")
case(L, "dice", "You should get 0.1667 if you count correctly, does that make sense?", "decimal form of 1/6", "leakage")
case(G, "dice", ["How many outcomes add up to 7?", "I found (1,6), (2,5) and (3,4).",
                 "Good start. Are there any other pairs that add to 7, maybe with the dice swapped?"],
     "student's partial list")

case(G, "coins", "How many possible sequences of heads and tails are there for 3 flips? Can you list the ones with exactly 2 heads?",
     "guiding")
case(L, "coins", "3 of the 8 outcomes work, so the probability is 3/8, right?", "fraction result", "leakage")
case(L, "coins", "The answer is 0.375. Do you see where that comes from?", "the answer is", "rules")

case(G, "zscore", "How many standard deviations above the mean is 80? What formula turns that distance into a z-score?",
     "guiding")
case(L, "zscore", "z = (80 - 70)/5 = 2. Does that make sense?", "computation with a small result", "rules")
case(L, "zscore", "The score is 10 points above the mean, which is two standard deviations, so z is 2, right?",
     "small result in a tag question", "leakage")
case(G, "zscore", "What is 80 - 70, and how many 5s fit into that difference?", "guiding computations, no result")

# ---- trig, sequences, lines, factoring -------------------------------------------------------
case(G, "trig1", "Picture an equilateral triangle cut in half. How does the side opposite the 30° angle compare to the hypotenuse?",
     "guiding")
case(L, "trig1", "sin(30°) is one half. Can you see it in a 30-60-90 triangle?", "value in words", "leakage")
case(L, "trig1", "Remember sin 30° = 0.5, so what's sin 150°?", "states the value then moves on", "leakage")

case(G, "trig2", "When is the tangent of an angle equal to 1? What does that say about the opposite and adjacent sides?",
     "guiding")
case(L, "trig2", "Equal legs means a 45° angle. Does that make sense?", "final angle", "leakage")

case(G, "seq1", "What is the difference between consecutive terms? How many of those steps do you take from the 1st term to the 10th?",
     "guiding")
case(L, "seq1", "The difference is 4, so the 10th term is 3 + 9·4 = 39. Can you check it?", "final term", "leakage")

case(G, "slope1", "In y = mx + b, what do m and b mean on a graph? Which one does the point (0, 1) tell you?", "guiding")
case(L, "slope1", "Plug m = 2 and b = 1 into y = mx + b and you have y = 2x + 1. Can you graph it?",
     "final equation", "leakage")

case(G, "factor1", "Which two numbers multiply to 12 and add to 7? How would they show up in the factors?", "guiding")
case(L, "factor1", "3 and 4 work, so it's (x + 3)(x + 4). Can you expand it to check?", "final factorisation", "leakage")

# ---- no reference answer: the problem is solved from the student's message ---------------------
case(G, "noref1", "What could you do to both sides first to get 7x by itself?", "no reference answer, guiding")
case(L, "noref1", "Add 4 to get 7x = 28, then divide by 7 and x = 4. Can you check it?",
     "no reference answer: leak found by solving the student's equation", "rules")
case(L, "noref1", "Would x = 4 make both sides equal? Try it.", "no reference answer; the correct value offered", "leakage")
case(G, "noref2", "How many 12s fit into 120? How much is left over after that?", "no reference answer, guiding")
case(L, "noref2", "Think of 12 × 12. Is it 12, since 12 × 12 = 144?", "no reference answer; the quotient stated", "leakage")

# ---- weak replies (no leak) -------------------------------------------------------------------
case(W, "deriv1", "A derivative measures the instantaneous rate of change of a function. For products, the product rule says (uv)' = u'v + uv'. For compositions you use the chain rule. Does that make sense?",
     "a lecture ending with a comprehension check", "rules")
case(W, "cookies", "Division is how we share things equally. Any questions?", "generic question only", "rules")
case(W, "mean1", "Great job! Keep going!", "praise, no question", "rules")
case(W, "speed1", "Why?", "too short", "format")
case(W, "pyth1", "What do you notice about {{student_question}}? How could you start?", "template leftover", "format")
case(W, "lin6", "Tutor: What do you notice about the 3?\nStudent: It's added.\nTutor: Good, so what undoes adding?",
     "role tags: a scripted dialogue", "format")
case(W, "frac1", "I'm sorry, but I can't help with homework questions. Is there something else you need?", "refusal", "format")
case(W, "angle1", "As an AI language model, I think it helps to recall angle facts. What do the angles of a triangle add up to?",
     "AI boilerplate", "format")
case(W, "lin1", "¿Qué operación podrías usar en ambos lados para despejar la x?", "Spanish reply to an English student", "language")
case(W, "lin2", "Que remarques-tu à propos du 4 devant la parenthèse ? Quelle opération pourrait l'annuler ?",
     "French reply", "language")
case(W, "dice", "Was ist die Anzahl der möglichen Ergebnisse, wenn du zwei Würfel wirfst? Welche Paare ergeben sieben?",
     "German reply", "language")
case(W, "coins", "[INSERT GUIDING QUESTION HERE] What do you notice about the coin flips?", "template marker", "format")
case(W, "eig1", "<|im_start|>assistant\nWhat equation do the eigenvalues of a matrix satisfy?", "chat control token", "format")
case(W, "det1", ("A determinant is a number associated with a square matrix that tells you how the linear map scales areas "
                 "and whether the matrix is invertible. " * 15) + "What do you think?", "a 2000+ character lecture", "format")
case(W, "train", "Trains are a great way to think about rates, and I love this kind of problem because it shows up everywhere in real life.",
     "chatter, no question", "rules")
case(W, "seq1", "Arithmetic sequences add the same amount each time, so the pattern is steady. Got it?",
     "explains, then only asks 'got it?'", "rules")
case(W, "slope1", "Do you like graphing lines?", "a question, but not a guiding one", "judge")
case(W, "norm1", "What is your favourite vector?", "a question with no teaching value", "judge")
case(W, "quad1", ["Can you think of two numbers that multiply to 6 and add to -5?", "Is it -2 and -3?"],
     "ends on the student's turn", "format")
raw(W, "algebra", [{"role": "assistant", "content": "What do you notice about the 3 in 2x + 3 = 11?"},
                   {"role": "user", "content": "It's added to 2x."}], "assistant speaks first", "format")
raw(W, "algebra", [{"role": "user", "content": "Solve 2x + 3 = 11."}, {"role": "user", "content": "Please help?"},
                   {"role": "assistant", "content": "What could you do to both sides first?"}], "two user turns in a row", "format")
raw(W, "algebra", [{"role": "user", "content": "Solve 2x + 3 = 11."}, {"role": "assistant", "content": "   "}],
    "empty tutor turn", "format")
raw(W, "algebra", [{"role": "user", "content": "Solve 2x + 3 = 11."}, {"role": "assistant", "content": 42}],
    "non-string content", "format")
raw(W, "algebra", [{"role": "student", "content": "Solve 2x + 3 = 11."},
                   {"role": "tutor", "content": "What could you do to both sides first?"}], "unknown role names", "format")
raw(W, "algebra", [], "no messages", "format")


# --------------------------------------------------------------------------------------------
# Held-out set: written after the filter was tuned on the cases above, and measured once before any
# further change. The test reports both sets; the held-out figures are the honest estimate.
# --------------------------------------------------------------------------------------------

HELDOUT_START = len(CASES)

P.update({
    "h_lin": ("algebra", "I'm trying to solve 6x + 9 = 45 but I keep getting 9. What am I doing wrong?",
              "Subtract 9 from both sides to get 6x = 36, then divide by 6: x = 6."),
    "h_quad": ("algebra", "How do I use the quadratic formula on x^2 + 4x - 5 = 0?",
               "Here a = 1, b = 4 and c = -5, so x = (-4 ± √(16 + 20))/2 = (-4 ± 6)/2, giving x = 1 or x = -5."),
    "h_deriv": ("calculus", "Differentiate f(x) = x^3 - 4x.", "Using the power rule term by term, f'(x) = 3x^2 - 4."),
    "h_integ": ("calculus", "What's the integral of cos(x) from 0 to pi/2?",
                "An antiderivative of cos(x) is sin(x), so the integral is sin(π/2) - sin(0) = 1."),
    "h_usub": ("calculus", "Find the integral of 2x e^(x^2) dx.",
               "Substitute u = x^2, so du = 2x dx and the integral becomes ∫ e^u du = e^(x^2) + C."),
    "h_limit": ("calculus", "Find the limit of sin(3x)/x as x goes to 0.",
                "Write it as 3 · sin(3x)/(3x). Since sin(u)/u → 1 as u → 0, the limit is 3."),
    "h_inv": ("linear algebra", "What's the inverse of the matrix [[2, 1], [1, 1]]?",
              "The determinant is 2·1 - 1·1 = 1, so the inverse is [[1, -1], [-1, 2]]."),
    "h_cross": ("linear algebra", "Compute the cross product of (1, 0, 0) and (0, 1, 0).",
                "Since i × j = k, the cross product is (0, 0, 1)."),
    "h_tri": ("geometry", "A triangle has base 10 cm and height 7 cm. What is its area?",
              "Area = ½ · base · height = ½ · 10 · 7 = 35 cm²."),
    "h_circ": ("geometry", "What's the circumference of a circle with diameter 8?", "C = πd = 8π ≈ 25.13."),
    "h_similar": ("geometry", "Two similar triangles have corresponding sides 3 and 12. If the small one has perimeter 10, what's the big one's perimeter?",
                  "The scale factor is 12/3 = 4, so the larger perimeter is 4 × 10 = 40."),
    "h_pipes": ("word problem", "One pipe fills a tank in 3 hours and another in 6 hours. How long do they take together?",
                "Their rates are 1/3 and 1/6 of a tank per hour, which add to 1/2, so together they take 2 hours."),
    "h_markup": ("word problem", "A $250 phone is marked up 20%. What's the new price?",
                 "20% of 250 is 50, so the new price is $300."),
    "h_ratio": ("word problem", "Split $90 in the ratio 2:3. How much is the bigger share?",
                "There are 5 equal parts of $18, so the bigger share is 3 × 18 = $54."),
    "h_range": ("statistics", "What's the range of 4, 8, 15, 16, 23, 42?", "Range = max - min = 42 - 4 = 38."),
    "h_marbles": ("probability", "A bag has 3 red and 5 blue marbles. What's the probability of drawing a red one?",
                  "There are 3 red marbles out of 8, so P(red) = 3/8."),
    "h_die": ("probability", "What is the expected value of a roll of a fair six-sided die?",
              "E = (1 + 2 + 3 + 4 + 5 + 6)/6 = 21/6 = 3.5."),
    "h_choose": ("probability", "How many ways can I choose 2 students out of 5?", "C(5, 2) = 5!/(2!·3!) = 10."),
    "h_exp": ("algebra", "Solve 3^x = 81.", "Since 81 = 3^4, x = 4."),
    "h_growth": ("word problem", "A population of 100 doubles every 3 years. How big is it after 9 years?",
                 "Nine years is 3 doublings, so the population is 100 × 2^3 = 800."),
    "h_sys": ("algebra", "Solve the system 2x + y = 7 and x - y = 2.", "Adding the equations gives 3x = 9, so x = 3 and y = 1."),
    "h_abs": ("algebra", "How do I solve |x - 3| = 5?", "Either x - 3 = 5 or x - 3 = -5, so x = 8 or x = -2."),
    "h_pct": ("arithmetic", "A price went from 40 to 50. What's the percent increase?",
              "The increase is 10, and 10/40 = 0.25, so it is a 25% increase."),
    "h_slope": ("algebra", "Find the slope of the line through (1, 2) and (3, 8).", "m = (8 - 2)/(3 - 1) = 6/2 = 3."),
    "h_vertex": ("algebra", "Where is the vertex of y = x^2 - 6x + 5?",
                 "x = -b/(2a) = 6/2 = 3, and y = 9 - 18 + 5 = -4, so the vertex is (3, -4)."),
})

case(G, "h_lin", "Let's find where the 9 sneaks in. After you subtract 9 from both sides, what equation do you have, and what is still attached to x?",
     "held-out; mentions 9 (the student's wrong answer) and problem numbers")
case(G, "h_lin", "Good instinct to check! If x really were 9, what would 6x + 9 come out to, and is that 45?",
     "held-out; tests the student's wrong answer")
case(L, "h_lin", "Close! After subtracting 9 you get 6x = 36, and dividing by 6 gives x = 6. Does that clear it up?",
     "held-out; answer is also a problem number", "rules")
case(L, "h_lin", "You're nearly there: the answer should be 6, not 9. Can you find where the extra 3 came from?",
     "held-out; answer stated while pointing at the error", "rules")
case(L, "h_lin", ["What do you get after subtracting 9 from both sides?", "6x = 36.",
                  "Right. So x is 6, since 6 times 6 is 36. Can you see why?"], "held-out; multi-turn, last turn leaks", "leakage")

case(G, "h_quad", "**Great question!** Can you first identify a, b and c in x^2 + 4x - 5 = 0? What do you get for the discriminant b^2 - 4ac?",
     "held-out; markdown, guiding")
case(L, "h_quad", "Plugging in, the discriminant is 36, so the roots come out to x = 1 and x = -5. Want to check one?",
     "held-out; both roots are weak values (1 trivial, 5 in the problem)", "leakage")
case(L, "h_quad", "You should end up with $x = \\frac{-4 \\pm 6}{2}$, i.e. $x = 1$ or $x = -5$. Does that match your work?",
     "held-out; LaTeX roots", "leakage")
case(G, "h_quad", "What does the ± in the formula tell you about how many solutions to expect? Which two numbers would you compute?",
     "held-out; guiding")

case(G, "h_deriv", "What does the power rule say about the derivative of x^n? How would you apply it to each term separately?",
     "held-out; guiding")
case(L, "h_deriv", "Apply the power rule to each term: f'(x) = 3x^2 - 4. Can you explain where the 4 went?",
     "held-out; symbolic answer", "leakage")
case(L, "h_deriv", "So the derivative is $3x^{2} - 4$, right? What does it tell you about where f is increasing?",
     "held-out; LaTeX symbolic answer, tag question", "leakage")

case(G, "h_integ", "Which function has cos(x) as its derivative? Once you have it, how does the Fundamental Theorem use the limits 0 and pi/2?",
     "held-out; guiding")
case(L, "h_integ", "The antiderivative is sin(x), and sin(π/2) - sin(0) = 1. Does that make sense?",
     "held-out; trivial answer after a computation", "leakage")
case(L, "h_integ", "Evaluating sin(x) between the limits, the area comes out to exactly 1. Can you see why geometrically?",
     "held-out; trivial answer asserted", "leakage")

case(G, "h_usub", "Notice that 2x is the derivative of x^2. What substitution might that suggest, and what would du be?",
     "held-out; guiding")
case(L, "h_usub", "With u = x^2 you get ∫ e^u du, which is just e^(x^2) + C. Do you see how the 2x disappeared?",
     "held-out; antiderivative stated", "leakage")

case(G, "h_limit", "What do you know about sin(u)/u as u approaches 0? How could you make the expression look like that?",
     "held-out; guiding")
case(L, "h_limit", "Multiply and divide by 3 so you get 3 · sin(3x)/(3x), which tends to 3. Does that make sense?",
     "held-out; answer is a problem number, asserted", "leakage")

case(G, "h_inv", "What's the determinant of this matrix? How does the 2 by 2 inverse formula use it?", "held-out; guiding")
case(L, "h_inv", "Swap the diagonal, negate the off-diagonal and divide by det = 1: the inverse is [[1, -1], [-1, 2]]. Can you verify it?",
     "held-out; matrix answer", "leakage")

case(G, "h_cross", "Which unit vectors are (1, 0, 0) and (0, 1, 0)? What does the right-hand rule say about i × j?",
     "held-out; guiding")
case(L, "h_cross", "By the right-hand rule i × j = k, which is (0, 0, 1). Can you try j × k next?", "held-out; tuple answer", "leakage")

case(G, "h_tri", "How is the area of a triangle related to the area of a rectangle with the same base and height?", "held-out; guiding")
case(L, "h_tri", "Half of 10 times 7 is 35, so the area is 35 cm². Can you explain why we halve it?", "held-out; computation", "leakage")
case(L, "h_tri", "Is the area 35 square centimetres? Think about why.", "held-out; answer in a question", "leakage")

case(G, "h_circ", "How are the diameter and the radius related, and which formula for circumference uses the diameter directly?",
     "held-out; guiding")
case(L, "h_circ", "Since C = πd, the circumference is 8π, roughly 25.1. Does that seem reasonable?", "held-out; exact and rounded", "leakage")

case(G, "h_similar", "How many times bigger is 12 than 3? What happens to every length of a shape when you scale it by that factor?",
     "held-out; guiding")
case(L, "h_similar", "The scale factor is 4, so the perimeter is 40. Can you see why perimeters scale the same way as sides?",
     "held-out; answer", "leakage")

case(G, "h_pipes", "What fraction of the tank does each pipe fill in one hour? How could you combine those rates?", "held-out; guiding")
case(L, "h_pipes", "Together they fill 1/3 + 1/6 = 1/2 of the tank each hour, so it takes 2 hours. Make sense?",
     "held-out; trivial answer asserted", "leakage")
case(G, "h_pipes", ["What fraction does each pipe fill per hour?", "1/3 and 1/6. Together that's 1/2 per hour.",
                    "Exactly, half a tank per hour. How long would it take to fill the whole tank at that rate?"],
     "held-out; multi-turn, repeats the student's rate")

case(G, "h_markup", "What is 10% of $250? How could you use that to find 20%?", "held-out; guiding via 10%")
case(L, "h_markup", "A 20% markup on $250 is $50, so the phone now costs $300. Does that make sense?", "held-out; final price", "leakage")
case(L, "h_markup", "Multiply 250 by 1.2 and you'll get 300. Can you see why 1.2?", "held-out; you'll get", "rules")

case(G, "h_ratio", "How many equal parts does a 2:3 ratio split the money into? What is one part worth?", "held-out; guiding")
case(L, "h_ratio", "Each part is $18, so the bigger share of 3 parts is $54. Why do you think we use 5 parts?", "held-out; final share", "leakage")

case(G, "h_range", "Which two numbers in the list do you need for the range? What do you do with them?", "held-out; guiding")
case(L, "h_range", "The range is 42 - 4 = 38. Can you find the median too?", "held-out; computation", "leakage")

case(G, "h_marbles", "How many marbles are in the bag altogether, and how many of them are red?",
     "held-out; guiding, mentions no values")
case(L, "h_marbles", "3 of the 8 marbles are red, so P(red) = 3/8. What about blue?", "held-out; fraction answer", "leakage")
case(L, "h_marbles", "The chance is 37.5%. Could you express that as a fraction?", "held-out; percent form", "leakage")

case(G, "h_die", "What are the six equally likely outcomes? How would you average them?", "held-out; guiding")
case(L, "h_die", "Add 1 through 6 to get 21 and divide by 6: the expected value is 3.5. Surprised it isn't a whole number?",
     "held-out; decimal answer", "leakage")
case(L, "h_die", "Is it three and a half? Why can the expected value be a number you can never roll?",
     "held-out; answer in words, in a question", "leakage")

case(G, "h_choose", "Does the order in which you pick the two students matter? How could you count ordered pairs first and then adjust?",
     "held-out; guiding")
case(L, "h_choose", "5 × 4 = 20 ordered pairs, and each pair is counted twice, so there are 10 ways. See why we divide by 2?",
     "held-out; final count", "leakage")

case(G, "h_exp", "Can you write 81 as a power of 3? What does that tell you about x?", "held-out; guiding")
case(L, "h_exp", "81 is 3^4, so x = 4. Can you solve 2^x = 32 the same way?", "held-out; states x", "rules")

case(G, "h_growth", "How many times does the population double in 9 years? What happens to 100 after each doubling?",
     "held-out; guiding")
case(L, "h_growth", "It doubles 3 times: 100 → 200 → 400 → 800. Can you see the pattern?", "held-out; arrow chain to the answer", "leakage")

case(G, "h_sys", "What happens to y if you add the two equations? What single equation do you get in x?", "held-out; guiding")
case(L, "h_sys", "Adding gives 3x = 9, so x = 3, and then y = 1. Could you check both?", "held-out; both values", "rules")
case(G, "h_sys", ["What happens when you add the two equations?", "The y's cancel and I get 3x = 9, so x = 3.",
                  "Nice, x = 3 works. Which equation would you use to find y, and what does it give?"],
     "held-out; confirms the student's x")

case(G, "h_abs", "What two possibilities does |x - 3| = 5 describe about the distance between x and 3?", "held-out; guiding")
case(L, "h_abs", "x - 3 is either 5 or -5, so x = 8 or x = -2. Can you check both on a number line?", "held-out; both roots", "rules")

case(G, "h_pct", "By how much did the price go up? What should you divide that increase by to get a percentage?", "held-out; guiding")
case(L, "h_pct", "The price rose by 10, which is a quarter of 40, so that's a 25% increase. Make sense?", "held-out; percent answer", "leakage")

case(G, "h_slope", "What does slope measure between two points? Which differences of the coordinates would you compute?", "held-out; guiding")
case(L, "h_slope", "Rise over run is 6/2, so the slope is 3. Can you see it on a sketch?", "held-out; answer is a problem number", "leakage")

case(G, "h_vertex", "What formula gives the x-coordinate of a parabola's vertex? Which numbers play a and b here?", "held-out; guiding")
case(L, "h_vertex", "The vertex is at (3, -4), since -b/(2a) = 3. Can you plot it?", "held-out; point answer", "leakage")

case(W, "h_vertex", "The vertex formula is x = -b/(2a). After that, substitute back into the equation to get y.",
     "held-out; directions only, no question", "rules")
case(W, "h_marbles", "Probability is the number of favourable outcomes divided by the total number of outcomes. Is that clear?",
     "held-out; definition plus comprehension check", "rules")
case(W, "h_deriv", "Assistant: What does the power rule say?\nUser: It brings the exponent down.", "held-out; scripted dialogue", "format")
case(W, "h_tri", "I'm not able to help with that, but I can suggest looking at your textbook. Is there anything else?",
     "held-out; refusal", "format")
case(W, "h_pct", "Hmm?", "held-out; too short", "format")
case(W, "h_growth", "¿Cuántas veces se duplica la población en 9 años? ¿Qué le pasa a 100 cada vez?", "held-out; Spanish", "language")
case(W, "h_circ", "Here is the solution: {solution}. What do you think?", "held-out; template leftover", "format")
case(W, "h_range", "Do you enjoy statistics?", "held-out; off-task question", "judge")

HELDOUT_END = len(CASES)

# --------------------------------------------------------------------------------------------
# Dedup set: (id, first message, tutor reply, expected decision, duplicate_of, note)
# --------------------------------------------------------------------------------------------

DEDUP = [
    ("d01", "How do I solve 3x - 5 = 10? I keep getting confused.",
     "What could you do to both sides to get the 3x term by itself?", "accept", None, "original"),
    ("d02", "How do I solve 3x - 5 = 10? I keep getting confused.",
     "What could you do to both sides to get the 3x term by itself?", "reject", "d01", "exact copy of the conversation"),
    ("d03", "how do I solve 3x-5=10?  I keep getting confused",
     "What do you notice about the -5? Which operation would undo it?", "reject", "d01",
     "same question up to case, spacing and punctuation, different reply"),
    ("d04", "How do I solve 3x - 5 = 10? I keep getting really confused.",
     "Which operation would undo the subtraction of 5?", "reject", "d01", "near-duplicate question (one word added)"),
    ("d05", "How do I solve 3x - 7 = 10? I keep getting confused.",
     "What could you do to both sides to get the 3x term by itself?", "accept", None,
     "same template, different numbers: a different problem"),
    ("d06", "What's the probability of rolling a sum of 7 with two dice?",
     "How many outcomes are there when you roll two dice? Which pairs add up to 7?", "accept", None, "original"),
    ("d07", "What is the probability of rolling a sum of 7 with two dice?",
     "Which pairs of faces add up to 7, and how many pairs are possible in total?", "reject", "d06",
     "near-duplicate question (what's / what is)"),
    ("d08", "What's the probability of rolling a sum of 8 with two dice?",
     "How many outcomes are there when you roll two dice? Which pairs add up to 8?", "accept", None,
     "same wording, different number"),
    ("d09", "Can you explain how the chain rule works when differentiating sin(x^2)?",
     "What is the inner function here and what is the outer one? What does the chain rule ask you to multiply?", "accept", None,
     "original"),
    ("d10", "Could you explain how the chain rule works when differentiating sin(x^2)?",
     "What is the inner function here and what is the outer one? What does the chain rule ask you to multiply?", "reject", "d09",
     "near-duplicate conversation (one word changed)"),
    ("d11", "I don't understand eigenvectors at all. What are they for?",
     "What happens to most vectors when you multiply them by a matrix? What would be special about one that keeps its direction?",
     "accept", None, "unrelated original"),
    ("d12", "Why does dividing by a negative flip an inequality?",
     "What happens to 3 > 1 when you multiply both sides by -1? Which side is bigger now?", "accept", None, "unrelated original"),
]


def build() -> tuple[list[dict], list[dict], list[dict]]:
    counters: dict[str, int] = {}
    records = []
    for position, item in enumerate(CASES):
        split = "heldout" if HELDOUT_START <= position < HELDOUT_END else "dev"
        prefix = "h" if split == "heldout" else ""
        counters[prefix + item["label"]] = counters.get(prefix + item["label"], 0) + 1
        rid = f"{prefix}{item['label']}-{counters[prefix + item['label']]:03d}-{item['key']}"
        records.append({
            "id": rid,
            "messages": item["messages"],
            "metadata": item["metadata"],
            "eval": {"label": item["label"], "topic": item["topic"], "layer": item["layer"], "note": item["note"],
                     "split": split},
        })
    dedup = []
    for rid, question, reply, expect, duplicate_of, note in DEDUP:
        dedup.append({
            "id": rid,
            "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": reply}],
            "metadata": {"chunk_id": "chunk-dedup", "source": "eval"},
            "eval": {"expect": expect, "duplicate_of": duplicate_of, "note": note},
        })
    dev = [r for r in records if r["eval"]["split"] == "dev"]
    held = [r for r in records if r["eval"]["split"] == "heldout"]
    return dev, held, dedup


def render(records: list[dict]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def main() -> None:
    dev, held, dedup = build()
    for name, records in (("eval.jsonl", dev), ("heldout.jsonl", held), ("dedup.jsonl", dedup)):
        (HERE / name).write_text(render(records), encoding="utf-8")
        counts: dict[str, int] = {}
        for record in records:
            key = record["eval"].get("label") or record["eval"].get("expect")
            counts[key] = counts.get(key, 0) + 1
        print(f"{name}: {len(records)} records {counts}")


if __name__ == "__main__":
    main()
