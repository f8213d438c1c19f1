import json

import pytest

from socratic_sdg import chunk
from socratic_sdg.records import read_jsonl

REQUIRED = {"chunk_id", "doc_id", "source", "text", "headings", "pages", "num_tokens"}


def test_chunks_carry_provenance_and_respect_the_size_bounds(sample_chunks):
    chunks = list(read_jsonl(sample_chunks))
    assert len(chunks) >= 20
    options = chunk.ChunkOptions()
    for record in chunks:
        assert REQUIRED <= set(record)
        assert options.min_chars <= len(record["text"]) <= options.max_chars
        assert record["pages"] and all(isinstance(p, int) and p >= 1 for p in record["pages"])
        assert record["num_tokens"] == chunk.estimate_tokens(record["text"])
    assert len({c["chunk_id"] for c in chunks}) == len(chunks)
    assert {c["source"] for c in chunks} == {"octave-refcard-a4.pdf", "rbt-formula-cheat-sheet.pdf", "rbt-multivar-calculus.pdf", "spalign-linear-systems.pdf"}
    metrics = json.loads(sample_chunks.with_name("chunk_metrics.json").read_text())
    assert metrics["chunks"] == len(chunks) and metrics["documents"] == 4


def test_table_of_contents_is_dropped_with_a_reason(sample_chunks):
    dropped = list(read_jsonl(sample_chunks.with_name("chunks_dropped.jsonl")))
    toc = [d for d in dropped if d["drop_reason"] == "table_of_contents"]
    assert toc and "Contents" in toc[0]["text"]
    kept_text = "\n".join(c["text"] for c in read_jsonl(sample_chunks))
    assert ". . . . . . . . . . ." not in kept_text


def test_chunk_ids_are_content_derived_and_stable(converted_samples, sample_chunks, tmp_path):
    again = tmp_path / "chunks.jsonl"
    chunk.run(converted_samples, again)
    assert again.read_text() == sample_chunks.read_text()


def test_smaller_target_gives_more_smaller_chunks(converted_samples, sample_chunks, tmp_path):
    small = tmp_path / "chunks.jsonl"
    chunk.run(converted_samples, small, chunk.ChunkOptions(target_chars=600, max_chars=800, min_chars=100))
    small_chunks = list(read_jsonl(small))
    assert len(small_chunks) > len(list(read_jsonl(sample_chunks)))
    assert max(len(c["text"]) for c in small_chunks) <= 800


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("1 Vectors . . . . . . . . 2\n2 Partial derivatives . . . . . . . . 3\n3 Integrals . . . . . . . . . 7", "table_of_contents"),
        ("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 = + - 3.14 2.71", "mostly_numbers_or_symbols"),
        ("The gradient of f points in the direction of steepest ascent.", None),
    ],
)
def test_noise_reason(text, reason):
    assert chunk.noise_reason(text) == reason


def test_missing_convert_output_names_the_fix(tmp_path):
    with pytest.raises(chunk.ChunkError, match="run the convert stage first"):
        chunk.run(tmp_path, tmp_path / "chunks.jsonl")
