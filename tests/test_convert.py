import json
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


def test_unknown_pipeline_is_refused():
    with pytest.raises(convert.ConvertError, match="unknown conversion pipeline 'fast'"):
        convert.ConvertOptions(pipeline="fast")
