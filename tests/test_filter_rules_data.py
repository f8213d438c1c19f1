"""The filter's data files: the packaged rules (including their ``requires`` speed hints) and the
judge prompt. A ``requires`` hint that does not hold silently switches its pattern off on some
texts, so every hint is checked against every match of its pattern on every text we have."""

from __future__ import annotations

from pathlib import Path

import pytest

import test_filter
import test_filter_leakage
from socratic_sdg import filtering
from socratic_sdg.filtering import judge as filter_judge
from socratic_sdg.testing import filter_eval

EVAL_DIR = Path(__file__).parent / "data" / "filter_eval"


def _corpus() -> list[str]:
    texts: list[str] = []
    for name in ("eval", "heldout", "dedup"):
        for record in filter_eval.load_labelled(EVAL_DIR / f"{name}.jsonl"):
            for message in record["messages"] if isinstance(record["messages"], list) else []:
                if isinstance(message, dict) and isinstance(message.get("content"), str):
                    texts.append(message["content"])
            texts.append(str(record["metadata"].get("reference_answer") or ""))
    for record in filter_eval.synthetic_records(2000, seed=99):
        texts += [m["content"] for m in record["messages"]]
    texts += [reply for reply, _ in test_filter.LEAKS] + test_filter.GUIDING + test_filter.OFFERS_THE_ANSWER
    texts += [turns[-1] for turns, _, _ in test_filter_leakage.LEAK_OR_NOT]
    # Variants that stress case and spacing, where hints are most likely to be wrong.
    texts += [t.upper() for t in texts[:400]] + [t.replace(" ", "\n") for t in texts[:400]]
    return [t for t in texts if t]


@pytest.fixture(scope="module")
def rules() -> filtering.Rules:
    return filtering.load_rules(None)


def test_every_requires_hint_holds_on_every_match(rules) -> None:
    corpus = _corpus()
    checked = 0
    every = rules.format_flags + rules.red_flags + rules.green_flags + rules.weak_questions
    for rule in every:
        if not rule.requires:
            continue
        for text in corpus:
            pieces = filtering.statements(text) if rule.scope == "statement" else [text]
            if any(rule.regex.search(piece) for piece in pieces):
                checked += 1
                assert any(literal in text.lower() for literal in rule.requires), (
                    f"{rule.code}: pattern matches {text!r} but none of requires {rule.requires} occurs")
    assert checked > 500


def test_hints_only_ever_skip_non_matching_texts(rules) -> None:
    """The same check through the filter's own fast path (Rules.present)."""
    for text in _corpus()[:3000]:
        lowered = text.lower()
        present = rules.present(lowered)
        for rule in rules.red_flags + rules.green_flags:
            if rule.scope == "turn" and rule.regex.search(text):
                assert rule.search(text, lowered, present) is not None, (rule.code, text)


def test_packaged_data_files_load() -> None:
    rules = filtering.load_rules(None)
    assert rules.leakage is not None and {"en", "es", "fr", "de"} <= set(rules.languages)
    assert all(rule.requires for rule in rules.red_flags + rules.green_flags + rules.format_flags)
    prompt = filter_judge.load_judge_prompt()
    assert "{{conversation}}" in prompt.user and "answer_revealing" in prompt.user


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("red_flags: []\nleakage: {trivial_values: [0]}\n", "leakage needs"),
        ("red_flags: []\nleakage: 3\n", "leakage must be a mapping"),
        ("red_flags: []\nlanguages: {en: the}\n", "languages must map"),
        ("red_flags:\n  - code: x\n    pattern: 'x'\n    explanation: e\n    requires: []\n", "requires must be"),
        ("red_flags: []\nweak_questions:\n  - code: w\n    pattern: '(unclosed'\n    explanation: e\n", "not a valid regex"),
    ],
)
def test_broken_data_sections_are_reported(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=fragment):
        filtering.load_rules(str(path))
