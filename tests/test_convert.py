import json
import os
import shutil

import pytest
from bad_files import write_bad_corpus

from socratic_sdg import convert
from socratic_sdg.records import read_jsonl


def test_sample_pdfs_convert_to_markdown_and_docling_json(converted_samples, samples_dir):
    documents = list(read_jsonl(converted_samples / "documents.jsonl"))
    assert sorted(d["source"] for d in documents) == sorted(p.name for p in samples_dir.glob("*.pdf"))
    for doc in documents:
        markdown = (converted_samples / doc["markdown"]).read_text()
        assert len(markdown) > 1000, doc["source"]
        assert "&amp;" not in markdown  # escape_html=False keeps & and > readable
        assert json.loads((converted_samples / doc["docling_json"]).read_text())["name"]
        assert doc["pages"] > 0
    assert list(read_jsonl(converted_samples / "failures.jsonl")) == []
    metrics = json.loads((converted_samples / "convert_metrics.json").read_text())
    assert metrics["documents"] == 4 and metrics["failed"] == 0 and metrics["pages"] == sum(d["pages"] for d in documents)


def test_multivariable_calculus_text_is_read(converted_samples):
    markdown = (converted_samples / "rbt-multivar-calculus.md").read_text()
    assert "Lagrange multipliers" in markdown and "Partial derivatives" in markdown


def test_every_bad_file_is_recorded_and_good_files_still_convert(tmp_path, samples_dir):
    inputs = tmp_path / "in"
    bad = write_bad_corpus(inputs / "broken")
    shutil.copy(samples_dir / "rbt-formula-cheat-sheet.pdf", inputs)
    out = tmp_path / "out"

    result = convert.run(inputs, out)

    assert [d["source"] for d in result.documents] == ["rbt-formula-cheat-sheet.pdf"]
    failures = {f["file"]: f for f in read_jsonl(out / "failures.jsonl")}
    assert set(failures) == {f"broken/{name}" for name in bad}
    for failure in failures.values():
        assert failure["error"] and failure["reason"], failure
        assert "\n" not in failure["reason"]
    errors = {name.split("/")[1]: f["error"] for name, f in failures.items()}
    assert errors == {
        "zero-bytes.pdf": "EmptyFile",
        "corrupt-bytes.pdf": "CorruptPdf",
        "truncated.pdf": "CorruptPdf",
        "text-named-pdf.pdf": "NotAPdf",
        "encrypted.pdf": "EncryptedPdf",
        "a-folder.pdf": "NotAFile",
    }
    assert "password" in failures["broken/encrypted.pdf"]["reason"]


def test_no_convertible_file_fails_the_stage_with_one_clear_message(tmp_path):
    write_bad_corpus(tmp_path / "in")
    with pytest.raises(convert.ConvertError, match="none of the 6 files .* could be converted; see .*failures.jsonl"):
        convert.run(tmp_path / "in", tmp_path / "out")
    # what was learnt about each file is kept
    assert len(list(read_jsonl(tmp_path / "out" / "failures.jsonl"))) == 6


def test_failure_threshold(tmp_path, samples_dir):
    write_bad_corpus(tmp_path / "in")
    shutil.copy(samples_dir / "rbt-formula-cheat-sheet.pdf", tmp_path / "in")
    with pytest.raises(convert.ConvertError, match="6 of 7 files failed"):
        convert.run(tmp_path / "in", tmp_path / "out", convert.ConvertOptions(max_failure_ratio=0.5))


def test_missing_or_empty_input_folder(tmp_path):
    with pytest.raises(convert.ConvertError, match="does not exist"):
        convert.run(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(convert.ConvertError, match="no documents found"):
        convert.run(tmp_path / "empty", tmp_path / "out")


def test_standard_pipeline_without_models_names_the_folder_and_the_fix(tmp_path, samples_dir, monkeypatch):
    monkeypatch.delenv("DOCLING_ARTIFACTS_PATH", raising=False)
    empty_models = tmp_path / "models"
    empty_models.mkdir()
    options = convert.ConvertOptions(pipeline="standard", artifacts_path=str(empty_models))
    with pytest.raises(convert.ConvertError, match=f"{empty_models}.*docling-tools models download"):
        convert.run(samples_dir, tmp_path / "out", options)


def test_standard_pipeline_is_wired_up_to_model_loading(tmp_path, samples_dir):
    """Everything up to loading the layout model runs; without the weights (not downloadable here)
    the stage fails once, naming the missing model, the folder and the command that fetches it."""
    models = tmp_path / "models"
    (models / "unrelated").mkdir(parents=True)
    options = convert.ConvertOptions(pipeline="standard", artifacts_path=str(models))
    with pytest.raises(convert.ConvertError, match=rf"docling-layout-heron.*{models}.*docling-tools models download"):
        convert.run(samples_dir, tmp_path / "out", options)


@pytest.mark.skipif(not os.environ.get("DOCLING_ARTIFACTS_PATH"), reason="needs docling's model weights (DOCLING_ARTIFACTS_PATH), which cannot be downloaded here")
def test_standard_pipeline_with_models(tmp_path, samples_dir):
    result = convert.run(samples_dir, tmp_path / "out", convert.ConvertOptions(pipeline="standard"))
    assert len(result.documents) == 4
    assert "Lagrange" in (tmp_path / "out" / "rbt-multivar-calculus.md").read_text()


def test_vlm_remote_pipeline_sends_pages_to_an_openai_compatible_endpoint(tmp_path, samples_dir, monkeypatch):
    from fake_openai import STUDENT, FakeOpenAI

    shutil.copy(samples_dir / "rbt-formula-cheat-sheet.pdf", tmp_path)  # 2 pages
    with FakeOpenAI(models=["granite-vision"]) as server:
        monkeypatch.setenv("LLM_API_BASE", server.api_base)
        options = convert.ConvertOptions(pipeline="vlm-remote", vlm_model="granite-vision", workers=1)
        result = convert.run(tmp_path, tmp_path / "out", options)
        assert server.requests == 2  # one request per page
    assert result.documents[0]["pipeline"] == "vlm-remote"
    assert (tmp_path / "out" / "rbt-formula-cheat-sheet.md").read_text().count(STUDENT) == 2


def test_vlm_remote_without_an_endpoint_says_what_to_set(tmp_path, samples_dir, monkeypatch):
    monkeypatch.delenv("LLM_API_BASE", raising=False)
    with pytest.raises(convert.ConvertError, match="set LLM_API_BASE and VLM_MODEL"):
        convert.run(samples_dir, tmp_path / "out", convert.ConvertOptions(pipeline="vlm-remote"))


def test_unknown_pipeline_is_refused():
    with pytest.raises(convert.ConvertError, match="unknown conversion pipeline 'fast'"):
        convert.ConvertOptions(pipeline="fast")


def test_a_file_past_the_timeout_fails_alone(tmp_path, samples_dir):
    from convert_helpers import long_pdf

    inputs = tmp_path / "in"
    inputs.mkdir()
    long_pdf(str(samples_dir / "spalign-linear-systems.pdf"), str(inputs / "huge.pdf"), copies=15)  # 300 pages
    (inputs / "notes.md").write_text("# Gradients\n\nThe gradient points uphill. What do you notice about its length?\n")
    result = convert.run(inputs, tmp_path / "out", convert.ConvertOptions(timeout_seconds=2, workers=2))
    assert [d["source"] for d in result.documents] == ["notes.md"]
    assert [(f["file"], f["error"]) for f in result.failures] == [("huge.pdf", "Timeout")]
    assert "longer than 2s" in result.failures[0]["reason"]


def test_a_crashing_worker_fails_only_its_file(tmp_path, samples_dir, monkeypatch):
    import convert_helpers

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.pdf", "crash-me.pdf", "z.pdf"):
        shutil.copy(samples_dir / "rbt-formula-cheat-sheet.pdf", inputs / name)
    monkeypatch.setattr(convert, "_worker_main", convert_helpers.crash_on_crash_me)
    result = convert.run(inputs, tmp_path / "out", convert.ConvertOptions(workers=1))
    assert [d["source"] for d in result.documents] == ["a.pdf", "z.pdf"]
    assert [(f["file"], f["error"]) for f in result.failures] == [("crash-me.pdf", "WorkerCrashed")]


def test_unchanged_files_are_not_converted_again(tmp_path, samples_dir):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("rbt-formula-cheat-sheet.pdf", "octave-refcard-a4.pdf"):
        shutil.copy(samples_dir / name, inputs)
    out = tmp_path / "out"
    first = convert.run(inputs, out)
    assert first.reused == 0
    markdown = (out / "octave-refcard-a4.md").read_text()

    second = convert.run(inputs, out)
    assert second.reused == 2 and second.metrics()["documents"] == 2
    assert (out / "octave-refcard-a4.md").read_text() == markdown

    # a changed file is converted again; other options invalidate the cache entry too
    shutil.copy(samples_dir / "rbt-multivar-calculus.pdf", inputs / "octave-refcard-a4.pdf")
    third = convert.run(inputs, out)
    assert third.reused == 1 and "Multivariable Calculus" in (out / "octave-refcard-a4.md").read_text()
    fourth = convert.run(inputs, out, convert.ConvertOptions(max_pages=50))
    assert fourth.reused == 0


def test_max_pages(tmp_path, samples_dir):
    shutil.copy(samples_dir / "rbt-formula-cheat-sheet.pdf", tmp_path)  # 2 pages
    shutil.copy(samples_dir / "rbt-multivar-calculus.pdf", tmp_path)  # 14 pages
    result = convert.run(tmp_path, tmp_path / "out", convert.ConvertOptions(max_pages=5))
    assert [d["source"] for d in result.documents] == ["rbt-formula-cheat-sheet.pdf"]
    assert result.failures[0]["error"] == "TooManyPages" and "14 pages" in result.failures[0]["reason"]


def test_markdown_and_html_inputs_convert_too(tmp_path):
    inputs = tmp_path / "in"
    (inputs / "web").mkdir(parents=True)
    (inputs / "lesson.md").write_text("# Fractions\n\nTo add 1/2 and 1/3, find a common denominator.\n")
    (inputs / "web" / "lesson.html").write_text("<html><body><h1>Limits</h1><p>What happens to 1/x as x grows?</p></body></html>")
    result = convert.run(inputs, tmp_path / "out")
    assert sorted(d["source"] for d in result.documents) == ["lesson.md", "web/lesson.html"]
    assert "common denominator" in (tmp_path / "out" / "lesson.md").read_text()
    assert "1/x as x grows" in (tmp_path / "out" / "web__lesson.md").read_text()


def test_output_names_never_collide(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("x.pdf", "x.md", "a__b.pdf", "a/b.pdf"):
        (tmp_path / name).write_text("x")
    names = convert.output_names(sorted(p for p in tmp_path.rglob("*") if p.is_file()), tmp_path)
    assert len(set(names.values())) == 4


def test_shards_cover_every_file_once_and_merge_like_one_run(tmp_path, samples_dir, converted_samples):
    shard_dirs = []
    for index in range(3):
        shard = tmp_path / f"shard-{index}"
        convert.run(samples_dir, shard, shard_index=index, num_shards=3)
        shard_dirs.append(shard)
    merged = convert.merge(shard_dirs, tmp_path / "merged")
    assert merged.documents == list(read_jsonl(converted_samples / "documents.jsonl"))
    for document in merged.documents:
        assert (tmp_path / "merged" / document["markdown"]).read_text() == (converted_samples / document["markdown"]).read_text()
    # more shards than files: the extra shards are empty, not errors
    empty = convert.run(samples_dir, tmp_path / "shard-9", shard_index=9, num_shards=10)
    assert empty.documents == [] and empty.failures == []
