"""Evaluating the quality filter: the labelled sets, the workshop baseline, and synthetic records.

* :func:`score` runs a decision function over labelled records (``eval.label`` = good / leak / weak,
  see ``tests/data/filter_eval/README.md``) and reports precision and recall of leak detection (the
  positive class is ``leak``) plus the accuracy of accept/reject decisions.
* :func:`workshop_decide` is the workshop's keyword filter, kept as the baseline to beat: it rejects
  a reply containing "the answer is", "the solution is" or "therefore, x =", then accepts one with a
  "?" or a guiding phrase (the same filter `socratic-sdg evaluate` compares against).
* :func:`synthetic_records` makes realistic generated records (correct math, one reference answer
  each, unique text) for benchmarks: a mix of guiding, leaking and weak replies, single- and
  multi-turn, in the shape the generation stage writes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import filtering
from ..filtering.judge import JUDGE_LEAK_CODES
from ..evaluate import workshop_verdict
from ..filtering.leakage import LEAK_CODES

# A decision: (accepted, set of drop-reason codes).
Decision = tuple[bool, set[str]]


def leak_codes(rules: filtering.Rules) -> frozenset[str]:
    """Codes that mean "a tutor turn reveals the answer": red flags, leakage and judge reveal codes."""
    return frozenset({rule.code for rule in rules.red_flags}) | LEAK_CODES | JUDGE_LEAK_CODES


def load_labelled(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# --------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------


def filter_decide(opts: filtering.FilterOptions | None = None) -> Callable[[Mapping[str, Any]], Decision]:
    """The per-record layers of the filter as a decision function (no dedup, no judge)."""
    opts = opts or filtering.FilterOptions()
    rules = filtering.load_rules(opts.rules_path)

    def decide(record: Mapping[str, Any]) -> Decision:
        codes = {reason["code"] for reason in filtering.check_conversation(record, rules, opts)}
        return (not codes, codes)

    decide.leak_codes = leak_codes(rules)  # type: ignore[attr-defined]
    return decide


def workshop_decide(record: Mapping[str, Any]) -> Decision:
    """The workshop's keyword filter (:func:`socratic_sdg.evaluate.workshop_verdict`) applied to every
    tutor turn, since each is a training target here. Malformed records are rejected."""
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return (False, {"malformed"})
    tutor = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    if not tutor or not all(isinstance(t, str) for t in tutor):
        return (False, {"malformed"})
    for text in tutor:
        why = workshop_verdict(text)
        if why:
            return (False, {why})
    return (True, set())


workshop_decide.leak_codes = frozenset({"states_answer"})  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


@dataclass
class Scores:
    name: str
    total: int = 0
    tp: int = 0  # leak records flagged with a leak code
    fp: int = 0  # non-leak records flagged with a leak code
    fn: int = 0  # leak records not flagged with a leak code
    correct: int = 0  # accept/reject matches the label (good: accept; leak, weak: reject)
    weak_total: int = 0
    weak_rejected: int = 0
    good_total: int = 0
    good_accepted: int = 0
    judge_only: int = 0  # weak cases that need the judge (excluded from the figures above)
    misses: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if (self.tp + self.fp) else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if (self.tp + self.fn) else 1.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 1.0

    def row(self) -> str:
        return (f"{self.name:<22} leak precision {self.precision:5.3f}  recall {self.recall:5.3f}  "
                f"(tp {self.tp}, fp {self.fp}, fn {self.fn})  accept/reject accuracy {self.accuracy:5.3f}  "
                f"good kept {self.good_accepted}/{self.good_total}  weak rejected {self.weak_rejected}/{self.weak_total}")


def score(records: Iterable[Mapping[str, Any]], decide: Callable[[Mapping[str, Any]], Decision], name: str,
          leak: frozenset[str] | None = None, include_judge_cases: bool = False) -> Scores:
    leak = leak if leak is not None else getattr(decide, "leak_codes")
    result = Scores(name)
    for record in records:
        label = record["eval"]["label"]
        if label == "weak" and record["eval"].get("layer") == "judge" and not include_judge_cases:
            result.judge_only += 1
            continue
        accepted, codes = decide(record)
        flagged = bool(codes & leak)
        result.total += 1
        expected_accept = label == "good"
        if accepted == expected_accept:
            result.correct += 1
        else:
            result.misses.append(f"{record['id']}: expected {'accept' if expected_accept else 'reject'}, "
                                 f"got {'accept' if accepted else 'reject'} {sorted(codes)}")
        if label == "leak":
            if flagged:
                result.tp += 1
            else:
                result.fn += 1
                if not accepted:
                    result.misses.append(f"{record['id']}: leak rejected, but not as a leak {sorted(codes)}")
        elif flagged:
            result.fp += 1
            if not accepted and label == "weak":
                result.misses.append(f"{record['id']}: weak reply flagged as a leak {sorted(codes & leak)}")
        if label == "weak":
            result.weak_total += 1
            result.weak_rejected += not accepted
        if label == "good":
            result.good_total += 1
            result.good_accepted += accepted
    return result


# --------------------------------------------------------------------------------------------
# Synthetic records (benchmarks)
# --------------------------------------------------------------------------------------------


def _linear(rng: random.Random) -> dict[str, Any]:
    a, x = rng.randint(2, 19), rng.randint(2, 60)
    b = rng.randint(1, 99)
    c = a * x + b
    return {
        "question": rng.choice([f"How do I solve {a}x + {b} = {c}? I keep getting confused.",
                                f"Solve {a}x + {b} = {c} for x. I'm stuck on the first step.",
                                f"Can you help me with {a}x + {b} = {c}? I don't know where to start."]),
        "reference": f"Subtract {b} from both sides to get {a}x = {c - b}. Then divide both sides by {a}, so x = {x}.",
        "good": [f"What could you do to both sides to get the {a}x term by itself?",
                 f"What do you notice about the + {b} on the left side? Which operation would undo it?",
                 f"If you subtract {b} from both sides, what equation do you get, and what is still attached to x?"],
        "leak": [f"Subtract {b} and divide by {a}, so x = {x}. Can you check that it works?",
                 f"You should end up with {x}, does that make sense?",
                 f"Try x = {x}: does {a}({x}) + {b} give you {c}?"],
        "student2": f"Subtract {b}? Then I get {a}x = {c - b}.",
        "good2": f"Nice, {a}x = {c - b} is right. What is being done to x now, and how could you undo it?",
        "leak2": f"Yes, and then dividing by {a} gives x = {x}. Well done, can you check it?",
    }


def _cookies(rng: random.Random) -> dict[str, Any]:
    people, each = rng.randint(2, 12), rng.randint(2, 40)
    total = people * each
    thing = rng.choice(["cookies", "apples", "stickers", "marbles", "pencils", "cards", "books", "candies"])
    return {
        "question": f"If {total} {thing} are shared equally among {people} friends, how many does each friend get?",
        "reference": f"{total} ÷ {people} = {each}, so each friend gets {each} {thing}.",
        "good": [f"What operation would tell you how many {thing} each friend gets when you share them equally?",
                 f"Imagine dealing the {total} {thing} out one at a time to {people} friends. How many rounds could you deal?"],
        "leak": [f"Each friend gets {each} {thing}. Can you see why?",
                 f"If you split {total} into {people} equal groups, there are {each} in each group, right?"],
        "student2": f"Division? Do I divide {total} by {people}?",
        "good2": f"Yes, division. What do you get when you divide {total} by {people}, and how could you check it?",
        "leak2": f"Close. It's {each} each, because {people} × {each} = {total}. Does that make sense?",
    }


def _derivative(rng: random.Random) -> dict[str, Any]:
    n, k = rng.randint(2, 9), rng.randint(2, 60)
    func = rng.choice(["sin", "cos"])
    other = "cos" if func == "sin" else "sin"
    sign = "+" if func == "sin" else "-"
    return {
        "question": f"What is the derivative of {k}x^{n} {func}(x)? I need the answer for my homework.",
        "reference": f"By the product rule, the derivative is {k * n}x^{n - 1} {func}(x) {sign} {k}x^{n} {other}(x).",
        "good": ["This is a product of two functions. Which rule do you know for differentiating a product?",
                 f"If u = {k}x^{n} and v = {func}(x), what are u' and v'? How does the product rule combine them?"],
        "leak": [f"Using the product rule you get {k * n}x^{n - 1} {func}(x) {sign} {k}x^{n} {other}(x). Can you see where each term comes from?",
                 f"Is it {k * n}x^{n - 1}·{func} x {sign} {k}x^{n}·{other} x? Think about why each term appears."],
        "student2": "The product rule? u'v + uv'?",
        "good2": f"Exactly. What is the derivative of {k}x^{n}, and what is the derivative of {func}(x)?",
        "leak2": f"Right, so it's {k * n}x^{n - 1} {func}(x) {sign} {k}x^{n} {other}(x). Does that make sense?",
    }


def _mean(rng: random.Random) -> dict[str, Any]:
    values = [rng.randint(1, 99) for _ in range(rng.randint(3, 7))]
    total = sum(values)
    mean = total / len(values)
    shown = f"{mean:g}" if mean == int(mean) else f"{mean:.2f}"
    listed = ", ".join(map(str, values))
    return {
        "question": f"How do I find the mean of {listed}?",
        "reference": f"Add them to get {total} and divide by {len(values)}: the mean is {shown}.",
        "good": ["What two steps does finding a mean involve? What is the total of these numbers?",
                 "How many numbers are in the list, and what would you divide the total by?"],
        "leak": [f"Add them to get {total}, then divide by {len(values)} to get {shown}. Does that help?",
                 f"The mean is {shown}, since {total} ÷ {len(values)} = {shown}, right?"],
        "student2": f"I added them and got {total}.",
        "good2": f"Yes, the sum is {total}. How many numbers are you dividing it among?",
        "leak2": f"Good, and {total} divided by {len(values)} is {shown}. Any questions?",
    }


def _circle(rng: random.Random) -> dict[str, Any]:
    r = rng.randint(2, 150)
    area = 3.141592653589793 * r * r
    return {
        "question": f"What's the area of a circle with radius {r}?",
        "reference": f"A = πr^2 = π({r})^2 = {r * r}π ≈ {area:.2f} square units.",
        "good": [f"Which formula connects a circle's radius to its area? What happens when you put r = {r} into it?",
                 "What does squaring the radius mean here, and where does π come in?"],
        "leak": [f"Use A = πr², so it's {r * r}π, about {area:.1f}. Does that make sense?",
                 f"The area is about {area:.2f} square units. Can you see where that comes from?"],
        "student2": f"Is it π times {r} squared?",
        "good2": f"Good, that's the formula. What is {r} squared, and what do you do with it?",
        "leak2": f"Yes, so that's {r * r}π. Can you explain why we square the radius?",
    }


def _determinant(rng: random.Random) -> dict[str, Any]:
    a, b, c, d = (rng.randint(-9, 19) for _ in range(4))
    det = a * d - b * c
    return {
        "question": f"How do I find the determinant of [[{a}, {b}], [{c}, {d}]]?",
        "reference": f"For a 2x2 matrix, det = ad - bc = {a}·{d} - {b}·{c} = {det}.",
        "good": ["For a 2 by 2 matrix [[a, b], [c, d]], which products of entries does the determinant use?",
                 "Which entries are on the main diagonal, and which are on the other one? What do you do with each product?"],
        "leak": [f"It's ad - bc, so {a}·{d} - {b}·{c} = {det}. Can you try the next one?",
                 f"The determinant comes out to {det}, does that match what you got?"],
        "student2": f"I multiply {a} and {d}?",
        "good2": f"Yes, that's the main diagonal. What do you do with the other diagonal, {b} and {c}?",
        "leak2": f"Right, then subtract {b}·{c} to get {det}. Does that make sense?",
    }


_TEMPLATES = (_linear, _cookies, _derivative, _mean, _circle, _determinant)
_WEAK = (
    "You need to use inverse operations on both sides of the equation.",
    "Remember the rule from the chapter. Does that make sense?",
    "Great job! Keep going!",
    "Tutor: What do you notice?\nStudent: Not much.",
    "I'm sorry, but I can't help with homework questions. Is there anything else?",
)
_OPENERS = ("", "", "", "Good question! ", "Let's think about it together. ", "Nice try. ", "Great start! ")
_CONTEXT = ("", "", "I'm working through the {topic} chapter. ", "Our teacher gave us this for homework. ",
            "This is from the practice quiz on {topic}. ", "I've been stuck on this for a while. ",
            "My study group disagrees about this one. ", "I'm reviewing {topic} for the exam. ",
            "Quick question about the {topic} section. ", "The worked example in the {topic} notes confuses me. ")
_TOPICS = ("algebra", "linear equations", "fractions", "derivatives", "statistics", "geometry", "matrices",
           "word problems", "calculus", "probability", "circles", "the product rule", "averages")
_QUESTION_PARAPHRASES = (("How do I", "How can I"), ("What's", "What is"), ("I'm stuck", "I am stuck"),
                         ("Can you help me", "Could you help me"), ("confused", "really confused"))


def _perturb(text: str, rng: random.Random) -> str:
    """A near-duplicate of ``text``: case and punctuation changes, or one paraphrase."""
    choice = rng.random()
    if choice < 0.3:
        return text.lower().rstrip("?.!")
    for old, new in rng.sample(_QUESTION_PARAPHRASES, len(_QUESTION_PARAPHRASES)):
        if old in text:
            return text.replace(old, new, 1)
    return text.replace(" ", "  ", 1) + " Thanks!"


def synthetic_records(n: int, seed: int = 7, *, leak_rate: float = 0.25, weak_rate: float = 0.1,
                      multi_turn_rate: float = 0.2, duplicate_rate: float = 0.0) -> Iterator[dict[str, Any]]:
    """``n`` generated-looking records (ids ``syn-<i>``), deterministic for a seed.

    ``duplicate_rate``: the fraction of records that repeat an earlier one (an exact copy, the same
    question reformatted, or a one-word paraphrase), with ``metadata.duplicate_of`` naming it.
    """
    rng = random.Random(seed)
    recent: list[dict[str, Any]] = []
    for index in range(n):
        if recent and rng.random() < duplicate_rate:
            original = rng.choice(recent)
            messages = [dict(m) for m in original["messages"]]
            if rng.random() < 0.7:
                messages[0]["content"] = _perturb(messages[0]["content"], rng)
            yield {"id": f"syn-{index}", "messages": messages,
                   "metadata": {**original["metadata"], "duplicate_of": original["id"]}}
            continue
        template = rng.choice(_TEMPLATES)(rng)
        template["question"] = rng.choice(_CONTEXT).format(topic=rng.choice(_TOPICS)) + template["question"]
        roll = rng.random()
        kind = "leak" if roll < leak_rate else ("weak" if roll < leak_rate + weak_rate else "good")
        opener = rng.choice(_OPENERS)
        if kind == "weak":
            first_reply = rng.choice(_WEAK)
        else:
            first_reply = opener + rng.choice(template["good"] if kind == "good" else template["leak"])
        messages = [{"role": "user", "content": template["question"]}]
        if rng.random() < multi_turn_rate and kind != "weak":
            messages.append({"role": "assistant", "content": opener + rng.choice(template["good"])})
            messages.append({"role": "user", "content": template["student2"]})
            messages.append({"role": "assistant", "content": template["good2" if kind == "good" else "leak2"]})
        else:
            messages.append({"role": "assistant", "content": first_reply})
        record = {
            "id": f"syn-{index}",
            "messages": messages,
            "metadata": {"chunk_id": f"chunk-{index % 500}", "doc_id": "synthetic", "source": "synthetic.pdf",
                         "reference_answer": template["reference"], "model": "synthetic", "flow_id": "socratic-single-turn",
                         "expected": kind},
        }
        if duplicate_rate:
            recent.append(record)
            if len(recent) > 2000:
                recent.pop(0)
        yield record


def write_jsonl_lines(path: str | Path, records: Iterable[Mapping[str, Any]]) -> int:
    count = 0
    with Path(path).open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


__all__ = ["Decision", "Scores", "filter_decide", "leak_codes", "load_labelled", "score", "synthetic_records",
           "workshop_decide", "write_jsonl_lines"]
