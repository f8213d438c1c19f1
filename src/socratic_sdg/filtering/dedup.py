"""The dedup layer: exact and near-duplicate student questions and conversations.

500 excellent examples are worth little if they are 50 examples ten times: the model memorises the
repeated ones and the split into train/validation leaks. This layer runs last, on records every
other layer accepted, in input order; the first occurrence wins and each later duplicate is
rejected naming the id it duplicates. (Only accepted records enter the index: a leaking first copy
must not get its clean twin rejected.)

* **Exact**: a 64-bit hash of the normalised text (case, spacing, punctuation and unicode forms
  folded) of the student's first message and of the whole conversation (system turns excluded).
* **Near**: MinHash signatures over character 5-grams of the same normalised text, indexed with
  LSH (bands of rows; candidates are verified by the estimated Jaccard similarity against a
  threshold). Numbers change the problem, so by default two texts are near-duplicates only if they
  contain the same numbers: "solve 3x - 5 = 10" and "solve 3x - 7 = 10" are two problems.

Everything is deterministic (fixed seeds, no Python ``hash()``), so a rerun makes the same
decisions. Signatures are computed with numpy for a whole block of records at once; memory is the
signatures of accepted records (num_perm * 4 bytes each, per index) plus the LSH buckets.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..options import option

DUPLICATE_CONVERSATION = "duplicate_conversation"
NEAR_DUPLICATE_CONVERSATION = "near_duplicate_conversation"
DUPLICATE_QUESTION = "duplicate_student_question"
NEAR_DUPLICATE_QUESTION = "near_duplicate_student_question"
DEDUP_CODES = frozenset({DUPLICATE_CONVERSATION, NEAR_DUPLICATE_CONVERSATION, DUPLICATE_QUESTION, NEAR_DUPLICATE_QUESTION})

_TOKEN_RE = re.compile(r"[^\W_]+|[+\-*/^=<>%]")
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class DedupOptions:
    questions: bool = option(True, "Deduplicate student questions.")
    conversations: bool = option(True, "Deduplicate whole conversations.")
    near: bool = option(True, "Near-duplicates (MinHash) as well as exact ones.", flag="--exact-dedup-only")
    question_threshold: float = option(0.8, "Near-duplicate similarity (0-1) above which a student question is a duplicate.")
    conversation_threshold: float = option(0.8, "Near-duplicate similarity (0-1) above which a conversation is a duplicate.")
    numbers_must_match: bool = option(
        True, "Near-duplicates must have the same numbers (the same exercise with other values is a new one).", flag="--dedup-ignore-numbers")
    # Not parameters: the MinHash/LSH shape.
    num_perm: int = 64
    bands: int = 16
    shingle_chars: int = 5
    seed: int = 20240607
    conversation_sample: int = 4  # keep 1 in N conversation shingles (by hash, so consistently across records)

    def __post_init__(self) -> None:
        if self.num_perm < 8 or self.bands < 1 or self.num_perm % self.bands:
            raise ValueError(f"dedup needs num_perm >= 8 divisible by bands, got num_perm={self.num_perm}, bands={self.bands}.")
        for name in ("question_threshold", "conversation_threshold"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"dedup {name} must be in (0, 1], got {value}.")
        if self.shingle_chars < 2:
            raise ValueError(f"dedup shingle_chars must be >= 2, got {self.shingle_chars}.")


_MATH_FOLD = str.maketrans({"\u2212": "-", "\u2013": "-", "\u00d7": "*", "\u00b7": "*", "\u22c5": "*", "\u00f7": "/"})


def normalize_text(text: str) -> str:
    """Lower-case word and operator tokens joined by single spaces: the text dedup compares."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_MATH_FOLD)
    return " ".join(_TOKEN_RE.findall(text.casefold()))


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _numbers_key(norm: str) -> int:
    return _hash64(" ".join(sorted(_NUMBER_RE.findall(norm))))


def question_text(messages: Sequence[Mapping[str, Any]]) -> str:
    return next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")


def conversation_text(messages: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(f"{m.get('role')}: {m.get('content') or ''}" for m in messages if m.get("role") != "system")


class _MinHasher:
    """MinHash over character k-grams, multiply-shift hash family, vectorised over many texts."""

    def __init__(self, num_perm: int, k: int, seed: int):
        rng = np.random.default_rng(seed)
        self.a = (rng.integers(1, 2**63 - 1, size=num_perm, dtype=np.int64).astype(np.uint64) << np.uint64(1)) | np.uint64(1)
        self.b = rng.integers(0, 2**63 - 1, size=num_perm, dtype=np.int64).astype(np.uint64)
        self.k = k
        self.num_perm = num_perm
        weights = rng.integers(1, 2**63 - 1, size=k, dtype=np.int64).astype(np.uint64) | np.uint64(1)
        self.weights = weights

    def _kgram_hashes(self, data: np.ndarray) -> np.ndarray:
        """64-bit hashes of every k-gram starting at each position of a uint8 array (the last k-1
        positions hash a partial window; callers drop them)."""
        n = data.shape[0]
        padded = np.concatenate([data, np.zeros(self.k, dtype=np.uint8)]).astype(np.uint64)
        acc = np.zeros(n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(self.k):
                acc ^= padded[j:j + n] * self.weights[j]
                acc = (acc << np.uint64(13)) | (acc >> np.uint64(51))
            acc *= np.uint64(0x9E3779B97F4A7C15)
            acc ^= acc >> np.uint64(29)
        return acc

    def signatures(self, texts: Sequence[str], sample: int = 1, max_elements: int = 1 << 21) -> list[np.ndarray | None]:
        """One uint32 signature per text (None for texts shorter than k characters), computed for
        all texts at once: k-gram hashes over the concatenated bytes, then per-text unique sets."""
        encoded = [text.encode("utf-8") for text in texts]
        lengths = np.array([len(b) for b in encoded], dtype=np.int64)
        out: list[np.ndarray | None] = [None] * len(texts)
        if not len(encoded) or lengths.sum() == 0:
            return out
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        hashes = self._kgram_hashes(data)
        starts = np.zeros(len(encoded), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        shingle_sets: list[np.ndarray] = []
        for index, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist())):
            count = length - self.k + 1
            if count <= 0:
                shingle_sets.append(np.empty(0, dtype=np.uint64))
                continue
            sh = hashes[start:start + count]
            if sample > 1 and count >= 32 * sample:
                kept = sh[(sh % np.uint64(sample)) == 0]
                sh = kept if kept.shape[0] >= 8 else sh
            shingle_sets.append(np.unique(sh))
        batch: list[int] = []
        size = 0
        limit = max(1, max_elements // self.num_perm)
        for index, sh in enumerate(shingle_sets):
            if sh.shape[0] == 0:
                continue
            if batch and size + sh.shape[0] > limit:
                self._fill(out, batch, shingle_sets)
                batch, size = [], 0
            batch.append(index)
            size += sh.shape[0]
        if batch:
            self._fill(out, batch, shingle_sets)
        return out

    def _fill(self, out: list, batch: list[int], shingle_sets: list[np.ndarray]) -> None:
        arrays = [shingle_sets[i] for i in batch]
        flat = np.concatenate(arrays)
        offsets = np.zeros(len(arrays), dtype=np.int64)
        np.cumsum([a.shape[0] for a in arrays[:-1]], out=offsets[1:])
        with np.errstate(over="ignore"):  # in place: one (num_perm, n) array instead of three
            hashed = np.multiply(self.a[:, None], flat[None, :])
            hashed += self.b[:, None]
            hashed >>= np.uint64(32)
        # The hashes fit 32 bits now: take the minima over half the bytes.
        mins = np.ascontiguousarray(np.minimum.reduceat(hashed.astype(np.uint32), offsets, axis=1).T)
        for row, index in enumerate(batch):
            out[index] = mins[row]


class _BandTable:
    """LSH buckets: band key -> slots of the accepted records with that key.

    A dict of Python ints costs ~100 bytes an entry and every accepted record adds ``bands`` of
    them; here entries live in sorted numpy arrays (12 bytes each) behind a small dict of the newest,
    merged in when it passes an eighth of the arrays (amortised O(n log n)). A lookup takes at most
    ``cap`` slots per key, the earliest accepted, as candidates.
    """

    def __init__(self, cap: int = 32):
        self.cap = cap
        self.keys = np.zeros(0, dtype=np.uint64)
        self.slots = np.zeros(0, dtype=np.int32)
        self.recent: dict[int, int | list[int]] = {}  # the newest entries, for lookups
        self.recent_keys: list[int] = []  # the same, for the next merge
        self.recent_slots: list[int] = []

    def lookup(self, keys: list[int]) -> set[int]:
        candidates: set[int] = set()
        if self.keys.size:
            wanted = np.array(keys, dtype=np.uint64)
            starts = np.searchsorted(self.keys, wanted)
            found = starts < self.keys.size
            found[found] = self.keys[starts[found]] == wanted[found]
            if found.any():  # most queries find nothing: one searchsorted decides it
                for start, key in zip(starts[found].tolist(), wanted[found]):
                    end = min(int(np.searchsorted(self.keys, key, side="right")), start + self.cap)
                    candidates.update(self.slots[start:end].tolist())
        if not self.recent.keys().isdisjoint(keys):
            for key in keys:
                hit = self.recent.get(key)
                if isinstance(hit, int):
                    candidates.add(hit)
                elif hit:
                    candidates.update(hit[: self.cap])
        return candidates

    def add(self, keys: list[int], slot: int) -> None:
        self.recent_keys.extend(keys)
        self.recent_slots.extend([slot] * len(keys))
        clashes = self.recent.keys() & keys
        if clashes:  # rare: keys shared with another recent record
            for key in clashes:
                hit = self.recent[key]
                self.recent[key] = [hit, slot] if isinstance(hit, int) else hit + [slot]
            keys = [key for key in keys if key not in clashes]
        self.recent.update(dict.fromkeys(keys, slot))
        if len(self.recent_keys) >= max(4096, self.keys.size // 8):
            self._merge()

    def _merge(self) -> None:
        all_keys = np.concatenate([self.keys, np.array(self.recent_keys, dtype=np.uint64)])
        all_slots = np.concatenate([self.slots, np.array(self.recent_slots, dtype=np.int32)])
        order = np.lexsort((all_slots, all_keys))  # by key, then slot: the earliest accepted first
        self.keys, self.slots = all_keys[order], all_slots[order]
        self.recent.clear()
        self.recent_keys.clear()
        self.recent_slots.clear()


class _NearIndex:
    """LSH over MinHash signatures; remembers accepted records' signatures to verify candidates."""

    def __init__(self, num_perm: int, bands: int, threshold: float, seed: int):
        self.bands = bands
        self.rows = num_perm // bands
        self.threshold = threshold
        rng = np.random.default_rng(seed + 1)
        self.mix = rng.integers(1, 2**63 - 1, size=self.rows, dtype=np.int64).astype(np.uint64) | np.uint64(1)
        self.band_salt = [(i * 0x9E3779B97F4A7C15) & _MASK64 for i in range(bands)]
        self.buckets = _BandTable()
        self.store = np.zeros((1024, num_perm), dtype=np.uint32)
        self.numbers: list[int] = []
        self.count = 0

    def band_keys(self, signature: np.ndarray) -> list[int]:
        return self.band_keys_many(signature[None, :])[0]

    def band_keys_many(self, signatures: np.ndarray, salts: np.ndarray | None = None) -> list[list[int]]:
        """LSH band keys for a (n, num_perm) array of signatures, one list of ``bands`` ints per row.
        ``salts`` (one uint64 per row, e.g. a hash of the numbers in the text) are mixed into every
        key, so that only rows with equal salts can ever collide."""
        with np.errstate(over="ignore"):
            combined = (signatures.reshape(signatures.shape[0], self.bands, self.rows).astype(np.uint64)
                        * self.mix).sum(axis=2, dtype=np.uint64)
            combined ^= np.array(self.band_salt, dtype=np.uint64)
            if salts is not None:
                combined ^= salts[:, None] * np.uint64(0xBF58476D1CE4E5B9)
        return combined.tolist()

    def query(self, signature: np.ndarray, keys: list[int], numbers: int | None) -> tuple[int, float] | None:
        candidates = self.buckets.lookup(keys)
        if not candidates:
            return None
        order = sorted(candidates)
        if numbers is not None:
            order = [c for c in order if self.numbers[c] == numbers]
            if not order:
                return None
        rows = self.store[order]
        similarity = (rows == signature).mean(axis=1)
        best = None
        for slot, sim in zip(order, similarity.tolist()):
            if sim >= self.threshold:
                best = (slot, sim)
                break  # the earliest accepted record wins
        return best

    def add(self, signature: np.ndarray, keys: list[int], numbers: int) -> int:
        slot = self.count
        if slot >= self.store.shape[0]:
            grown = np.zeros((self.store.shape[0] * 2, self.store.shape[1]), dtype=np.uint32)
            grown[:slot] = self.store
            self.store = grown
        self.store[slot] = signature
        self.numbers.append(numbers)
        self.count += 1
        self.buckets.add(keys, slot)
        return slot


@dataclass
class DedupCandidate:
    """One record offered to the deduplicator: its display name and messages."""

    name: str
    messages: Sequence[Mapping[str, Any]]


class Deduplicator:
    """Stateful across a run: call :meth:`check_block` with blocks of records in input order."""

    def __init__(self, options: DedupOptions | None = None):
        self.options = options or DedupOptions()
        opts = self.options
        self.hasher = _MinHasher(opts.num_perm, opts.shingle_chars, opts.seed)
        self.exact_questions: dict[int, str] = {}
        self.exact_conversations: dict[int, str] = {}
        self.near_questions = _NearIndex(opts.num_perm, opts.bands, opts.question_threshold, opts.seed)
        self.near_conversations = _NearIndex(opts.num_perm, opts.bands, opts.conversation_threshold, opts.seed + 7)
        self.question_names: list[str] = []
        self.conversation_names: list[str] = []
        self.counts = {code: 0 for code in sorted(DEDUP_CODES)}

    def check_block(self, items: Sequence[DedupCandidate]) -> list[tuple[dict[str, str] | None, dict[str, Any]]]:
        """For each item, in order: (drop reason or None, dedup quality). Kept items join the index."""
        opts = self.options
        questions = [normalize_text(question_text(item.messages)) for item in items] if opts.questions else []
        conversations = [normalize_text(conversation_text(item.messages)) for item in items] if opts.conversations else []
        q_sigs = self.hasher.signatures(questions) if (opts.questions and opts.near) else []
        c_sigs = self.hasher.signatures(conversations, sample=opts.conversation_sample) if (opts.conversations and opts.near) else []
        salted = opts.numbers_must_match
        q_numbers = [_numbers_key(q) for q in questions] if (q_sigs and salted) else None
        c_numbers = [_numbers_key(c) for c in conversations] if (c_sigs and salted) else None
        q_keys = _keys_for(self.near_questions, q_sigs, q_numbers)
        c_keys = _keys_for(self.near_conversations, c_sigs, c_numbers)
        results = []
        for index, item in enumerate(items):
            reason, quality, commit = self._check_one(
                item.name,
                questions[index] if opts.questions else None,
                conversations[index] if opts.conversations else None,
                q_sigs[index] if q_sigs else None,
                c_sigs[index] if c_sigs else None,
                q_keys[index] if q_keys else None,
                c_keys[index] if c_keys else None,
                q_numbers[index] if q_numbers else None,
                c_numbers[index] if c_numbers else None,
            )
            if reason is None:
                commit()
            else:
                self.counts[reason["code"]] += 1
            results.append((reason, quality))
        return results

    def _near(self, index, sig: np.ndarray, keys: list[int] | None, numbers: int | None, text: str):
        """Look ``sig`` up in a near-duplicate index: (its band keys, its numbers key, the hit or None);
        keys and numbers computed here when the block did not compute them ahead."""
        if keys is None:
            keys = index.band_keys(sig)
        if numbers is None:
            numbers = _numbers_key(text)
        return keys, numbers, index.query(sig, keys, numbers if self.options.numbers_must_match else None)

    def _check_one(self, name: str, question: str | None, conversation: str | None,
                   q_sig: np.ndarray | None, c_sig: np.ndarray | None,
                   q_keys: list[int] | None = None, c_keys: list[int] | None = None,
                   q_numbers: int | None = None, c_numbers: int | None = None):
        quality: dict[str, Any] = {}
        c_key = q_key = None
        if conversation is not None:
            c_key = _hash64(conversation)
            if c_key in self.exact_conversations:
                return _dup(DUPLICATE_CONVERSATION, self.exact_conversations[c_key], "the whole conversation", 1.0), quality, None
        if question is not None and question:
            q_key = _hash64(question)
            if q_key in self.exact_questions:
                return _dup(DUPLICATE_QUESTION, self.exact_questions[q_key], "the student's first message", 1.0), quality, None
        if c_sig is not None:
            c_keys, c_numbers, hit = self._near(self.near_conversations, c_sig, c_keys, c_numbers, conversation)
            if hit is not None:
                return _dup(NEAR_DUPLICATE_CONVERSATION, self.conversation_names[hit[0]], "the whole conversation", hit[1]), quality, None
        if q_sig is not None:
            q_keys, q_numbers, hit = self._near(self.near_questions, q_sig, q_keys, q_numbers, question)
            if hit is not None:
                return _dup(NEAR_DUPLICATE_QUESTION, self.question_names[hit[0]], "the student's first message", hit[1]), quality, None

        def commit() -> None:
            if c_key is not None:
                self.exact_conversations.setdefault(c_key, name)
            if q_key is not None:
                self.exact_questions.setdefault(q_key, name)
            if c_sig is not None:
                self.near_conversations.add(c_sig, c_keys, c_numbers)
                self.conversation_names.append(name)
            if q_sig is not None:
                self.near_questions.add(q_sig, q_keys, q_numbers)
                self.question_names.append(name)

        quality["unique"] = True
        return None, quality, commit

    def metrics(self) -> dict[str, Any]:
        return {
            "indexed_questions": len(self.exact_questions),
            "indexed_conversations": len(self.exact_conversations),
            "duplicates": dict(self.counts),
        }


def _keys_for(index: _NearIndex, signatures: list[np.ndarray | None], numbers: list[int] | None) -> list[list[int] | None]:
    present = [i for i, sig in enumerate(signatures) if sig is not None]
    keys: list[list[int] | None] = [None] * len(signatures)
    if present:
        salts = np.array([numbers[i] for i in present], dtype=np.uint64) if numbers is not None else None
        for slot, row in zip(present, index.band_keys_many(np.stack([signatures[i] for i in present]), salts)):
            keys[slot] = row
    return keys


def _dup(code: str, original: str, what: str, similarity: float) -> dict[str, str]:
    if code in (DUPLICATE_CONVERSATION, DUPLICATE_QUESTION):
        detail = f"{what} is identical (after normalising case, spacing and punctuation) to that of {original}, kept earlier"
    else:
        detail = (f"{what} is a near-duplicate of {original}'s (estimated Jaccard similarity {similarity:.2f} "
                  "on character 5-grams), kept earlier")
    return {"code": code, "layer": "dedup", "detail": detail, "duplicate_of": original}
