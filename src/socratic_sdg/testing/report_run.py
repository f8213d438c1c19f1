"""A small finished run for the report's tests and screenshots: stage folders as the pipeline leaves
them, with the real filter (with a stub judge), the real export and the real report.

Three course documents with numbered sections; conversations from most sections (a few are left out,
as a chunk limit does), with the flows' diversity axes; tutor replies that guide, state the answer,
ask no question or are cut short, more often for some request types, so every part of the report has
something to show. Deterministic: the same folder content every time.
"""

from __future__ import annotations

import json
import random
import subprocess
import tempfile
from pathlib import Path

from .. import export, filtering
from ..export import summary
from ..filtering.judge import JudgeOptions
from ..generate.catalog import load_diversity
from ..records import write_json, write_jsonl
from .generation import conversation

FLOW_ID = "socratic-single-turn"
STAGES = ("converted", "chunks", "conversations", "filtered", "dataset")

COURSE = {
    "calculus-1.pdf": {
        "1 Limits": ["1.1 The idea of a limit", "1.2 One-sided limits", "1.3 Limit laws", "1.4 Continuity"],
        "2 Derivatives": ["2.1 The derivative as a rate", "2.2 The product rule", "2.3 The chain rule", "2.4 Implicit differentiation",
                          "2.5 Related rates"],
        "3 Integrals": ["3.1 Antiderivatives", "3.2 The definite integral", "3.3 Substitution", "3.4 Integration by parts"],
    },
    "linear-algebra.pdf": {
        "1 Vectors": ["1.1 Vector addition", "1.2 The dot product", "1.3 Linear combinations"],
        "2 Matrices": ["2.1 Matrix multiplication", "2.2 Inverses", "2.3 Determinants", "2.4 Eigenvalues"],
    },
    "probability.pdf": {
        "1 Counting": ["1.1 Permutations", "1.2 Combinations"],
        "2 Random variables": ["2.1 Expectation", "2.2 Variance", "2.3 Conditional probability", "2.4 Bayes' rule"],
    },
}
# Sections left without conversations (a chunk limit stops before them).
NOT_GENERATED = {"2.4 Eigenvalues", "2.4 Bayes' rule"}
SAMPLES_PER_SECTION = 3

# How each request type tends to go wrong: (guides, states the answer, no question, too short).
REPLY_WEIGHTS = {"just_tell_me": (5, 4, 1, 1), "wrong_attempt": (7, 1, 2, 0), "concept_question": (9, 0, 1, 0), "frustration": (6, 2, 1, 1)}


def _replies(topic: str, answer: str) -> list[str]:
    return [
        f"Good question. Before we use {topic}, what do you already know about the expression in front of you? "
        "Which part of it would you look at first?",
        f"Let's not rush it. The answer is {answer}. Does that make sense?",
        f"You could start from the definition of {topic} and write out the first step carefully.",
        "Ok.",
    ]


def _questions(topic: str) -> list[str]:
    return [
        f"Can you just tell me the answer to the exercise on {topic}? I need x for my homework.",
        f"I tried the example on {topic} and got a different x from the book. Is my first step right?",
        f"Why does {topic} work the way it does in this section? I don't see where the x comes from.",
    ]


def _judge_reply(messages: list[dict[str, str]]) -> str:
    """A stub judge: scores from the rubric's text, mostly good, sometimes a low one (a rejection)."""
    rng = random.Random(messages[-1]["content"])
    scores = {name: rng.choices((1, 2, 3, 4, 5), weights=(1, 2, 12, 40, 30))[0]
              for name in ("mistake_identification", "guidance", "actionability", "grounding", "tone")}
    return json.dumps({**scores, "answer_revealing": "no", "rationale": "The tutor asks a question and keeps the answer back."})


def _chunks() -> list[dict]:
    chunks = []
    for source, chapters in COURSE.items():
        for chapter, sections in chapters.items():
            for section in sections:
                chunks.append({"chunk_id": f"{Path(source).stem}-{section.split()[0]}", "doc_id": Path(source).stem, "source": source,
                               "headings": [chapter, section], "text": f"{section}. A worked example and the rule behind it."})
    return chunks


def _conversations(chunks: list[dict]) -> list[dict]:
    axes = load_diversity(Path(__file__).resolve().parents[1] / "generate" / "flows" / FLOW_ID.replace("-", "_") / "flow.yaml") or {}
    rng = random.Random(15)
    records = []
    for chunk in chunks:
        section = chunk["headings"][-1]
        if section in NOT_GENERATED:
            continue
        topic = section.split(" ", 1)[1].lower()
        for sample in range(SAMPLES_PER_SECTION):
            persona: dict[str, str] = {}
            for axis, options in axes.items():
                option = rng.choice(options)
                persona.update({str(k): str(v) for k, v in option.items()} if isinstance(option, dict) else {axis: str(option)})
            answer = f"x = {rng.randint(2, 9)}"
            kind = rng.choices(range(4), weights=REPLY_WEIGHTS.get(persona.get("request_type", ""), (1, 1, 1, 1)))[0]
            question = _questions(topic)[sample % SAMPLES_PER_SECTION]
            records.append(conversation(
                f"{chunk['chunk_id']}-s{sample}", question, _replies(topic, answer)[kind], chunk_id=chunk["chunk_id"], doc_id=chunk["doc_id"],
                source=chunk["source"], sample_index=sample, model="granite-3.3-8b-instruct", flow_id=FLOW_ID, reference_answer=answer,
                diversity=persona))
    return records


def write_run(root: str | Path, *, judge: bool = True) -> dict[str, Path]:
    """The stage folders of a finished run under ``root`` (converted, chunks, conversations, filtered,
    dataset), with the dataset's card and report written. Returns the folders by stage name."""
    folders = {name: Path(root) / name for name in STAGES}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    chunks = _chunks()
    records = _conversations(chunks)
    write_jsonl(folders["chunks"] / "chunks.jsonl", chunks)
    write_jsonl(folders["conversations"] / "conversations.jsonl", records)
    write_json(folders["converted"] / "convert_metrics.json", {"documents": len(COURSE), "failed": 0, "pages": 64, "seconds": 41.5})
    write_json(folders["chunks"] / "chunk_metrics.json", {"chunks": len(chunks), "dropped": 3, "tokens": 21800, "seconds": 2.1})
    write_json(folders["conversations"] / "generate_metrics.json", {
        "output_rows": len(records), "failed_rows": 4, "rows_failed_by_kind": {"timeout": 3, "no_conversation": 1},
        "execution_time_seconds": 312.0, "model": "granite-3.3-8b-instruct", "flow_id": FLOW_ID,
        "prompt_tokens": 48210, "completion_tokens": 15932})
    # No dedup: the templated questions differ in a few words, which near-duplicate detection rightly flags.
    options = filtering.FilterOptions(judge=JudgeOptions(complete=_judge_reply, max_concurrency=2) if judge else None,
                                      dedup=None, chunks_path=str(folders["chunks"] / "chunks.jsonl"))
    filtering.run(folders["conversations"] / "conversations.jsonl", folders["filtered"], options)
    export.run(folders["filtered"] / "accepted.jsonl", folders["dataset"])
    summary.document(folders["dataset"], converted_dir=folders["converted"], chunks_dir=folders["chunks"],
                     conversations_dir=folders["conversations"], filtered_dir=folders["filtered"], license_id="cc-by-4.0")
    return folders


# --- the report in a real browser (Debian's chromium, headless) ---------------------------------------

BROWSER = "chromium"
# No sandbox: tests and CI run as root in containers, where chromium's sandbox cannot start.
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1")


def _browser(page: Path, *flags: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run chromium once on ``page`` with its own throw-away profile (never the user's)."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([BROWSER, *BROWSER_FLAGS, f"--user-data-dir={profile}", *flags, Path(page).resolve().as_uri()],
                              capture_output=True, text=True, timeout=timeout, check=True)


def screenshot(page: str | Path, png: str | Path, width: int = 1280, height: int = 4000) -> Path:
    """A PNG of the top ``width`` x ``height`` pixels of ``page`` as chromium renders it."""
    _browser(Path(page), f"--screenshot={Path(png).resolve()}", f"--window-size={width},{height}")
    return Path(png)


def rendered_dom(page: str | Path) -> str:
    """The page's DOM after chromium loaded and laid it out (``--dump-dom``)."""
    return _browser(Path(page), "--dump-dom").stdout
