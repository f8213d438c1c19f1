import json
import os
import shutil

import pytest
from socratic_sdg.testing.bad_files import write_bad_corpus

from socratic_sdg.convert import stage as convert
from socratic_sdg.options import Shard
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


@pytest.mark.skipif(
    not os.environ.get("DOCLING_ARTIFACTS_PATH"), reason="needs docling's model weights (DOCLING_ARTIFACTS_PATH), which cannot be downloaded here"
)
def test_standard_pipeline_with_models(tmp_path, samples_dir):
    result = convert.run(samples_dir, tmp_path / "out", convert.ConvertOptions(pipeline="standard"))
    assert len(result.documents) == 4
    assert "Lagrange" in (tmp_path / "out" / "rbt-multivar-calculus.md").read_text()


def test_vlm_remote_pipeline_sends_pages_to_an_openai_compatible_endpoint(tmp_path, samples_dir, monkeypatch):
    from socratic_sdg.testing.fake_openai import STUDENT, FakeOpenAI

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
    from socratic_sdg.testing.convert_helpers import long_pdf

    inputs = tmp_path / "in"
    inputs.mkdir()
    long_pdf(str(samples_dir / "spalign-linear-systems.pdf"), str(inputs / "huge.pdf"), copies=15)  # 300 pages
    (inputs / "notes.md").write_text("# Gradients\n\nThe gradient points uphill. What do you notice about its length?\n")
    result = convert.run(inputs, tmp_path / "out", convert.ConvertOptions(timeout_seconds=2, workers=2))
    assert [d["source"] for d in result.documents] == ["notes.md"]
    assert [(f["file"], f["error"]) for f in result.failures] == [("huge.pdf", "Timeout")]
    assert "longer than 2s" in result.failures[0]["reason"]


def test_a_crashing_worker_fails_only_its_file(tmp_path, samples_dir, monkeypatch):
    from socratic_sdg.testing import convert_helpers

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
        convert.run(samples_dir, shard, convert.ConvertOptions(shard=Shard(index, 3)))
        shard_dirs.append(shard)
    merged = convert.merge(shard_dirs, tmp_path / "merged")
    assert merged.documents == list(read_jsonl(converted_samples / "documents.jsonl"))
    for document in merged.documents:
        assert (tmp_path / "merged" / document["markdown"]).read_text() == (converted_samples / document["markdown"]).read_text()
    # more shards than files: the extra shards are empty, not errors
    empty = convert.run(samples_dir, tmp_path / "shard-9", convert.ConvertOptions(shard=Shard(9, 10)))
    assert empty.documents == [] and empty.failures == []


# --- issue 13: output names, options, output folder, remote endpoint ---------------------------


def test_an_input_named_like_a_stage_file_does_not_overwrite_it(tmp_path):
    from socratic_sdg import chunk

    inputs = tmp_path / "in"
    inputs.mkdir()
    text = "# Ratios\n\nA ratio compares two quantities. If there are 3 red and 5 blue marbles, what is the ratio of red to all marbles?\n"
    for name in ("convert_metrics.md", "Chunk_Metrics.md", "notes.md"):
        (inputs / name).write_text(text.replace("Ratios", name))
    out = tmp_path / "out"
    result = convert.run(inputs, out)

    names = {d["source"]: d["docling_json"] for d in result.documents}
    assert names["notes.md"] == "notes.json"
    assert names["convert_metrics.md"].startswith("convert_metrics-") and names["Chunk_Metrics.md"].startswith("Chunk_Metrics-")
    assert json.loads((out / "convert_metrics.json").read_text())["documents"] == 3
    chunked = chunk.run(out, out / "chunks.jsonl", chunk.ChunkOptions(min_tokens=5))
    assert chunked.documents == 3 and json.loads((out / "chunk_metrics.json").read_text())["documents"] == 3
    assert json.loads((out / names["Chunk_Metrics.md"]).read_text())["name"]  # chunk's metrics went beside, not over it


def test_output_names_do_not_depend_on_the_order_or_the_shard(tmp_path):
    inputs = tmp_path / "in"
    (inputs / "a").mkdir(parents=True)
    (inputs / "a" / "b.md").write_text("# From the folder\n\nWhat is 2 + 3?\n")
    (inputs / "a__b.md").write_text("# From the flat file\n\nWhat is 4 + 5?\n")
    paths = sorted(p for p in inputs.rglob("*.md"))
    assert convert.output_names(paths, inputs) == convert.output_names(list(reversed(paths)), inputs)

    shards = [tmp_path / "shard-0", tmp_path / "shard-1"]
    for index, shard in enumerate(shards):  # one file per shard: each shard alone sees no collision
        convert.run(inputs, shard, convert.ConvertOptions(shard=Shard(index, 2)))
    merged = convert.merge(shards, tmp_path / "merged")
    whole = convert.run(inputs, tmp_path / "whole")
    assert merged.documents == whole.documents
    by_source = {d["source"]: d for d in merged.documents}
    assert len({d["markdown"] for d in merged.documents}) == 2
    assert "folder" in (tmp_path / "merged" / by_source["a/b.md"]["markdown"]).read_text()
    assert "flat file" in (tmp_path / "merged" / by_source["a__b.md"]["markdown"]).read_text()


def test_merge_refuses_shards_whose_names_collide(tmp_path):
    shards = []
    for index, text in enumerate(("# One\n\nWhat is 1 + 1?\n", "# Two\n\nWhat is 2 + 2?\n")):
        (tmp_path / f"in-{index}").mkdir()
        (tmp_path / f"in-{index}" / "lesson.md").write_text(text)
        convert.run(tmp_path / f"in-{index}", tmp_path / f"shard-{index}")
        shards.append(tmp_path / f"shard-{index}")
    with pytest.raises(convert.ConvertError, match="lesson.md.*both"):
        convert.merge(shards, tmp_path / "merged")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("workers", -1, r"workers must be 0 \(one per core\) or more, got -1"),
        ("timeout_seconds", -1, r"timeout must be 0 \(no limit\) or more seconds, got -1"),
        ("timeout_seconds", float("nan"), r"timeout must be"),
        ("max_pages", -2, r"max_pages must be 0 \(no limit\) or more, got -2"),
    ],
)
def test_negative_options_are_refused_in_one_sentence(option, value, message):
    with pytest.raises(convert.ConvertError, match=message) as caught:
        convert.ConvertOptions(**{option: value})
    assert "\n" not in str(caught.value)


def test_cli_negative_workers_exits_at_once(tmp_path, capsys):
    from socratic_sdg import cli

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "lesson.md").write_text("# One\n\nWhat is 1 + 1?\n")
    for flag in ("--workers", "--timeout"):
        assert cli.main(["convert", "--input", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), flag, "-1"]) == 2
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0 and "-1" in error
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_is_a_file_is_named(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "lesson.md").write_text("# One\n\nWhat is 1 + 1?\n")
    (tmp_path / "taken").write_text("keep me")
    with pytest.raises(convert.ConvertError, match=f"output folder {tmp_path / 'taken'} is a file.*--output-dir"):
        convert.run(tmp_path / "in", tmp_path / "taken")
    with pytest.raises(convert.ConvertError, match=f"output folder {tmp_path / 'taken'} is a file"):
        convert.merge([], tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "keep me"


def test_output_inside_the_input_folder(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "lesson.md").write_text("# One\n\nWhat is 1 + 1?\n")
    with pytest.raises(convert.ConvertError, match=f"output folder {inputs} is the input folder.*--output-dir"):
        convert.run(inputs, inputs)
    # a folder below the input is not read back as input on the next run
    convert.run(inputs, inputs / "converted")
    again = convert.run(inputs, inputs / "converted")
    assert [d["source"] for d in again.documents] == ["lesson.md"]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_vlm_remote_with_an_unreachable_endpoint_fails_fast(tmp_path, samples_dir, monkeypatch):
    import time

    shutil.copy(samples_dir / "rbt-formula-cheat-sheet.pdf", tmp_path)
    api_base = f"http://127.0.0.1:{_free_port()}/v1"
    monkeypatch.setenv("LLM_API_BASE", api_base)
    options = convert.ConvertOptions(pipeline="vlm-remote", vlm_model="granite-vision", workers=1)
    started = time.monotonic()
    with pytest.raises(convert.ConvertError, match=rf"{api_base} cannot be reached.*LLM_API_BASE") as caught:
        convert.run(tmp_path, tmp_path / "out", options)
    assert time.monotonic() - started < 5
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out" / "failures.jsonl").exists()  # no file blamed for the endpoint


def test_vlm_remote_with_an_endpoint_that_does_not_answer_fails_after_the_check_timeout(tmp_path, samples_dir, monkeypatch):
    import socket
    import time

    shutil.copy(samples_dir / "rbt-formula-cheat-sheet.pdf", tmp_path)
    monkeypatch.setattr(convert, "ENDPOINT_CHECK_SECONDS", 0.5)
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        api_base = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        options = convert.ConvertOptions(pipeline="vlm-remote", vlm_api_base=api_base, vlm_model="granite-vision", workers=1)
        started = time.monotonic()
        with pytest.raises(convert.ConvertError, match=rf"{api_base} did not answer within 0.5s"):
            convert.run(tmp_path, tmp_path / "out", options)
        assert time.monotonic() - started < 5


def test_vlm_remote_names_the_models_the_endpoint_serves(tmp_path, samples_dir, monkeypatch):
    from socratic_sdg.testing.fake_openai import FakeOpenAI

    shutil.copy(samples_dir / "rbt-formula-cheat-sheet.pdf", tmp_path)
    with FakeOpenAI(models=["granite-vision"]) as server:
        options = convert.ConvertOptions(pipeline="vlm-remote", vlm_api_base=server.api_base, vlm_model="llava", workers=1)
        with pytest.raises(convert.ConvertError, match="does not serve a model named 'llava' .*granite-vision.*VLM_MODEL"):
            convert.run(tmp_path, tmp_path / "out", options)
        assert server.requests == 0


def test_vlm_remote_blames_the_model_not_the_scan_when_no_text_comes_back(tmp_path):
    from types import SimpleNamespace

    (tmp_path / "page.pdf").write_bytes(b"%PDF-1.4 stand-in")
    empty = SimpleNamespace(document=SimpleNamespace(export_to_markdown=lambda **_: " "))
    converter = SimpleNamespace(convert=lambda *a, **k: empty)
    with pytest.raises(convert.UnreadableDocument, match="vision model returned no text") as caught:
        convert.convert_one(converter, tmp_path / "page.pdf", convert.ConvertOptions(pipeline="vlm-remote"))
    assert caught.value.kind == "NoText" and "standard pipeline" not in str(caught.value)
