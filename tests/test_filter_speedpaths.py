"""The quality filter's fast paths decide exactly what the plain computations decide.

Every fast path in the deterministic layers is checked here against the straightforward version of
the same computation, over every text we have (the labelled sets, synthetic records, and variants
that stress case, number words, LaTeX and missing reference answers):

* the leakage layer's cheap pre-checks (``leakage.PRECHECKS``) never change a drop reason;
* the per-text caches: a record checked with cold caches, warm caches or in another order gets the
  same result (``check_conversation`` is also called one record at a time by the generation stage);
* rule hints as bitmasks (``Rules._hints``) select the rules the ``requires`` literals select;
* math parsed window by window (cached per window, lone numbers without the tokenizer) gives the
  mentions of the whole-text parse, in the same order;
* the rewritten sentence splitter and the anchored search of plain final results;
* dedup's MinHash signatures equal the textbook formula.

No timings here: speed is measured by benchmarks/bench_filter.py.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from socratic_sdg import filtering
from socratic_sdg.filtering import checks
from socratic_sdg.testing import filter_eval
from socratic_sdg.filtering import leakage
from socratic_sdg.filtering import math as fm
from socratic_sdg.filtering import FilterOptions
from socratic_sdg.filtering.dedup import _MinHasher

EVAL_DIR = Path(__file__).parent / "data" / "filter_eval"
# Digits spelled out in tutor turns. Not 1 -> "one": the record-level pre-check (may_state_values)
# ignores a lone "one" on purpose, as too common in prose, so "x is one" is a leak only the full
# analysis finds; that trade-off predates these fast paths and is not what this file checks.
_WORDS = {"0": "zero", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven", "8": "eight",
          "9": "nine", "10": "ten", "12": "twelve", "20": "twenty"}


def _variants(record: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """The record without its reference answer, and with its tutor turns rewritten."""
    messages = record.get("messages")
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    if not isinstance(messages, list):
        return []

    def tutor(rewrite):
        return {**record, "messages": [
            {**m, "content": rewrite(m["content"])}
            if isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), str) else m
            for m in messages]}

    return [
        {**record, "metadata": {k: v for k, v in metadata.items() if k != "reference_answer"}},
        tutor(lambda t: re.sub(r"\b\d+\b", lambda m: _WORDS.get(m.group(), m.group()), t)),
        tutor(lambda t: re.sub(r"(\d+)/(\d+)", r"$\\frac{\1}{\2}$", t)),
        tutor(str.upper),
        tutor(lambda t: t.replace("?", ".")),
        tutor(lambda t: f"Is it {rng.choice(['4', 'x = 3', 'sqrt 16', '8/2', 'seven', '0.5', '50%', '-2'])}? {t}"),
    ]


@pytest.fixture(scope="module")
def rules() -> filtering.Rules:
    return filtering.load_rules(None)


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    rng = random.Random(5)
    labelled = [r for name in ("eval", "heldout", "dedup") for r in filter_eval.load_labelled(EVAL_DIR / f"{name}.jsonl")]
    out = list(labelled) + [v for r in labelled for v in _variants(r, rng)]
    synthetic = list(filter_eval.synthetic_records(1000, seed=11))
    synthetic += list(filter_eval.synthetic_records(300, seed=12, duplicate_rate=0.2))
    out += synthetic + [v for r in synthetic[:200] for v in _variants(r, rng)]
    return out


@pytest.fixture(scope="module")
def texts(records) -> list[str]:
    found: list[str] = []
    for record in records:
        for message in record["messages"] if isinstance(record.get("messages"), list) else []:
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                found.append(message["content"])
        metadata = record.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("reference_answer"), str):
            found.append(metadata["reference_answer"])
    found += ["x = ±7", "1,000,5 and 1,000", "(1, 2, 3)", "x = -2, 3, 5", "f(x) = x^2 + 3x, f'(x) = 2x + 3", "-4 > x",
              "5!/(2!·3!) = 10", "sin 30° = 1/2", "\\sqrt[3]{27} = 3", "[[1, 2], [3, 4]]", "a, b = 2, 3",
              "a = 1, b = 4 and c = -5, so x = (-4 ± √(16 + 20))/2 = (-4 ± 6)/2", "İs ıt ſo? K = 4."]
    return list(dict.fromkeys(t for t in found if t))


# --------------------------------------------------------------------------------------------
# Whole records
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"check_rules": False}, {"leakage_use_problem": False}])
def test_leakage_prechecks_never_change_a_drop_reason(records, rules, monkeypatch, options) -> None:
    opts = FilterOptions(dedup=False, **options)
    fast = [filtering.check_conversation(record, rules, opts) for record in records]
    monkeypatch.setattr(leakage, "PRECHECKS", False)
    full = [filtering.check_conversation(record, rules, opts) for record in records]
    assert fast == full
    assert sum(any(r["layer"] == "leakage" for r in reasons) for reasons in full) > 300  # leaks were found


def test_caches_never_change_a_result(records, rules) -> None:
    opts = FilterOptions(dedup=False, language="en")
    filtering.clear_caches()
    cold = [checks.evaluate_conversation(record, rules, opts) for record in records]
    warm = [checks.evaluate_conversation(record, rules, opts) for record in records]
    filtering.clear_caches()
    backwards = [checks.evaluate_conversation(record, rules, opts) for record in reversed(records)][::-1]
    one_by_one = []
    for record in records[::7]:  # the generation stage: one record at a time, caches in any state
        filtering.clear_caches()
        one_by_one.append(checks.evaluate_conversation(record, rules, opts))
    assert cold == warm == backwards
    assert one_by_one == cold[::7]


# --------------------------------------------------------------------------------------------
# Rules: hint masks
# --------------------------------------------------------------------------------------------


def test_hint_masks_select_the_rules_the_requires_literals_select(texts, rules) -> None:
    hints = rules._hints
    every = rules.all_rules
    sections = {"red_turn": rules._red_turn, "red_statement": rules._red_statement, "green": rules.green_flags,
                "weak": rules.weak_questions}
    for text in texts + [t.upper() for t in texts[:500]] + [t.replace(" ", "\n") for t in texts[:500]]:
        lowered = text.lower()
        present = rules.present(lowered)
        expected = sum(1 << i for i, rule in enumerate(every) if not rule.requires or not present.isdisjoint(rule.requires))
        assert hints.mask(lowered) == expected, text
        for name, section in sections.items():
            assert hints.pick(name, expected) == tuple(r for r in section if not r.requires or not present.isdisjoint(r.requires))
        format_present = rules.present(lowered, format_only=True)
        for role in ("user", "assistant", "system"):
            assert hints.pick("format:" + role, hints.mask(lowered, format_only=True)) == tuple(
                r for r in rules.format_flags
                if role in r.roles and (not r.requires or not format_present.isdisjoint(r.requires)))


# --------------------------------------------------------------------------------------------
# Math: window-by-window parsing, lone numbers, sentences, plain final results
# --------------------------------------------------------------------------------------------


def _whole_text_mentions(norm: str, words: bool, final_only: bool) -> list[fm.Mention]:
    """The parse of a whole text at once: tokenize everything, then every span in turn."""
    found: list[fm.Mention] = []
    if fm._QUICK_MATH.search(norm) or "sqrt" in norm:
        all_spans = fm.spans(fm._tokenize_runs(norm))
        if final_only:
            chosen: set[int] = set()
            for index in range(len(all_spans) - 1, -1, -1):
                got = fm._mentions_in_span(norm, all_spans[index], index * 1000)
                if any(not (m.kind == "expr" and len(m.variables) == 1 and m.py == m.variables[0]) for m in got):
                    chosen.add(index)
                    found = got
                    break
            for index, span in enumerate(all_spans):
                if index not in chosen and fm._assigns_variable(span):
                    found.extend(fm._mentions_in_span(norm, span, index * 1000))
            found.sort(key=lambda m: m.start)
        else:
            for index, span in enumerate(all_spans):
                found.extend(fm._mentions_in_span(norm, span, index * 1000))
    if words and not fm._NUMBER_WORDS.isdisjoint(fm._WORDS_RE.findall(norm.lower())):
        found.extend(fm.number_word_mentions(norm))
        found.sort(key=lambda m: m.start)
    return found


def test_window_parsing_gives_the_whole_text_parse(texts) -> None:
    filtering.clear_caches()
    for _ in range(2):  # cold, then from the window cache
        for text in texts + [t.replace(" ", "") for t in texts[:300]]:
            norm = fm.normalize(text)
            for words in (True, False):
                for final_only in (False, True):  # mentions() reads iter_mentions() unless final_only
                    assert fm.mentions(text, words=words, final_only=final_only)[1] == \
                        _whole_text_mentions(norm, words, final_only), text


def test_lone_number_windows_are_what_the_tokenizer_makes() -> None:
    rng = random.Random(3)
    taken = 0
    for _ in range(50_000):
        window = "".join(rng.choice(" -0123456789.,!()x=+") for _ in range(rng.randint(1, 9)))
        if fm._LONE_NUMBER_WINDOW.fullmatch(window):
            taken += 1
            assert fm._window_spans(window) == fm.spans(fm._tokenize_runs(window, [(0, len(window))])), window
    assert taken > 3000


def _sentences_by_scan(norm: str) -> list[tuple[int, int]]:
    """Sentence bounds by a character-by-character scan."""
    bounds, start, n, i = [], 0, len(norm), 0
    while i < n:
        ch = norm[i]
        if ch == "\n" or ch in "!?" or (ch == "." and not (0 < i < n - 1 and norm[i - 1].isdigit() and norm[i + 1].isdigit())):
            j = i + 1
            while j < n and norm[j] in ".!?":
                j += 1
            if ch == "\n" or j >= n or norm[j].isspace() or norm[j] in "\"')]":
                bounds.append((start, j))
                start = i = j
                continue
        i += 1
    if start < n:
        bounds.append((start, n))
    return [(s, e) for s, e in bounds if norm[s:e].strip()]


def _random_strings(alphabet: str, count: int, length: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, length))) for _ in range(count)]


def test_sentence_bounds_match_a_character_scan(texts) -> None:
    for text in texts + _random_strings("ab1 .!?\n\"')]x2", 20_000, 25, seed=1):
        norm = fm.normalize(text)
        assert list(leakage._sentences(norm)) == _sentences_by_scan(norm), repr(text)


def test_plain_final_search_starts_late_and_finds_the_same_match(texts) -> None:
    sentences = [s for text in texts for s in leakage._SENTENCE_SPLIT_RE.split(fm.normalize(text))]
    sentences += _random_strings("x= 12,.$€-%° kmabc\n!٣", 50_000, 14, seed=2)
    sentences += ["so x = " + " " * k + "1,200 square units." for k in range(0, 120, 7)]
    found = 0
    for sentence in sentences:
        fast = leakage._plain_end_match(sentence)
        full = leakage._PLAIN_END_RE.search(sentence, max(0, len(sentence) - 80))
        assert (fast and (fast.span(), fast.groupdict())) == (full and (full.span(), full.groupdict())), sentence
        found += full is not None
    assert found > 1000


# --------------------------------------------------------------------------------------------
# Dedup
# --------------------------------------------------------------------------------------------


def test_minhash_signatures_are_the_textbook_minima(texts) -> None:
    hasher = _MinHasher(64, 5, seed=3)
    sample = texts[:400] + ["", "abcd", "abcde"]
    signatures = hasher.signatures(sample, max_elements=64 * 500)  # several batches
    for text, signature in zip(sample, signatures):
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        if data.shape[0] < 5:
            assert signature is None
            continue
        shingles = np.unique(hasher._kgram_hashes(data)[: data.shape[0] - 4])
        with np.errstate(over="ignore"):
            expected = ((hasher.a[:, None] * shingles[None, :] + hasher.b[:, None]) >> np.uint64(32)).min(axis=1)
        assert signature.dtype == np.uint32 and (signature == expected.astype(np.uint32)).all(), text
