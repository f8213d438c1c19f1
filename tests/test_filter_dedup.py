"""The dedup layer (socratic_sdg.filtering.dedup): exact and near-duplicate questions and conversations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from socratic_sdg.options import from_params, parameters

from socratic_sdg import filtering
from socratic_sdg.testing import filter_eval
from socratic_sdg.filtering import FilterOptions
from socratic_sdg.filtering.dedup import DedupCandidate, Deduplicator, DedupOptions, normalize_text

DEDUP_SET = Path(__file__).parent / "data" / "filter_eval" / "dedup.jsonl"
REPLY = "What could you do to both sides to get the 3x term by itself?"


def convo(rid: str, question: str, reply: str = REPLY, **metadata: Any) -> dict[str, Any]:
    return {"id": rid, "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": reply}],
            "metadata": metadata}


def run(tmp_path: Path, records: list[dict[str, Any]], **options: Any):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result = filtering.run(source, tmp_path / "out", from_params(FilterOptions, options))  # flat names, as the CLI and KFP give them
    accepted = [json.loads(line) for line in Path(result.accepted_path).read_text().splitlines()]
    rejected = [json.loads(line) for line in Path(result.rejected_path).read_text().splitlines()]
    return result, accepted, rejected


def test_labelled_dedup_set(tmp_path: Path) -> None:
    records = filter_eval.load_labelled(DEDUP_SET)
    result, accepted, rejected = run(tmp_path, records)
    expected = {r["id"]: r["eval"] for r in records}
    assert sorted(r["id"] for r in accepted) == sorted(i for i, e in expected.items() if e["expect"] == "accept")
    for record in rejected:
        [reason] = record["metadata"]["drop_reasons"]
        assert reason["layer"] == "dedup"
        assert reason["duplicate_of"] == expected[record["id"]]["duplicate_of"]
        assert expected[record["id"]]["duplicate_of"] in reason["detail"]
    codes = {r["id"]: r["metadata"]["drop_reasons"][0]["code"] for r in rejected}
    assert codes == {"d02": "duplicate_conversation", "d03": "duplicate_student_question",
                     "d04": "near_duplicate_student_question", "d07": "near_duplicate_student_question",
                     "d10": "near_duplicate_conversation"}
    metrics = json.loads(Path(result.metrics_path).read_text())
    assert metrics["dedup"]["duplicates"]["near_duplicate_student_question"] == 2
    assert metrics["rejected_by_layer"]["dedup"] == 5


def test_first_accepted_copy_wins_not_a_rejected_one(tmp_path: Path) -> None:
    """A leaking first copy must not get its clean twin rejected as a duplicate."""
    records = [
        convo("leaky", "How do I solve 3x - 5 = 10?", "So x = 5. Can you check it?", reference_answer="x = 5"),
        convo("clean", "How do I solve 3x - 5 = 10?", REPLY, reference_answer="x = 5"),
        convo("again", "How do I solve 3x - 5 = 10?", "Which operation would undo the - 5 on the left side?"),
    ]
    _, accepted, rejected = run(tmp_path, records)
    assert [r["id"] for r in accepted] == ["clean"]
    by_id = {r["id"]: r["metadata"]["drop_reasons"] for r in rejected}
    assert by_id["leaky"][0]["layer"] == "rules"
    assert by_id["again"] == [{"code": "duplicate_student_question", "layer": "dedup", "duplicate_of": "clean",
                               "detail": by_id["again"][0]["detail"]}]


def test_numbers_make_different_problems(tmp_path: Path) -> None:
    records = [convo("a", "How do I solve 3x - 5 = 10? I keep getting confused."),
               convo("b", "How do I solve 3x - 7 = 10? I keep getting confused.")]
    _, accepted, _ = run(tmp_path, records)
    assert len(accepted) == 2
    _, accepted, rejected = run(tmp_path, records, dedup_numbers_must_match=False)
    assert [r["id"] for r in accepted] == ["a"]
    assert rejected[0]["metadata"]["drop_reasons"][0]["code"] in {"near_duplicate_conversation", "near_duplicate_student_question"}


def test_each_part_can_be_switched_off(tmp_path: Path) -> None:
    records = [convo("a", "How do I solve 3x - 5 = 10?"), convo("b", "how do I solve 3x-5=10", "Which operation undoes - 5?"),
               convo("c", "How do I solve 3x - 5 = 10?")]
    assert len(run(tmp_path, records)[1]) == 1
    assert len(run(tmp_path, records, dedup=False)[1]) == 3
    # Questions off: only the exact copy of the whole conversation goes.
    _, accepted, rejected = run(tmp_path, records, dedup_questions=False)
    assert [r["id"] for r in accepted] == ["a", "b"]
    assert rejected[0]["metadata"]["drop_reasons"][0]["code"] == "duplicate_conversation"
    result, _, _ = run(tmp_path, records, dedup=False)
    assert "dedup" not in json.loads(Path(result.metrics_path).read_text())
    assert "dedup" not in json.loads(Path(result.accepted_path).read_text().splitlines()[0])["metadata"]["quality"]["layers"]


def test_normalisation_folds_case_spacing_punctuation_and_unicode() -> None:
    assert normalize_text("How do I solve 3x−5=10?") == normalize_text("how do  I solve 3x - 5 = 10")
    assert normalize_text("Ｗhat is ２＋２?") == normalize_text("what is 2 + 2")


def test_decisions_are_deterministic_and_independent_of_block_size(tmp_path: Path) -> None:
    records = list(filter_eval.synthetic_records(1500, seed=3, duplicate_rate=0.15))
    outcomes = []
    for block_size in (1, 64, 512):
        dedup = Deduplicator(DedupOptions())
        decisions = []
        for start in range(0, len(records), block_size):
            block = records[start:start + block_size]
            for reason, _ in dedup.check_block([DedupCandidate(r["id"], r["messages"]) for r in block]):
                decisions.append(None if reason is None else (reason["code"], reason["duplicate_of"]))
        outcomes.append(decisions)
    assert outcomes[0] == outcomes[1] == outcomes[2]
    # Every injected copy is caught when it is exact or differs only in case, spacing or punctuation.
    by_id = {r["id"]: r for r in records}
    for record, decision in zip(records, outcomes[0]):
        original = record["metadata"].get("duplicate_of")
        if original and normalize_text(record["messages"][0]["content"]) == normalize_text(by_id[original]["messages"][0]["content"]):
            assert decision is not None, record["id"]


@pytest.mark.parametrize(
    "options",
    [dict(num_perm=60, bands=16), dict(question_threshold=0), dict(conversation_threshold=1.5), dict(shingle_chars=1)],
)
def test_dedup_options_are_validated(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DedupOptions(**options)
    flat = {f"dedup_{k}": v for k, v in options.items()}
    if set(flat) <= set(parameters(FilterOptions)):  # the thresholds are parameters (CLI, KFP): refused there too
        with pytest.raises(ValueError):
            from_params(FilterOptions, flat)
