"""Scale benchmark: generate (simulated endpoint), filter and export at two sizes, wall time and
peak memory (RSS) per stage, and how both change with the number of chunks.

    .venv/bin/python benchmarks/bench_scale.py                       # 2,000 and 20,000 chunks, ~2.5 minutes on 2 cores
    .venv/bin/python benchmarks/bench_scale.py --sizes 500,5000 --latency 0.005:0.015 --concurrency 64
    .venv/bin/python benchmarks/bench_scale.py --stages filter,export --work /tmp/scale --keep   # reuse generated data

Input: synthetic math-textbook chunks (ten topics, ~300 tokens each: explanation, a worked example
and one exercise with its answer, as textbooks print them; numbers drawn per chunk, so no two
exercises are the same and dedup keeps them apart), in the chunk stage's record shape
(``chunk_id`` derived from the content, ``doc_id``, ``source``, ``headings``, ``pages``,
``num_tokens``, ``text``). The first N chunks of the larger size are the chunks of the smaller one.

The endpoint is bench_generate.py's simulator (socratic_sdg.testing.fake_openai in its own process: at most
``--concurrency`` requests served at once, each taking ``--latency`` seconds) with replies that look
like a real model's for the ``socratic-single-turn`` flow: a student message about the chunk's
exercise in the sampled persona's tone and request type, a reference answer with the result, and a
tutor reply that is a guiding question (~72%), leaks the result (~18%) or does not guide (~10%), so
the filter rejects a realistic share. The client uses ``max_concurrency = --concurrency``.

Stages, each in its own fresh Python process per size, so its peak RSS is its own: ``VmHWM`` of
the process at the end (``ru_maxrss`` would not do: Linux carries the high-water mark of the
process that forked it across exec, so a child of a 500 MB parent reports 500 MB):

* generate: ``generate.run`` on chunks.jsonl (the real engine, the packaged flow);
* filter: ``filter.run`` on conversations.jsonl, default options (dedup on);
* export: ``export.run`` on accepted.jsonl, then the run summary, the dataset card and the HTML
  report (``summary.collect``, ``summary.write``, ``report.write_reports``), as the pipeline's export
  component does.

"import" is the peak RSS of a process that only imports what the stage imports (its module and the
modules it loads on first use: sdg_hub, the engine and transport for generate; numpy and the dedup
module for filter; report, summary and the tokenizer module for export), so the growth above it is
what the stage holds while it runs. Printed: a line per stage and size as it finishes (with CPU
seconds; for generate also the client's and the simulator's CPU per request: on a small machine the
two share the cores, and the client's CPU, not the simulated capacity, bounds the request rate),
then a table (wall s, records/s, peak RSS, RSS above import) and per stage the ratios of the largest
to the smallest size: wall time (~ the size ratio expected), peak RSS and RSS above import (~1 for a
streaming stage), and the growth of RSS above import per 10,000 more records.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from math import gcd
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
FLOW = "socratic-single-turn"
STAGES = ("generate", "filter", "export")

# What each stage imports before it touches its input (the "import" baseline).
IMPORTS = {
    "generate": ["socratic_sdg.generate.stage", "socratic_sdg.generate.runner", "socratic_sdg.generate.transport", "socratic_sdg.endpoint",
                 "sdg_hub", "openai"],
    "filter": ["socratic_sdg.filtering.stage", "socratic_sdg.filtering.dedup", "socratic_sdg.filtering.leakage"],
    "export": ["socratic_sdg.export.dataset", "socratic_sdg.export.report", "socratic_sdg.export.summary", "socratic_sdg.chunk", "tiktoken"],
}


# --- synthetic chunks -------------------------------------------------------------------------


def _term(coefficient: int, power: str = "") -> str:
    """A signed term for a polynomial after its first term: ' + 3x', ' - 7'."""
    sign = "-" if coefficient < 0 else "+"
    return f" {sign} {abs(coefficient)}{power}"


def _linear(rng):
    a, x, b = rng.randint(2, 19), rng.randint(-30, 60), rng.choice([i for i in range(-90, 91) if i])
    c = a * x + b
    return {
        "title": "Solving linear equations",
        "chapter": "Equations and inequalities",
        "instruction": "Solve for x",
        "obj": f"{a}x{_term(b)} = {c}",
        "answer": f"x = {x}",
        "method": "Move the constant to the other side and divide both sides by the coefficient of x",
        "example": (
            lambda a2, x2, b2: (
                f"Example. Solve {a2}x{_term(b2)} = {a2 * x2 + b2}. Subtracting {b2} from both sides gives "
                f"{a2}x = {a2 * x2}, and dividing by {a2} gives x = {x2}. Check: {a2}({x2}){_term(b2)} = {a2 * x2 + b2}."
            )
        )(rng.randint(2, 12), rng.randint(-9, 20), rng.randint(1, 40)),
        "paragraphs": [
            "A linear equation in one unknown has the form ax + b = c with a not equal to zero. Solving it means finding "
            "every value of x that makes the two sides equal. Each step must keep the two sides balanced: whatever is done to "
            "one side is done to the other.",
            "Two operations are enough. Adding or subtracting the same quantity on both sides moves a term across the equals "
            "sign with its sign changed; multiplying or dividing both sides by the same non-zero number scales the equation "
            "without changing its solutions. Undo the operations applied to x in the reverse order in which they were applied.",
            "It is good practice to check a solution by substituting it back into the original equation. A frequent slip is "
            "to forget to change the sign of a term when it moves to the other side, or to divide only one of the terms.",
        ],
        "guides": [
            "What could you do to both sides of {obj} to get the term with x by itself?",
            "Which operation is applied to x last in {obj}, and how could you undo it first?",
            "If you want only the x term on the left of {obj}, what has to happen to the constant?",
        ],
        "concept": "moving a term to the other side changes its sign",
    }


def _quadratic(rng):
    p, q = rng.sample([i for i in range(-25, 26) if i], 2)
    s, prod = p + q, p * q
    return {
        "title": "Quadratic equations by factoring",
        "chapter": "Polynomials",
        "instruction": "Solve by factoring",
        "obj": f"x^2{_term(-s, 'x')}{_term(prod)} = 0" if s else f"x^2{_term(prod)} = 0",
        "answer": f"x = {min(p, q)} or x = {max(p, q)}",
        "method": "Find two numbers whose product is the constant term and whose sum is minus the coefficient of x, and factor",
        "example": (
            lambda r1, r2: (
                f"Example. To solve x^2{_term(-(r1 + r2), 'x')}{_term(r1 * r2)} = 0, look for two numbers with product "
                f"{r1 * r2} and sum {r1 + r2}: they are {r1} and {r2}, so (x{_term(-r1)})(x{_term(-r2)}) = 0 and x = {r1} or x = {r2}."
            )
        )(rng.randint(1, 9), rng.randint(10, 19)),
        "paragraphs": [
            "A quadratic equation x^2 + bx + c = 0 can often be solved by writing its left side as a product of two linear "
            "factors. If (x - r)(x - s) = 0, then expanding gives x^2 - (r + s)x + rs, so r and s are two numbers whose sum is "
            "-b and whose product is c.",
            "The method rests on the zero-product property: a product of real numbers is zero exactly when at least one of the "
            "factors is zero. Each factor then gives one solution. When no pair of integers works, the quadratic formula or "
            "completing the square is needed instead.",
            "Always move every term to one side first, so that the other side is zero. Dividing both sides by x to simplify "
            "is a classic mistake: it loses the solution x = 0 whenever x is a factor.",
        ],
        "guides": [
            "Which two numbers would have to multiply to the constant term of {obj}, and what should they add up to?",
            "Can you write the left side of {obj} as a product of two brackets? What would each bracket need to contain?",
            "If a product of two factors is zero, what can you say about each of the factors?",
        ],
        "concept": "a product being zero tells us something about each factor",
    }


def _derivative(rng):
    a, n, b, c, k = rng.randint(2, 9), rng.randint(2, 5), rng.randint(-12, 12) or 1, rng.randint(1, 40), rng.randint(-4, 6)
    value = a * n * k ** (n - 1) + b
    return {
        "title": "The power rule",
        "chapter": "Differentiation",
        "instruction": f"Differentiate and evaluate the derivative at x = {k}",
        "obj": f"f(x) = {a}x^{n}{_term(b, 'x')}{_term(c)}",
        "answer": f"f'({k}) = {value}",
        "method": "Apply the power rule to each term, drop the constant, then substitute the point",
        "example": (lambda a2, n2: f"Example. For g(x) = {a2}x^{n2} - 5x + 2, the power rule gives g'(x) = {a2 * n2}x^{n2 - 1} - 5, so g'(1) = {a2 * n2 - 5}.")(
            rng.randint(2, 8), rng.randint(2, 6)
        ),
        "paragraphs": [
            "The derivative of a function measures its instantaneous rate of change. For powers of x there is a short rule: "
            "the derivative of x^n is n x^(n-1) for every integer n. A constant factor is carried along, and the derivative "
            "of a constant is zero, since a constant does not change.",
            "Because differentiation is linear, the derivative of a sum is the sum of the derivatives. A polynomial is therefore "
            "differentiated term by term. The value of the derivative at a point is the slope of the tangent line to the graph "
            "at that point.",
            "Students often subtract one from the exponent but forget to multiply by the old exponent, or they keep the "
            "constant term. Another mistake is to evaluate the function at the point before differentiating it.",
        ],
        "guides": [
            "What does the power rule tell you about the derivative of each term of {obj}?",
            "What happens to the constant term of {obj} when you differentiate, and why?",
            "Once you have the derivative of {obj}, what would you substitute to evaluate it at the point?",
        ],
        "concept": "the exponent comes down in front when you differentiate",
    }


def _integral(rng):
    a, b, k = 2 * rng.randint(1, 9), rng.randint(-10, 15), rng.randint(2, 12)
    value = a * k * k // 2 + b * k
    return {
        "title": "Definite integrals",
        "chapter": "Integration",
        "instruction": f"Evaluate the integral from 0 to {k} of",
        "obj": f"{a}x{_term(b)} dx" if b else f"{a}x dx",
        "answer": f"the integral equals {value}",
        "method": "Find an antiderivative, evaluate it at the upper limit and at 0, and subtract",
        "example": (lambda m: f"Example. The integral from 0 to {m} of 2x dx is [x^2] from 0 to {m}, which is {m * m} - 0 = {m * m}.")(rng.randint(2, 15)),
        "paragraphs": [
            "The fundamental theorem of calculus links the definite integral to antiderivatives: if F' = f on [a, b], then the "
            "integral of f from a to b equals F(b) - F(a). The constant of integration cancels in the difference, so any "
            "antiderivative will do.",
            "Geometrically, for a function that stays positive the definite integral is the area between its graph and the x-axis. "
            "Where the function is negative the integral counts the area with a minus sign, which is why an integral can be zero "
            "even though the graph encloses some area.",
            "A common error is to evaluate the antiderivative only at the upper limit, forgetting the lower one. Another is to "
            "integrate x as x instead of x^2/2.",
        ],
        "guides": [
            "Which function has {obj} as its derivative, without the dx?",
            "Once you have an antiderivative F for {obj}, what do you do with its values at the two limits?",
            "What does the fundamental theorem of calculus say you should compute for {obj}?",
        ],
        "concept": "F(b) - F(a) gives the integral",
    }


def _gradient(rng):
    a, b, p, q = rng.randint(1, 9), rng.randint(1, 9), rng.randint(-6, 9), rng.randint(-6, 9)
    return {
        "title": "The gradient",
        "chapter": "Functions of several variables",
        "instruction": f"Find the gradient at ({p}, {q}) of",
        "obj": f"f(x, y) = {a}x^2 + {b}y^2",
        "answer": f"grad f({p}, {q}) = ({2 * a * p}, {2 * b * q})",
        "method": "Take the partial derivatives with respect to x and to y and evaluate both at the point",
        "example": (lambda m: f"Example. For f(x, y) = x^2 + {m}y^2 the partial derivatives are 2x and {2 * m}y, so grad f(1, 1) = (2, {2 * m}).")(
            rng.randint(2, 9)
        ),
        "paragraphs": [
            "The gradient of a differentiable function f(x, y) is the vector of its partial derivatives, grad f = (df/dx, df/dy). "
            "Each partial derivative is computed by treating the other variable as a constant.",
            "The gradient points in the direction of steepest ascent of f, and its length is the rate of increase in that "
            "direction. At a local maximum or minimum of a smooth function the gradient is the zero vector.",
            "When computing df/dx, terms that contain only y behave like constants and vanish. Mixing up which variable is held "
            "fixed is the most frequent source of errors.",
        ],
        "guides": [
            "What is the partial derivative of {obj} with respect to x, treating y as a constant?",
            "Which two partial derivatives of {obj} make up the gradient, and where do you evaluate them?",
            "When you differentiate {obj} with respect to y, what happens to the terms that contain only x?",
        ],
        "concept": "the other variable is held constant in a partial derivative",
    }


def _system(rng):
    x, y, a = rng.randint(-15, 25), rng.randint(-15, 25), rng.randint(2, 7)
    return {
        "title": "Systems of two linear equations",
        "chapter": "Equations and inequalities",
        "instruction": "Solve the system",
        "obj": f"x + y = {x + y} and {a}x - y = {a * x - y}",
        "answer": f"x = {x} and y = {y}",
        "method": "Add the two equations to eliminate y, solve for x, then substitute back to find y",
        "example": (lambda m, n: f"Example. For x + y = {m + n} and x - y = {m - n}, adding gives 2x = {2 * m}, so x = {m}, and then y = {n}.")(
            rng.randint(1, 20), rng.randint(1, 20)
        ),
        "paragraphs": [
            "A system of two linear equations in two unknowns asks for the pairs (x, y) that satisfy both equations at once. "
            "Geometrically each equation is a line, and a solution is a point where the lines meet.",
            "Elimination adds or subtracts multiples of the equations so that one unknown disappears. Substitution solves one "
            "equation for one unknown and replaces it in the other. Both give the same answer; choose whichever needs less work.",
            "Parallel lines give no solution, and two equations describing the same line give infinitely many. Check a solution "
            "in both original equations, not only in the one used last.",
        ],
        "guides": [
            "What happens to y if you add the two equations in {obj}?",
            "Could you solve the first equation of {obj} for y and substitute it into the second? What would you get?",
            "Which unknown in {obj} is easier to eliminate, and how?",
        ],
        "concept": "adding the equations gets rid of one unknown",
    }


def _probability(rng):
    r, g, b = rng.randint(1, 30), rng.randint(1, 30), rng.randint(1, 30)
    total, good = r + g + b, r + g
    d = gcd(good, total)
    return {
        "title": "Equally likely outcomes",
        "chapter": "Probability",
        "instruction": "Find the probability of drawing a red or a green ball from",
        "obj": f"a bag with {r} red, {g} green and {b} blue balls",
        "answer": f"P = {good // d}/{total // d}",
        "method": "Count the favourable balls and divide by the total number of balls",
        "example": (lambda m, n: f"Example. A bag holds {m} white and {n} black marbles. The probability of drawing a white one is {m}/{m + n}.")(
            rng.randint(1, 9), rng.randint(1, 9)
        ),
        "paragraphs": [
            "When every outcome of an experiment is equally likely, the probability of an event is the number of favourable "
            "outcomes divided by the total number of outcomes. Probabilities therefore lie between 0 and 1.",
            "For events that cannot happen together, the probability that one or the other happens is the sum of their "
            "probabilities. The complement rule, P(not A) = 1 - P(A), is often the quickest way to a result.",
            "Students often divide by the number of favourable outcomes of the other colour instead of the total, or forget to "
            "simplify the fraction at the end.",
        ],
        "guides": [
            "How many balls are in {obj} in total, and how many of them count as a success?",
            "Which outcomes are favourable for {obj}, and are they all equally likely?",
            "Could you write the probability for {obj} as a fraction of the whole bag? What goes on top and what goes below?",
        ],
        "concept": "the favourable outcomes are divided by all outcomes",
    }


def _pythagoras(rng):
    base = rng.choice([(3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25), (20, 21, 29)])
    m = rng.randint(1, 40)
    a, b, c = (m * v for v in base)
    return {
        "title": "The Pythagorean theorem",
        "chapter": "Geometry",
        "instruction": "Find the hypotenuse of",
        "obj": f"a right triangle with legs {a} cm and {b} cm",
        "answer": f"c = {c} cm",
        "method": "Square both legs, add the squares and take the square root",
        "example": (lambda k: f"Example. A right triangle with legs {3 * k} and {4 * k} has hypotenuse sqrt({9 * k * k} + {16 * k * k}) = {5 * k}.")(
            rng.randint(1, 12)
        ),
        "paragraphs": [
            "In a right triangle the side opposite the right angle is the hypotenuse, the longest side. The Pythagorean theorem "
            "states that the square of the hypotenuse equals the sum of the squares of the other two sides: a^2 + b^2 = c^2.",
            "The converse also holds: if the sides of a triangle satisfy a^2 + b^2 = c^2, the triangle has a right angle. "
            "Integer solutions such as 3, 4, 5 are called Pythagorean triples, and multiples of a triple are triples again.",
            "The theorem adds the squares, not the sides: a + b is not c. Also remember to take the square root at the end.",
        ],
        "guides": [
            "Which relation between the three sides holds for {obj}?",
            "What do you get if you square each leg of {obj} and add the results, and what is still missing after that?",
            "Which side of {obj} is the hypotenuse, and how does the theorem connect it to the legs?",
        ],
        "concept": "the squares of the legs add up to the square of the hypotenuse",
    }


def _sequence(rng):
    a1, d, n = rng.randint(-20, 40), rng.choice([i for i in range(-9, 13) if i]), rng.randint(8, 120)
    return {
        "title": "Arithmetic sequences",
        "chapter": "Sequences and series",
        "instruction": f"Find term number {n} of",
        "obj": f"the arithmetic sequence {a1}, {a1 + d}, {a1 + 2 * d}, ...",
        "answer": f"a_{n} = {a1 + (n - 1) * d}",
        "method": "Find the common difference and use a_n = a_1 + (n - 1)d",
        "example": (lambda s, t: f"Example. In 2, {2 + t}, {2 + 2 * t}, ... the common difference is {t}, so term {s} is 2 + {s - 1}*{t} = {2 + (s - 1) * t}.")(
            rng.randint(5, 40), rng.randint(2, 9)
        ),
        "paragraphs": [
            "An arithmetic sequence increases by the same amount at every step, its common difference d. Starting from a_1, the "
            "n-th term is a_n = a_1 + (n - 1)d: reaching term n takes n - 1 steps, not n.",
            "The sum of the first n terms equals n times the average of the first and last terms, S_n = n(a_1 + a_n)/2, a formula "
            "Gauss is said to have found as a schoolboy by pairing terms from both ends.",
            "The off-by-one error, using n d instead of (n - 1) d, is by far the most common mistake with these sequences.",
        ],
        "guides": [
            "What is the common difference of {obj}, and how many steps are there from the first term to the one you need?",
            "How would you write the general term of {obj} in terms of its first term and its common difference?",
            "To reach the term you want in {obj}, how many times do you add the difference?",
        ],
        "concept": "the formula uses n - 1 and not n",
    }


def _limit(rng):
    k = rng.randint(2, 60)
    return {
        "title": "Limits of rational functions",
        "chapter": "Limits and continuity",
        "instruction": f"Find the limit as x approaches {k} of",
        "obj": f"(x^2 - {k * k}) / (x - {k})",
        "answer": f"the limit is {2 * k}",
        "method": "Factor the numerator as a difference of squares, cancel the common factor, then substitute",
        "example": (lambda m: f"Example. As x approaches {m}, (x^2 - {m * m})/(x - {m}) = x + {m} for x not equal to {m}, so the limit is {2 * m}.")(
            rng.randint(2, 9)
        ),
        "paragraphs": [
            "Substituting the point into a rational function can give the indeterminate form 0/0. That does not mean the limit "
            "fails to exist; it means that numerator and denominator share a factor which has to be removed first.",
            "The limit describes what the values approach, not the value at the point itself, which may be undefined. After "
            "cancelling the common factor the simplified function is continuous at the point and can be evaluated there.",
            "A difference of squares factors as a^2 - b^2 = (a - b)(a + b). Cancelling terms instead of factors, as in "
            "(x^2 - 4)/(x - 2) = x - 2, is a frequent mistake.",
        ],
        "guides": [
            "What happens if you substitute the point directly into {obj}, and what does that tell you?",
            "Can you factor the numerator of {obj}? Which factor might cancel with the denominator?",
            "Which identity for a difference of squares could help you simplify {obj}?",
        ],
        "concept": "we are allowed to cancel the factor even though it is zero at the point",
    }


TOPICS = (_linear, _quadratic, _derivative, _integral, _gradient, _system, _probability, _pythagoras, _sequence, _limit)
STUDY_NOTES = (
    "Read the worked example carefully before attempting the exercise, and write down every step, even the ones that seem obvious.",
    "If you are stuck, compare your work with the worked example line by line and look for the first place where they differ.",
    "Estimate the size and sign of the result before computing it; a rough estimate catches many slips.",
    "Answers to the exercises are printed at the end of the section; try the exercise before looking.",
)
CHUNKS_PER_DOCUMENT = 250


def make_chunk(index: int) -> dict:
    """Chunk ``index`` of the synthetic corpus (deterministic)."""
    rng = random.Random(f"bench-scale-{index}")
    topic = TOPICS[index % len(TOPICS)](rng)
    document, position = divmod(index, CHUNKS_PER_DOCUMENT)
    chapter = 1 + position // 25
    number = f"{chapter}.{position % 25 + 1 + 25 * (document % 7)}"
    paragraphs = list(topic["paragraphs"])
    rng.shuffle(paragraphs)
    text = "\n\n".join(
        [
            f"{chapter}.{position % 25 + 1} {topic['title']}",
            *paragraphs[: rng.randint(2, 3)],
            topic["example"],
            rng.choice(STUDY_NOTES),
            f"Exercise {number}. {topic['instruction']}: {topic['obj']}.",
            f"(Answer to exercise {number}: {topic['answer']}.)",
        ]
    )
    doc_id = f"textbook-{document:03d}"
    chunk_id = hashlib.sha256(json.dumps([doc_id, text]).encode()).hexdigest()[:16]  # as records.content_id: from the content
    return {
        "chunk_id": chunk_id,
        "doc_id": doc_id,
        "source": f"{doc_id}.pdf",
        "index": position,
        "text": text,
        "headings": [f"Chapter {chapter}: {topic['chapter']}", f"{chapter}.{position % 25 + 1} {topic['title']}"],
        "pages": [1 + position, 2 + position],
        "num_tokens": 0,  # filled by write_chunks
    }


def write_chunks(path: Path, count: int) -> dict:
    """chunks.jsonl (+ chunk_metrics.json beside it, which the run summary reads)."""
    sys.path.insert(0, str(ROOT / "src"))
    from socratic_sdg.chunk import count_tokens

    path.parent.mkdir(parents=True, exist_ok=True)
    tokens = 0
    with path.open("w", encoding="utf-8") as handle:
        for index in range(count):
            chunk = make_chunk(index)
            chunk["num_tokens"] = count_tokens(chunk["text"])
            tokens += chunk["num_tokens"]
            handle.write(json.dumps(chunk, ensure_ascii=False) + "\n")
    metrics = {"chunks": count, "dropped": 0, "tokens": tokens, "documents": -(-count // CHUNKS_PER_DOCUMENT), "seconds": 0.0}
    (path.parent / "chunk_metrics.json").write_text(json.dumps(metrics) + "\n")
    return metrics


# --- the simulated model's replies (runs in the simulator's process) --------------------------

_EXERCISE = re.compile(r"Exercise (\d+\.\d+)\. ([^:\n]+): ([^\n]+)\.\n")
_ANSWER = re.compile(r"\(Answer to exercise [\d.]+: ([^\n]+)\.\)")
_TOPIC_BY_INSTRUCTION: dict[str, dict] = {}
_ACKS = (
    "Good question.",
    "Let's work through it together.",
    "You're on the right track.",
    "Nice attempt.",
    "Let's slow down for a moment.",
    "I can see why this is confusing.",
    "That's a fair thing to ask.",
    "Okay, let's look at it.",
)
_TONE_OPENERS = {
    "polite": "Hi, ",
    "anxious": "Sorry, this is probably a silly question, but ",
    "impatient": "Quick one: ",
    "tired": "Ugh, ",
    "overconfident": "Pretty sure this is easy, but ",
    "casual": "hey so ",
}
_WEAK = (
    "Good effort! Does that make sense?",
    "Remember the method from the worked example. Keep going!",
    "You need to use the rule from the passage on this one.",
    "Great job so far! Keep practising!",
)


def _topic_for(instruction: str) -> dict | None:
    if not _TOPIC_BY_INSTRUCTION:
        for index in range(len(TOPICS) * 40):  # instructions with numbers in them: match by their first words
            topic = TOPICS[index % len(TOPICS)](random.Random(index))
            _TOPIC_BY_INSTRUCTION.setdefault(" ".join(topic["instruction"].split()[:3]), topic)
    return _TOPIC_BY_INSTRUCTION.get(" ".join(instruction.split()[:3]))


def _pick(options, *keys):
    digest = hashlib.sha256("\x00".join(map(str, keys)).encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def _wrong(answer: str) -> str:
    """The answer with its last number off by a little: a student's wrong attempt."""
    numbers = list(re.finditer(r"-?\d+", answer))
    if not numbers:
        return answer + " plus something"
    last = numbers[-1]
    return answer[: last.start()] + str(int(last.group()) + (3 if int(last.group()) % 2 else -2)) + answer[last.end() :]


def _value(result: str) -> str:
    """The value in a result sentence: "the limit is 86" -> "86"; "x = 5" stays."""
    return re.split(r"\s(?:is|equals)\s", result)[-1]


def simulated_reply(messages: list[dict]) -> str | None:
    """A reply for the socratic-single-turn flow's prompts (None for other prompts: canned reply)."""
    system = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
    passage = system + "\n" + "\n".join(users)
    exercise, answer = _EXERCISE.search(passage), _ANSWER.search(passage)
    if exercise is None or answer is None:
        return None
    number, instruction, obj = exercise.groups()
    result = answer.group(1)
    topic = _topic_for(instruction) or {
        "method": "Work through it step by step",
        "guides": ["What is the first step for {obj}?"],
        "concept": "this method works",
    }
    if "realistic messages from math students" in system:
        prompt = users[-1]
        tone = next((opener for key, opener in _TONE_OPENERS.items() if f"tone is {key}" in prompt), "")
        if "simply give them the answer" in prompt:
            body = f"exercise {number} says {instruction.lower()}: {obj}. Can you just tell me the answer?"
        elif "shows a short attempt" in prompt:
            body = f"for exercise {number} ({obj}) I got {_wrong(_value(result))}. Is that right?"
        elif "stuck on a problem" in prompt:
            body = f"I've been stuck on exercise {number} for ages: {obj}. Please just show me how to do it."
        else:
            body = f"in exercise {number} ({obj}) I don't get why {topic['concept']}. Can you explain?"
        text = tone + body
        return text[0].upper() + text[1:]
    if "precise mathematician" in system:
        return f"{topic['method']}. For {obj} this gives {result}."
    if "Socratic math tutor" in system:
        student = users[-1]
        roll = int(hashlib.sha256(student.encode()).hexdigest()[:8], 16) % 100
        ack = _pick(_ACKS, student, "ack")
        if roll < 72:
            return f"{ack} {_pick(topic['guides'], student, 'guide').format(obj=obj)}"
        if roll < 90:
            style = roll % 3
            if style == 0:
                return f"{ack} {topic['method']}, so {result}."
            if style == 1:
                return f"The answer is {_value(result)}. Can you see why?"
            return f"{ack} {topic['method']}. That gives {result}, right?"
        return _pick(_WEAK, student, "weak")
    return None


# --- stage processes --------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    """Peak resident set size of this process (VmHWM; ru_maxrss as a fallback), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process (or of process ``pid``, from /proc)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def child(argv: list[str]) -> None:
    """One stage in this (fresh) process; prints its figures as JSON on the last line."""
    parser = argparse.ArgumentParser(prog="bench_scale.py child")
    parser.add_argument("stage")
    parser.add_argument("--dir", help="the size's folder (chunks/, conversations/, filtered/, dataset/)")
    parser.add_argument("--api-base")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("TQDM_DISABLE", "1")
    stage = args.stage
    figures: dict = {"stage": stage}
    if stage.startswith("import-"):
        import importlib

        for name in IMPORTS[stage.removeprefix("import-")]:
            importlib.import_module(name)
        figures["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        print(json.dumps(figures))
        return
    for name in IMPORTS[stage]:
        __import__(name)
    folder = Path(args.dir)
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    if stage == "generate":
        from socratic_sdg import generate
        from socratic_sdg.generate import RequestPolicy
        from socratic_sdg.endpoint import EndpointConfig

        options = generate.GenerateOptions(flow_id=FLOW, requests=RequestPolicy(max_concurrency=args.concurrency))
        endpoint = EndpointConfig(api_base=args.api_base, model="fake-model", api_key="bench")
        result = generate.run(
            folder / "chunks" / "chunks.jsonl",
            folder / "conversations",
            options,
            endpoint,
            progress=lambda line: print(f"    {line}", file=sys.stderr, flush=True),
        )
        metrics = result.metrics()
        figures.update(
            records=result.input_rows,
            output=result.output_rows,
            failed=result.failed_rows,
            requests=metrics.get("requests", 0),
            requests_per_second=metrics.get("requests_per_second", 0.0),
            mean_in_flight=metrics.get("mean_in_flight", 0.0),
        )
    elif stage == "filter":
        from socratic_sdg import filtering

        result = filtering.run(folder / "conversations" / "conversations.jsonl", folder / "filtered", filtering.FilterOptions())
        figures.update(records=result.total, output=result.accepted, rejected=result.rejected, reasons=result.reasons)
    elif stage == "export":
        from socratic_sdg import export
        from socratic_sdg.export import report, summary

        result = export.run(folder / "filtered" / "accepted.jsonl", folder / "dataset", export.ExportOptions())
        figures["split_seconds"] = round(time.perf_counter() - started, 3)
        figures["split_peak_rss_mb"] = round(_peak_rss_mb(), 1)
        (folder / "converted").mkdir(exist_ok=True)
        collected = summary.collect(folder / "converted", folder / "chunks", folder / "conversations", folder / "filtered", folder / "dataset")
        summary.write(collected, folder / "dataset")
        report.write_reports(collected, folder / "dataset")
        figures.update(records=result.train + result.validation, output=result.train + result.validation, train=result.train, validation=result.validation)
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    figures["seconds"] = round(time.perf_counter() - started, 3)
    figures["cpu_seconds"] = round(_cpu_seconds() - cpu_started, 3)
    figures["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    print(json.dumps(figures))


def _run_child(args: list[str], timeout: float) -> dict:
    completed = subprocess.run([sys.executable, str(HERE), "child", *args], stdout=subprocess.PIPE, text=True, timeout=timeout)
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"stage process {args[0]} failed (exit {completed.returncode}): {completed.stdout[-2000:]}")
    return json.loads(lines[-1])


# --- the benchmark ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,20000", help="numbers of chunks, comma-separated (default 2000,20000)")
    parser.add_argument("--latency", default="0.005:0.015", help="simulated per-request latency LOW:HIGH seconds")
    parser.add_argument("--concurrency", type=int, default=64, help="server-side cap and the client's max_concurrency")
    parser.add_argument("--stages", default=",".join(STAGES), help="stages to run (default all; filter/export need the earlier stages' output in --work)")
    parser.add_argument("--work", help="work folder (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (chunks, conversations, filtered, dataset per size)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per stage process")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    stages = [s for s in STAGES if s in args.stages.split(",")]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    keep = args.keep or bool(args.work)

    sys.path.insert(0, str(HERE.parent))
    from bench_generate import endpoint_stats, start_endpoint

    server = api_base = None
    if "generate" in stages:
        server, api_base = start_endpoint(args.latency, args.concurrency, replies=f"{HERE}:simulated_reply", log_requests=False)
        low, high = (float(x) for x in args.latency.split(":"))
        print(
            f"simulated endpoint: {args.concurrency} slots, latency {low * 1000:.0f}-{high * 1000:.0f} ms -> capacity "
            f"{args.concurrency / ((low + high) / 2):,.0f} requests/s; flow {FLOW} (3 requests per chunk)"
        )
    print(f"work folder: {work}\n", flush=True)
    try:
        baselines = {}
        for stage in stages:
            baselines[stage] = _run_child([f"import-{stage}"], args.timeout)["peak_rss_mb"]
        results: list[dict] = []
        for size in sizes:
            folder = work / f"size-{size}"
            chunks = folder / "chunks" / "chunks.jsonl"
            if not chunks.is_file() or sum(1 for _ in chunks.open()) != size:
                started = time.perf_counter()
                metrics = write_chunks(chunks, size)
                print(
                    f"[{size}] wrote {size:,} chunks ({metrics['tokens'] / size:.0f} tokens each on average, "
                    f"{chunks.stat().st_size / 2**20:.1f} MB) in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
            for stage in stages:
                child_args = [stage, "--dir", str(folder), "--concurrency", str(args.concurrency)]
                if stage == "generate":
                    child_args += ["--api-base", api_base]
                    before, server_cpu = endpoint_stats(api_base), _cpu_seconds(server.pid)
                figures = _run_child(child_args, args.timeout)
                figures.update(size=size, import_rss_mb=baselines[stage])
                if stage == "generate":
                    after = endpoint_stats(api_base)
                    figures["server_requests"] = after["completed"] - before["completed"]
                    figures["server_max_in_flight"] = after["max_in_flight"]
                    figures["server_cpu_seconds"] = round(_cpu_seconds(server.pid) - server_cpu, 3)
                results.append(figures)
                print(f"[{size}] {_detail(figures)}", flush=True)
        print()
        print(_table(results, sizes, stages))
        report = {"sizes": sizes, "latency": args.latency, "concurrency": args.concurrency, "import_rss_mb": baselines, "results": results}
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        return report
    finally:
        if server is not None:
            server.kill()
            server.wait()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _detail(f: dict) -> str:
    line = f"{f['stage']:<8} {f['seconds']:8.1f} s  peak RSS {f['peak_rss_mb']:7.1f} MB"
    line += f"  CPU {f['cpu_seconds']:6.1f} s"
    if f["stage"] == "generate":
        requests = max(1, f["requests"])
        return line + (
            f"  {f['output']:,} conversations, {f['failed']} failed rows, {f['requests']:,} requests, "
            f"{f['requests_per_second']:,.0f} req/s, {f['mean_in_flight']:.1f} in flight on average; "
            f"CPU per request: client {1000 * f['cpu_seconds'] / requests:.2f} ms, simulator {1000 * f['server_cpu_seconds'] / requests:.2f} ms"
        )
    if f["stage"] == "filter":
        top = ", ".join(f"{k} {v}" for k, v in sorted(f["reasons"].items(), key=lambda kv: -kv[1])[:4])
        return line + f"  {f['output']:,} of {f['records']:,} accepted ({100 * f['output'] / max(1, f['records']):.0f}%); {top}"
    return line + (
        f"  {f['train']:,} train + {f['validation']:,} validation; split {f['split_seconds']:.1f} s at "
        f"{f['split_peak_rss_mb']:.1f} MB, then summary, card and report"
    )


def _table(results: list[dict], sizes: list[int], stages: list[str]) -> str:
    lines = [f"{'stage':<9}| {'size':>7} | {'records':>8} | {'wall s':>7} | {'records/s':>9} | {'peak RSS MB':>11} | {'RSS above import MB':>19}"]
    lines.append("-" * len(lines[0]))
    by = {(r["stage"], r["size"]): r for r in results}
    for stage in stages:
        for size in sizes:
            r = by[(stage, size)]
            lines.append(
                f"{stage:<9}| {size:>7,} | {r['records']:>8,} | {r['seconds']:>7.1f} | {r['records'] / max(r['seconds'], 1e-9):>9,.0f} | "
                f"{r['peak_rss_mb']:>11.1f} | {r['peak_rss_mb'] - r['import_rss_mb']:>19.1f}"
            )
        lines.append(f"{'':<9}| {'import':>7} | {'':>8} | {'':>7} | {'':>9} | {by[(stage, sizes[0])]['import_rss_mb']:>11.1f} |")
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        lines.append("")
        lines.append(f"ratios {large:,} / {small:,} chunks (x{large / small:g} the input):")
        lines.append(f"{'stage':<9}| {'wall time':>9} | {'peak RSS':>8} | {'RSS above import':>16} | {'MB per 10k records above import':>31}")
        for stage in stages:
            a, b = by[(stage, small)], by[(stage, large)]
            above_a, above_b = a["peak_rss_mb"] - a["import_rss_mb"], b["peak_rss_mb"] - b["import_rss_mb"]
            per_10k = (above_b - above_a) / max(1, b["records"] - a["records"]) * 10_000
            lines.append(
                f"{stage:<9}| {b['seconds'] / max(a['seconds'], 1e-9):>9.2f} | {b['peak_rss_mb'] / a['peak_rss_mb']:>8.2f} | "
                f"{above_b / max(above_a, 1e-9):>16.2f} | {per_10k:>31.1f}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2:])
    else:
        main()
