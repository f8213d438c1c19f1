import json

import pytest

from socratic_sdg import chunk, convert
from socratic_sdg.records import read_jsonl

REQUIRED = {"chunk_id", "doc_id", "source", "text", "headings", "pages", "num_tokens"}


def test_chunks_carry_provenance_and_respect_the_token_bounds(sample_chunks):
    chunks = list(read_jsonl(sample_chunks))
    assert len(chunks) >= 30
    options = chunk.ChunkOptions()
    for record in chunks:
        assert REQUIRED <= set(record)
        assert options.min_tokens <= record["num_tokens"] <= options.max_tokens
        assert record["num_tokens"] == chunk.count_tokens(record["text"])
        assert record["pages"] and all(isinstance(p, int) and p >= 1 for p in record["pages"])
    assert len({c["chunk_id"] for c in chunks}) == len(chunks)
    assert {c["source"] for c in chunks} == {"octave-refcard-a4.pdf", "rbt-formula-cheat-sheet.pdf", "rbt-multivar-calculus.pdf", "spalign-linear-systems.pdf"}
    metrics = json.loads(sample_chunks.with_name("chunk_metrics.json").read_text())
    assert metrics["chunks"] == len(chunks) and metrics["documents"] == 4
    assert metrics["tokens"] == sum(c["num_tokens"] for c in chunks)


def test_table_of_contents_is_dropped_with_a_reason(sample_chunks):
    dropped = list(read_jsonl(sample_chunks.with_name("chunks_dropped.jsonl")))
    toc = [d for d in dropped if d["drop_reason"] == "table_of_contents"]
    assert any("Lagrange multipliers . . ." in d["text"] for d in toc)
    kept_text = "\n".join(c["text"] for c in read_jsonl(sample_chunks))
    assert ". . . . . . . . . . ." not in kept_text


def test_pdf_leftovers_are_cleaned(sample_chunks):
    for record in read_jsonl(sample_chunks):
        assert "\r" not in record["text"]
        assert not any(0xE000 <= ord(c) <= 0xF8FF for c in record["text"]), "private-use glyphs left in the text"


def test_chunk_ids_are_content_derived_and_stable(converted_samples, sample_chunks, tmp_path):
    again = tmp_path / "chunks.jsonl"
    chunk.run(converted_samples, again)
    assert again.read_text() == sample_chunks.read_text()


PROBLEM_SET = "\n\n".join(
    f"Example {k}. Solve the equation {k}x + {k + 1} = {3 * k + 1} for x, and explain each step you take "
    f"so that a classmate could follow the reasoning without seeing your notes.\n\n"
    f"Solution. Subtract {k + 1} from both sides to get {k}x = {2 * k}, then divide both sides by {k}. "
    f"Checking the result by substituting it back into the original equation is always a good habit."
    for k in range(1, 13)
)


@pytest.fixture(scope="module")
def problem_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("problems")
    (folder / "in").mkdir()
    (folder / "in" / "linear-equations.md").write_text("# Linear equations\n\n" + PROBLEM_SET + "\n")
    convert.run(folder / "in", folder / "converted")
    return folder / "converted"


def test_a_problem_stays_with_its_solution(problem_set, tmp_path):
    result = chunk.run(problem_set, tmp_path / "chunks.jsonl", chunk.ChunkOptions(max_tokens=200, min_tokens=20))
    chunks = list(read_jsonl(tmp_path / "chunks.jsonl"))
    assert result.chunks == len(chunks) > 3  # the problem set had to be cut
    for k in range(1, 13):
        holding = [c for c in chunks if f"Example {k}." in c["text"]]
        assert len(holding) == 1, f"Example {k} is in {len(holding)} chunks"
        assert f"Subtract {k + 1} from both sides" in holding[0]["text"], f"Example {k} was cut from its solution"
        assert holding[0]["headings"] == ["Linear equations"]


def test_hybrid_and_hierarchical_methods(problem_set, tmp_path):
    hybrid = chunk.run(problem_set, tmp_path / "hybrid.jsonl", chunk.ChunkOptions(method="hybrid", max_tokens=200, min_tokens=20))
    assert hybrid.chunks >= 3
    assert all(c["num_tokens"] <= 200 for c in read_jsonl(tmp_path / "hybrid.jsonl"))
    pieces = chunk.run(problem_set, tmp_path / "pieces.jsonl", chunk.ChunkOptions(method="hierarchical", max_tokens=200, min_tokens=20))
    assert pieces.chunks == 24  # one per paragraph: 12 examples + 12 solutions


def test_small_sections_merge_into_their_neighbours(tmp_path):
    sections = "\n\n".join(f"## Topic {k}\n\nA short note about topic {k} and why it matters." for k in range(6))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.md").write_text("# Notes\n\n" + sections + "\n")
    convert.run(tmp_path / "in", tmp_path / "converted")
    merged = chunk.run(tmp_path / "converted", tmp_path / "merged.jsonl", chunk.ChunkOptions(min_tokens=40, max_tokens=400))
    separate = chunk.run(tmp_path / "converted", tmp_path / "separate.jsonl", chunk.ChunkOptions(min_tokens=5, max_tokens=400, merge_small_sections=False))
    assert merged.chunks < separate.chunks
    assert all(c["num_tokens"] >= 40 for c in read_jsonl(tmp_path / "merged.jsonl"))
    first = next(read_jsonl(tmp_path / "merged.jsonl"))
    assert first["headings"] == ["Notes", "Topic 0"] and "## Topic 1\nA short note about topic 1" in first["text"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("1 Vectors . . . . . . . . 2\n2 Partial derivatives . . . . . . . . 3\n3 Integrals . . . . . . . . . 7", "table_of_contents"),
        ("2.3 Lagrange multipliers . . . . . . . . . . . . . 5", "table_of_contents"),
        ("Chapter 2. Partial derivatives\n4", "table_of_contents"),
        ("References\n[1] J. Stewart, Calculus (2015).\n[2] G. Strang, Linear Algebra (2016).\n[3] T. Apostol, Calculus, 1967.", "references"),
        ("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 = + - 3.14 2.71", "mostly_numbers_or_symbols"),
        ("The gradient of f points in the direction of steepest ascent.", None),
        ("Example 2. Find the area under y = x^2 between 0 and 3.", None),
    ],
)
def test_noise_reason(text, reason):
    assert chunk.noise_reason(text) == reason


def test_bad_options_and_missing_input_name_the_fix(tmp_path):
    with pytest.raises(chunk.ChunkError, match="run the convert stage first"):
        chunk.run(tmp_path, tmp_path / "chunks.jsonl")
    with pytest.raises(chunk.ChunkError, match="unknown chunking method 'semantic'"):
        chunk.ChunkOptions(method="semantic")
    with pytest.raises(chunk.ChunkError, match="min_tokens < max_tokens"):
        chunk.ChunkOptions(min_tokens=600)
    with pytest.raises(chunk.ChunkError, match="not available offline"):
        chunk.encoding("no-such-encoding")


def test_an_unreadable_converted_document_is_named(problem_set, tmp_path):
    import shutil

    converted = tmp_path / "converted"
    shutil.copytree(problem_set, converted)
    (converted / "linear-equations.json").write_text('{"documents": 1, "failed": 0}')
    (tmp_path / "chunks.jsonl").write_text("earlier chunks\n")
    with pytest.raises(
        chunk.ChunkError, match=rf"{converted / 'linear-equations.json'} \(converted from linear-equations.md\) cannot be read.*convert"
    ) as caught:
        chunk.run(converted, tmp_path / "chunks.jsonl")
    assert "\n" not in str(caught.value)
    assert (tmp_path / "chunks.jsonl").read_text() == "earlier chunks\n"  # nothing already produced is lost
    (converted / "linear-equations.json").unlink()
    with pytest.raises(chunk.ChunkError, match=rf"{converted / 'linear-equations.json'} \(converted from linear-equations.md\) cannot be read"):
        chunk.run(converted, tmp_path / "chunks.jsonl")


def test_chunk_on_the_pdf_folder_suggests_converting_it_elsewhere(tmp_path, samples_dir):
    with pytest.raises(chunk.ChunkError) as caught:
        chunk.run(samples_dir, tmp_path / "chunks.jsonl")
    message = str(caught.value)
    assert f"--input {samples_dir}" in message and f"--output-dir {samples_dir}" not in message
    assert "socratic-sdg convert" in message and "\n" not in message
    with pytest.raises(chunk.ChunkError) as caught:
        chunk.run(tmp_path / "nowhere", tmp_path / "chunks.jsonl")
    assert str(tmp_path / "nowhere") in str(caught.value) and "run the convert stage first" in str(caught.value)
