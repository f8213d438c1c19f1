"""The labelled evaluation set: precision and recall of leak detection, next to the workshop baseline.

tests/data/filter_eval/README.md explains the sets and labels. ``leak`` is the positive class: a
record counts as detected when it is rejected with a leak code (a red flag of the rules layer, a
leakage-layer code or a judge reveal code). ``eval.jsonl`` is the development set the filter was
tuned on; ``heldout.jsonl`` was written afterwards and measured once before further changes (the
figures at that first measurement are in the README), so it is the more honest estimate.

Run with ``-s`` to see the table.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from socratic_sdg.testing import filter_eval
from socratic_sdg.filtering import FilterOptions

EVAL_DIR = Path(__file__).parent / "data" / "filter_eval"
# The deterministic layers as the evaluation runs them: defaults plus the optional language check.
EVAL_OPTIONS = FilterOptions(language="en")

# Bars, set below what the filter reaches (dev 1.00/1.00, held-out 0.97/1.00) with some margin.
MIN_PRECISION = 0.95
MIN_RECALL = 0.90
MIN_SPLIT_PRECISION = 0.90
MIN_SPLIT_RECALL = 0.90
MIN_ACCURACY = 0.90


@pytest.fixture(scope="module")
def decide():
    return filter_eval.filter_decide(EVAL_OPTIONS)


@pytest.fixture(scope="module")
def sets() -> dict[str, list[dict]]:
    return {name: filter_eval.load_labelled(EVAL_DIR / f"{name}.jsonl") for name in ("eval", "heldout")}


def test_jsonl_files_match_their_builder() -> None:
    spec = importlib.util.spec_from_file_location("build_eval", EVAL_DIR / "build_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dev, held, dedup = module.build()
    for name, records in (("eval", dev), ("heldout", held), ("dedup", dedup)):
        assert (EVAL_DIR / f"{name}.jsonl").read_text(encoding="utf-8") == module.render(records), (
            f"{name}.jsonl is out of date: run python tests/data/filter_eval/build_eval.py")


def test_the_sets_cover_what_they_must(sets) -> None:
    records = sets["eval"] + sets["heldout"]
    assert len(records) >= 150
    labels = [r["eval"]["label"] for r in records]
    assert min(labels.count(label) for label in ("good", "leak", "weak")) >= 30
    topics = {r["eval"]["topic"] for r in records}
    assert {"algebra", "calculus", "linear algebra", "geometry", "word problem", "statistics", "probability"} <= topics
    layers = {r["eval"]["layer"] for r in records if r["eval"]["label"] != "good"}
    assert {"format", "rules", "leakage", "language", "judge"} <= layers
    multi_turn_leaks = [r for r in records if r["eval"]["label"] == "leak" and len(r["messages"]) > 2]
    question_leaks = [r for r in records if r["eval"]["label"] == "leak" and r["messages"][-1]["content"].rstrip().endswith("?")]
    assert len(multi_turn_leaks) >= 5 and len(question_leaks) >= 40


def test_leak_detection_beats_the_bar_and_the_workshop_baseline(sets, decide) -> None:
    rows = []
    ours_all = filter_eval.score(sets["eval"] + sets["heldout"], decide, "all: this filter")
    base_all = filter_eval.score(sets["eval"] + sets["heldout"], filter_eval.workshop_decide, "all: workshop baseline")
    for name, records in sets.items():
        ours = filter_eval.score(records, decide, f"{name}: this filter")
        base = filter_eval.score(records, filter_eval.workshop_decide, f"{name}: workshop baseline")
        rows += [base.row(), ours.row()]
        assert ours.precision >= MIN_SPLIT_PRECISION and ours.recall >= MIN_SPLIT_RECALL, "\n".join(ours.misses)
        assert ours.accuracy >= MIN_ACCURACY, "\n".join(ours.misses)
        assert ours.good_accepted == ours.good_total, "\n".join(ours.misses)  # no good reply lost
    rows += [base_all.row(), ours_all.row()]
    print("\n" + "\n".join(rows))
    assert ours_all.precision >= MIN_PRECISION and ours_all.recall >= MIN_RECALL, "\n".join(ours_all.misses)
    assert ours_all.recall - base_all.recall >= 0.5 and ours_all.accuracy > base_all.accuracy


def test_judge_only_cases_are_reported_not_hidden(sets, decide) -> None:
    """Weak replies that need understanding ("Do you like graphing lines?") pass the deterministic
    layers; they are in the set so the gap stays visible, and the judge layer is there for them."""
    records = sets["eval"] + sets["heldout"]
    judge_cases = [r for r in records if r["eval"].get("layer") == "judge"]
    assert judge_cases and all(decide(r)[0] for r in judge_cases)
    scores = filter_eval.score(records, decide, "with judge cases", include_judge_cases=True)
    assert scores.accuracy >= MIN_ACCURACY
