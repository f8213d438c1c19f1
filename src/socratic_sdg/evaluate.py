"""Measure the quality filter (and the judge) against tutor replies that people labelled.

A filter that scores 1.000 on cases we wrote ourselves says little; what counts is whether the
replies it keeps are the ones teachers call good. This module loads human-labelled tutor replies,
runs decision functions over them (the filter with any options, the workshop keyword filter it
replaces, accept-everything) and reports, for each:

* on the accepted set: the share that reveals the answer, the share labelled guiding AND
  actionable AND not revealing ("good"), the share that identifies the student's mistake;
* recall of good replies, overall and for good replies that end with a question;
* balanced accuracy of keep-good / reject-the-rest, and of keep-a-focusing-or-probing-question /
  reject-a-telling-move where the data labels teacher moves;
* per label dimension, how many replies of each label value were accepted and rejected;
* the same headline figures per tutor (model or human);
* with a judge: its agreement with the human labels per dimension (F1, Cohen's kappa).

Two input formats (``load``): the MRBench JSON (a list of dialogues, each with
``conversation_history``, ``Ground_Truth_Solution`` and ``anno_llm_responses``), and our labelled
JSONL: one record per line, ``{messages, metadata, labels, tutor}``, where ``labels`` maps any of
:data:`DIMENSIONS` to a label value (see :func:`normalise_label`). The hand-written unit set
(``eval.label`` good/leak/weak) also loads.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import write_json
from .errors import SocraticSdgError

# Label dimensions, in the MRBench taxonomy (Maurya et al., NAACL 2025), plus the teacher move of
# MathDial-style data ("telling" gives the step away; "focus" and "probing" ask).
DIMENSIONS = ("mistake_identification", "mistake_location", "revealing", "guidance", "actionability",
              "coherence", "tone", "humanlikeness", "move")
_MRBENCH_KEYS = {
    "Mistake_Identification": "mistake_identification",
    "Mistake_Location": "mistake_location",
    "Revealing_of_the_Answer": "revealing",
    "Providing_Guidance": "guidance",
    "Actionability": "actionability",
    "Coherence": "coherence",
    "Tutor_Tone": "tone",
    "humanlikeness": "humanlikeness",
}
REVEALING_VALUES = ("no", "yes_correct", "yes_incorrect")
TELLING_MOVES = frozenset({"telling"})
ASKING_MOVES = frozenset({"focus", "probing"})


class EvaluateError(SocraticSdgError, ValueError):
    """The labelled set cannot be read; one sentence names the file and the problem."""


def normalise_label(dimension: str, value: Any) -> str | None:
    """One spelling per label: yes / partly / no; revealing no / yes_correct / yes_incorrect;
    tone encouraging / neutral / offensive; move telling / focus / probing / generic."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "yes" if value else "no"
    else:
        text = " ".join(str(value).strip().lower().replace("_", " ").split())
    if not text:
        return None
    if dimension == "revealing":
        if text.startswith("yes"):
            return "yes_incorrect" if ("incorrect" in text or "wrong" in text) else "yes_correct"
        return "no" if text.startswith("no") else text
    if dimension in ("tone", "move"):
        return text.split()[0]
    if text.startswith("yes"):
        return "yes"
    if text.startswith("no"):
        return "no"
    if "some extent" in text or text.startswith("partl"):
        return "partly"
    return text


@dataclass(frozen=True)
class LabelledReply:
    """One tutor reply in its dialogue (``record`` in the filter's shape) with the human labels."""

    id: str
    tutor: str
    record: dict[str, Any]
    labels: Mapping[str, str]

    @property
    def reply(self) -> str:
        return self.record["messages"][-1]["content"] if self.record.get("messages") else ""

    @property
    def reveals(self) -> bool | None:
        if "revealing" in self.labels:
            return self.labels["revealing"] != "no"
        if "move" in self.labels:
            return self.labels["move"] in TELLING_MOVES
        return None

    @property
    def good(self) -> bool | None:
        """Labelled guiding and actionable and not revealing (or a focusing/probing teacher move)."""
        labels = self.labels
        if "guidance" in labels or "actionability" in labels:
            return (labels.get("guidance") == "yes" and labels.get("actionability", "yes") == "yes"
                    and labels.get("revealing", "no") == "no")
        if "move" in labels:
            return labels["move"] in ASKING_MOVES
        return None


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

_SPEAKER_RE = re.compile(r"^\s*(Tutor|Teacher|Student)\s*:\s*", re.IGNORECASE | re.MULTILINE)
_QUESTION_IS_RE = re.compile(r"\bThe question is\s*:\s*", re.IGNORECASE)


def _clean(text: str) -> str:
    return "\n".join(" ".join(line.split()) for line in text.replace("\u00a0", " ").splitlines()).strip()


def dialogue_messages(history: str) -> list[dict[str, str]]:
    """A transcript ("Tutor: ...\\nStudent: ...") as alternating user/assistant messages.

    Consecutive turns of one speaker are joined. Tutor turns before the student's first turn pose
    the problem: they become the start of the first user message (from "The question is:" on when
    present, else verbatim), because a training dialogue starts with the student. The reply being
    labelled answers the student, so a transcript that ends on a tutor turn has that turn
    mislabelled (it happens in MathDial: the student's explanation under "Tutor:"): it becomes the
    student's.
    """
    parts = _SPEAKER_RE.split(history.replace("\u00a0", " "))
    turns: list[tuple[str, str]] = []
    for speaker, text in zip(parts[1::2], parts[2::2]):
        role = "user" if speaker.lower() == "student" else "assistant"
        text = _clean(text)
        if not text:
            continue
        if turns and turns[-1][0] == role:
            turns[-1] = (role, turns[-1][1] + "\n" + text)
        else:
            turns.append((role, text))
    if len(turns) > 1 and turns[-1][0] == "assistant":
        text = turns.pop()[1]
        if turns[-1][0] == "user":
            turns[-1] = ("user", turns[-1][1] + "\n" + text)
        else:
            turns.append(("user", text))
    opening: list[str] = []
    while turns and turns[0][0] == "assistant":
        text = turns.pop(0)[1]
        match = _QUESTION_IS_RE.search(text)
        opening.append(text[match.end():].strip() if match else text)
    if not turns:
        turns = [("user", "")]
    if opening:
        turns[0] = ("user", "\n".join(opening + [turns[0][1]]).strip())
    return [{"role": role, "content": text} for role, text in turns]


def reference_from_solution(solution: Any) -> str | None:
    """The final answer of a worked solution: its last non-empty line ("Not Available": none)."""
    if not isinstance(solution, str):
        return None
    lines = [line.strip() for line in solution.replace("\u00a0", " ").splitlines() if line.strip()]
    if not lines or lines[-1].lower().startswith("not available"):
        return None
    return lines[-1]


def load_mrbench(data: Any, name: str) -> list[LabelledReply]:
    if not isinstance(data, list):
        raise EvaluateError(f"{name} is not an MRBench file: expected a JSON list of dialogues.")
    replies = []
    for index, dialogue in enumerate(data):
        if not isinstance(dialogue, dict) or not isinstance(dialogue.get("anno_llm_responses"), dict):
            raise EvaluateError(f"{name}: dialogue {index + 1} has no anno_llm_responses mapping.")
        history = dialogue_messages(str(dialogue.get("conversation_history") or ""))
        reference = reference_from_solution(dialogue.get("Ground_Truth_Solution"))
        dialogue_id = str(dialogue.get("conversation_id") or index + 1)
        for tutor, entry in dialogue["anno_llm_responses"].items():
            if not isinstance(entry, dict):
                continue
            response = _clean(str(entry.get("response") or ""))
            labels = {_MRBENCH_KEYS[k]: normalise_label(_MRBENCH_KEYS[k], v)
                      for k, v in (entry.get("annotation") or {}).items() if k in _MRBENCH_KEYS}
            metadata: dict[str, Any] = {"source": str(dialogue.get("Data") or "mrbench"), "dialogue_id": dialogue_id,
                                        "model": tutor}
            if reference:
                metadata["reference_answer"] = reference
                metadata["reference_solution"] = _clean(str(dialogue["Ground_Truth_Solution"]))
            record = {"id": f"{dialogue_id}/{tutor}",
                      "messages": history + [{"role": "assistant", "content": response}],
                      "metadata": metadata}
            replies.append(LabelledReply(record["id"], tutor, record, {k: v for k, v in labels.items() if v}))
    return replies


_HANDWRITTEN = {  # the unit set's labels in the taxonomy's terms
    "good": {"revealing": "no", "guidance": "yes", "actionability": "yes"},
    "leak": {"revealing": "yes_correct"},
    "weak": {"revealing": "no", "guidance": "no"},
}


def load_jsonl(lines: Iterable[str], name: str) -> list[LabelledReply]:
    replies = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise EvaluateError(f"{name}:{line_no}: not valid JSON ({exc}).") from None
        if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
            raise EvaluateError(f"{name}:{line_no}: a labelled record needs a messages list.")
        raw = record.get("labels")
        if raw is None and isinstance(record.get("eval"), dict):
            raw = _HANDWRITTEN.get(record["eval"].get("label"))
        if not isinstance(raw, dict) or not raw:
            raise EvaluateError(f"{name}:{line_no}: no labels object (e.g. {{\"revealing\": \"no\", \"guidance\": \"yes\"}}).")
        unknown = sorted(set(raw) - set(DIMENSIONS))
        if unknown:
            raise EvaluateError(f"{name}:{line_no}: unknown label dimension(s) {', '.join(unknown)}; "
                                f"known: {', '.join(DIMENSIONS)}.")
        labels = {k: normalise_label(k, v) for k, v in raw.items()}
        metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
        tutor = str(record.get("tutor") or metadata.get("model") or "unknown")
        rid = str(record.get("id") or f"line-{line_no}")
        body = {"id": rid, "messages": record["messages"], "metadata": metadata}
        replies.append(LabelledReply(rid, tutor, body, {k: v for k, v in labels.items() if v}))
    return replies


def load(path: str | Path) -> list[LabelledReply]:
    """Labelled replies from an MRBench JSON file or our labelled JSONL (told apart by content)."""
    path = Path(path)
    if not path.is_file():
        raise EvaluateError(f"labelled set {path} does not exist or is not a file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EvaluateError(f"labelled set {path} is not UTF-8 text (byte {exc.start}).") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise EvaluateError(f"labelled set {path} is not valid JSON ({exc}).") from None
        replies = load_mrbench(data, str(path))
    else:
        replies = load_jsonl(text.splitlines(), str(path))
    if not replies:
        raise EvaluateError(f"labelled set {path} holds no labelled reply.")
    return replies


# --------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------

# A decision function: record -> (accepted, drop-reason codes).
Decide = Callable[[Mapping[str, Any]], tuple[bool, set[str]]]

# The workshop this project replaces: three phrases out, then a question mark or a guiding phrase in.
WORKSHOP_RED = ("the answer is", "the solution is", "therefore, x =")
WORKSHOP_GREEN = ("what do you notice", "what operation would", "what do you think", "how would you",
                  "what would happen", "can you try")


def workshop_verdict(reply: str) -> str | None:
    """The workshop's keyword filter on one tutor reply: None (keep) or why it drops it."""
    low = reply.lower()
    if any(phrase in low for phrase in WORKSHOP_RED):
        return "states_answer"
    if "?" in reply or any(phrase in low for phrase in WORKSHOP_GREEN):
        return None
    return "no_question"


def workshop_decide(record: Mapping[str, Any]) -> tuple[bool, set[str]]:
    """The workshop's keyword filter on the final tutor reply."""
    messages = record.get("messages") or []
    reply = messages[-1].get("content", "") if messages and isinstance(messages[-1], dict) else ""
    if not isinstance(reply, str) or not reply.strip():
        return False, {"empty"}
    why = workshop_verdict(reply)
    return why is None, {why} if why else set()


def accept_all(record: Mapping[str, Any]) -> tuple[bool, set[str]]:
    return True, set()


def filter_decide(options) -> Decide:
    """The filter's per-record layers (format, rules, leakage) under ``options`` (a FilterOptions)."""
    from . import filtering

    rules = filtering.load_rules(options.rules_path)

    def decide(record: Mapping[str, Any]) -> tuple[bool, set[str]]:
        codes = {reason["code"] for reason in filtering.check_conversation(record, rules, options)}
        return not codes, codes

    return decide


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _ends_with_question(text: str) -> bool:
    from .filtering import ends_with_question

    return ends_with_question(text)


def headline(replies: Sequence[LabelledReply], accepted: Sequence[bool]) -> dict[str, Any]:
    """The figures that say whether what is kept is what people call good."""
    kept = [r for r, a in zip(replies, accepted) if a]
    good = [(r, a) for r, a in zip(replies, accepted) if r.good]
    good_question = [(r, a) for r, a in good if _ends_with_question(r.reply)]
    bad = [(r, a) for r, a in zip(replies, accepted) if r.good is False]
    labelled_reveal = [r for r in kept if r.reveals is not None]
    labelled_good = [r for r in kept if r.good is not None]
    identified = [r for r in kept if "mistake_identification" in r.labels]
    out: dict[str, Any] = {
        "replies": len(replies),
        "accepted": len(kept),
        "accepted_reveal_share": _share(sum(bool(r.reveals) for r in labelled_reveal), len(labelled_reveal)),
        "accepted_good_share": _share(sum(bool(r.good) for r in labelled_good), len(labelled_good)),
        "accepted_identifies_mistake_share": _share(
            sum(r.labels["mistake_identification"] == "yes" for r in identified), len(identified)),
        "good_recall": _share(sum(a for _, a in good), len(good)),
        "good_question_recall": _share(sum(a for _, a in good_question), len(good_question)),
        "bad_rejected": _share(sum(not a for _, a in bad), len(bad)),
    }
    recall, rejected = out["good_recall"], out["bad_rejected"]
    out["balanced_accuracy"] = round((recall + rejected) / 2, 4) if recall is not None and rejected is not None else None
    moves = [(r.labels["move"], a) for r, a in zip(replies, accepted) if r.labels.get("move") in TELLING_MOVES | ASKING_MOVES]
    if moves:
        asking = [a for m, a in moves if m in ASKING_MOVES]
        telling = [not a for m, a in moves if m in TELLING_MOVES]
        kept_asking, rejected_telling = _share(sum(asking), len(asking)), _share(sum(telling), len(telling))
        out["moves"] = {"asking_kept": kept_asking, "telling_rejected": rejected_telling,
                        "balanced_accuracy": round(((kept_asking or 0) + (rejected_telling or 0)) / 2, 4)}
    return out


def confusion(replies: Sequence[LabelledReply], accepted: Sequence[bool]) -> dict[str, dict[str, dict[str, int]]]:
    """Per dimension and label value: how many replies were accepted and rejected."""
    table: dict[str, dict[str, dict[str, int]]] = {}
    for dimension in DIMENSIONS:
        counts: dict[str, dict[str, int]] = {}
        for reply, kept in zip(replies, accepted):
            value = reply.labels.get(dimension)
            if value is None:
                continue
            cell = counts.setdefault(value, {"accepted": 0, "rejected": 0})
            cell["accepted" if kept else "rejected"] += 1
        if counts:
            table[dimension] = dict(sorted(counts.items()))
    return table


@dataclass
class DecisionReport:
    name: str
    overall: dict[str, Any]
    per_tutor: dict[str, dict[str, Any]]
    confusion: dict[str, dict[str, dict[str, int]]]
    reasons_on_good: dict[str, int] = field(default_factory=dict)
    accepted_bad: list[dict[str, Any]] = field(default_factory=list)
    rejected_good: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "overall": self.overall, "per_tutor": self.per_tutor, "confusion": self.confusion,
                "drop_reasons_on_good_replies": self.reasons_on_good,
                "examples": {"accepted_not_good": self.accepted_bad, "rejected_good": self.rejected_good}}


def _example(reply: LabelledReply, codes: Iterable[str]) -> dict[str, Any]:
    return {"id": reply.id, "tutor": reply.tutor, "reply": reply.reply[:300], "labels": dict(reply.labels),
            "drop_reasons": sorted(codes)}


def run_decision(name: str, replies: Sequence[LabelledReply], decide: Decide, examples: int = 20) -> DecisionReport:
    decisions = [decide(r.record) for r in replies]
    accepted = [a for a, _ in decisions]
    by_tutor: dict[str, list[int]] = defaultdict(list)
    for index, reply in enumerate(replies):
        by_tutor[reply.tutor].append(index)
    per_tutor = {tutor: headline([replies[i] for i in idx], [accepted[i] for i in idx])
                 for tutor, idx in sorted(by_tutor.items())}
    reasons_on_good: Counter[str] = Counter()
    accepted_bad, rejected_good = [], []
    for reply, (kept, codes) in zip(replies, decisions):
        if reply.good and not kept:
            reasons_on_good.update(codes)
            if len(rejected_good) < examples:
                rejected_good.append(_example(reply, codes))
        elif kept and reply.good is False and len(accepted_bad) < examples:
            accepted_bad.append(_example(reply, codes))
    return DecisionReport(name, headline(replies, accepted), per_tutor, confusion(replies, accepted),
                          dict(reasons_on_good.most_common()), accepted_bad, rejected_good)


# --------------------------------------------------------------------------------------------
# Judge agreement
# --------------------------------------------------------------------------------------------


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    left, right = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(left[k] * right.get(k, 0) for k in left) / (n * n)
    if math.isclose(expected, 1.0):
        return 1.0 if math.isclose(observed, 1.0) else 0.0
    return round((observed - expected) / (1 - expected), 4)


def f1_scores(pairs: Sequence[tuple[str, str]], positive: str) -> dict[str, float | None]:
    """Binary F1 of ``positive`` and macro-F1 over every label seen (human, judge) pairs."""
    labels = sorted({h for h, _ in pairs} | {j for _, j in pairs})

    def f1(label: str) -> float:
        tp = sum(h == label and j == label for h, j in pairs)
        fp = sum(h != label and j == label for h, j in pairs)
        fn = sum(h == label and j != label for h, j in pairs)
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0

    if not pairs:
        return {"f1": None, "macro_f1": None}
    return {"f1": round(f1(positive), 4), "macro_f1": round(sum(map(f1, labels)) / len(labels), 4)}


# The judge's dimensions and the label a positive decision means, for binary F1.
JUDGE_DIMENSIONS = {"mistake_identification": "yes", "revealing": "yes", "guidance": "yes",
                    "actionability": "yes", "tone": "encouraging"}


def _binary(dimension: str, value: str) -> str:
    """Two classes: the positive label against the rest ("partly" counts as not "yes")."""
    if dimension == "revealing":
        return "no" if value == "no" else "yes"
    positive = JUDGE_DIMENSIONS[dimension]
    return positive if value == positive else "not_" + positive


def agreement(replies: Sequence[LabelledReply], judged: Sequence[Mapping[str, str] | None]) -> dict[str, Any]:
    """Per dimension: the judge's labels against the human ones (three-way macro-F1 as in the BEA
    2025 shared task, binary F1 of the positive label, Cohen's kappa), over replies both labelled."""
    out: dict[str, Any] = {"judged": sum(j is not None for j in judged), "replies": len(replies)}
    for dimension, positive in JUDGE_DIMENSIONS.items():
        pairs = [(r.labels[dimension], j[dimension]) for r, j in zip(replies, judged)
                 if j is not None and dimension in r.labels and j.get(dimension)]
        binary = [(_binary(dimension, h), _binary(dimension, j)) for h, j in pairs]
        three_way = f1_scores(pairs, positive)
        two_way = f1_scores(binary, positive)
        out[dimension] = {"pairs": len(pairs), "macro_f1": three_way["macro_f1"], "f1": two_way["f1"],
                          "binary_macro_f1": two_way["macro_f1"], "kappa": cohen_kappa(pairs),
                          "binary_kappa": cohen_kappa(binary)}
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

_HEADLINE_COLUMNS = (
    ("accepted", "accepted"),
    ("accepted_reveal_share", "reveal the answer"),
    ("accepted_good_share", "guiding + actionable + not revealing"),
    ("accepted_identifies_mistake_share", "identify the mistake"),
    ("good_recall", "good kept"),
    ("good_question_recall", "good ending in ? kept"),
    ("balanced_accuracy", "balanced accuracy"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{100 * value:.1f}%"
    return str(value)


def headline_table(rows: Sequence[tuple[str, Mapping[str, Any]]], first: str) -> list[str]:
    columns = list(_HEADLINE_COLUMNS)
    if any("moves" in row for _, row in rows):
        columns.append(("moves", "telling/asking moves bal. acc."))
    lines = ["| " + " | ".join([first] + [title for _, title in columns]) + " |",
             "|" + "---|" * (len(columns) + 1)]
    for name, row in rows:
        cells = [_cell(row["moves"]["balanced_accuracy"] if key == "moves" and "moves" in row else row.get(key))
                 for key, _ in columns]
        lines.append("| " + " | ".join([name] + cells) + " |")
    return lines


def markdown(report: Mapping[str, Any]) -> str:
    decisions = report["decisions"]
    lines = [f"# Filter evaluation on {report['input']}", "",
             f"{report['replies']} labelled replies from {len(report['tutors'])} tutors; "
             f"filter layers: {', '.join(report['filter_layers'])}. "
             "Shares on the accepted set; \"good\" = labelled guiding and actionable and not revealing.", ""]
    lines += headline_table([(d["name"], d["overall"]) for d in decisions], "decision")
    main = decisions[-1]
    lines += ["", f"## Per tutor ({main['name']})", ""]
    lines += headline_table(sorted(main["per_tutor"].items()), "tutor")
    lines += ["", f"## Accepted / rejected per label ({main['name']})", "",
              "| dimension | label | accepted | rejected |", "|---|---|---|---|"]
    for dimension, values in main["confusion"].items():
        for value, cell in values.items():
            lines.append(f"| {dimension} | {value} | {cell['accepted']} | {cell['rejected']} |")
    if main["drop_reasons_on_good_replies"]:
        lines += ["", "## Why good replies were rejected", "", "| drop reason | good replies |", "|---|---|"]
        lines += [f"| {code} | {count} |" for code, count in main["drop_reasons_on_good_replies"].items()]
    judge = report.get("judge")
    if judge:
        lines += ["", f"## Judge agreement with the human labels ({judge['judged']} of {judge['replies']} judged)", "",
                  "| dimension | pairs | 3-way macro-F1 | F1 (positive) | binary macro-F1 | kappa | binary kappa |",
                  "|---|---|---|---|---|---|---|"]
        for dimension in JUDGE_DIMENSIONS:
            row = judge[dimension]
            lines.append(f"| {dimension} | {row['pairs']} | " + " | ".join(
                "-" if row[k] is None else f"{row[k]:.3f}"
                for k in ("macro_f1", "f1", "binary_macro_f1", "kappa", "binary_kappa")) + " |")
        lines += ["", "For scale: the best BEA 2025 shared-task systems reach ~0.72 macro-F1 on mistake "
                      "identification and ~0.58 on providing guidance on this taxonomy."]
    return "\n".join(lines) + "\n"


@dataclass
class EvaluateResult:
    report: dict[str, Any]
    json_path: str
    markdown_path: str


def spread(replies: Sequence[LabelledReply], count: int) -> list[LabelledReply]:
    """``count`` replies spread evenly over the set (all when ``count`` is 0 or covers it)."""
    if count <= 0 or count >= len(replies):
        return list(replies)
    return [replies[i * len(replies) // count] for i in range(count)]


def evaluate(input_path: str | Path, output_dir: str | Path, filter_options, *, judge=None,
             examples: int = 20, sample: int = 0, progress: Callable[[str], None] | None = None) -> EvaluateResult:
    """Run accept-everything, the workshop filter and the filter (then the judge, if given: a
    :class:`~socratic_sdg.filtering.judge.Judge`) over a labelled set; write evaluation.json and
    evaluation.md to ``output_dir``."""
    replies = spread(load(input_path), sample)
    say = progress or (lambda _message: None)
    say(f"[evaluate] {len(replies)} labelled replies from {input_path}" + (" (a spread sample)" if sample else ""))
    reports = [run_decision("accept everything", replies, accept_all, examples),
               run_decision("workshop filter", replies, workshop_decide, examples),
               run_decision("socratic-sdg filter", replies, filter_decide(filter_options), examples)]
    report: dict[str, Any] = {
        "input": str(input_path), "replies": len(replies), "tutors": sorted({r.tutor for r in replies}),
        "filter_layers": [layer for layer in filter_options.layers() if layer not in ("judge", "dedup")],
        "decisions": [r.as_dict() for r in reports],
    }
    if judge is not None:
        say(f"[evaluate] judging {len(replies)} replies")
        outcomes = judge.judge_many([(r.record, None) for r in replies])
        labels = [o.verdict.labels() if o.verdict is not None else None for o in outcomes]
        report["judge"] = agreement(replies, labels)
        report["judge"]["stats"] = dict(judge.stats)
        deterministic = filter_decide(filter_options)

        def with_judge(record, _outcomes=dict(zip((r.id for r in replies), outcomes))):
            kept, codes = deterministic(record)
            extra = {reason["code"] for reason in _outcomes[record["id"]].reasons}
            return kept and not extra, codes | extra

        report["decisions"].append(run_decision("filter + judge", replies, with_judge, examples).as_dict())
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = out / "evaluation.json", out / "evaluation.md"
    write_json(json_path, report)
    markdown_path.write_text(markdown(report), encoding="utf-8")
    return EvaluateResult(report, str(json_path), str(markdown_path))


__all__ = ["DIMENSIONS", "EvaluateError", "EvaluateResult", "LabelledReply", "agreement", "cohen_kappa",
           "dialogue_messages", "evaluate", "f1_scores", "headline", "load", "normalise_label",
           "reference_from_solution", "workshop_decide"]
