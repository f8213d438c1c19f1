"""The whole pipeline under the KFP local runner: against the fake server (deterministic) and
against a real model server (llama.cpp + SmolLM2, what `make run` uses)."""

import shutil

import pytest
from socratic_sdg.testing.fake_openai import TUTOR

from socratic_sdg.deploy.local_run import LocalRunOptions, run_locally
from socratic_sdg.records import read_jsonl


# The fake server answers every chunk with the same conversation: dedup would rightly keep only one.
FAKE_SERVER_PARAMETERS = {"filter_dedup": False}


def _one_pdf(tmp_path, samples_dir, name="rbt-formula-cheat-sheet.pdf"):
    pdfs = tmp_path / "pdfs"
    pdfs.mkdir()
    shutil.copy(samples_dir / name, pdfs)
    return pdfs


def _dataset_records(dataset_dir) -> list[dict]:
    records = list(read_jsonl(dataset_dir / "train.jsonl")) + list(read_jsonl(dataset_dir / "validation.jsonl"))
    for record in records:
        assert set(record) == {"id", "messages", "metadata"}
        roles = [m["role"] for m in record["messages"]]
        assert roles and roles[0] == "user" and roles[-1] == "assistant"
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in record["messages"])
        assert record["metadata"]["chunk_id"]
    return records


def test_pipeline_runs_end_to_end_under_the_kfp_local_runner(tmp_path, samples_dir, fake_llm, monkeypatch):
    monkeypatch.setenv("LLM_API_BASE", fake_llm.api_base)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    pdfs = _one_pdf(tmp_path, samples_dir, "rbt-multivar-calculus.pdf")
    published = tmp_path / "published" / "run-1"
    parameters = FAKE_SERVER_PARAMETERS | {"generate_max_chunks": 4, "export_pvc_path": str(published)}
    result = run_locally(LocalRunOptions(input_dir=str(pdfs), output_dir=str(tmp_path / "out"), parameters=parameters))

    summary = result.summary
    assert summary["documents"] == 1 and summary["chunks"] >= 4
    assert summary["generated"] == 4 and summary["accepted"] == 4 and summary["rejected"] == 0
    records = _dataset_records(result.dataset_dir)
    assert len(records) == summary["train"] + summary["validation"] == 4
    assert all(r["messages"][1]["content"] == TUTOR for r in records)
    assert (tmp_path / "out" / "latest").resolve() == result.dataset_dir.resolve()
    assert (published / "train.jsonl").read_bytes() == (result.dataset_dir / "train.jsonl").read_bytes()  # handed to the next pipeline


@pytest.mark.e2e
def test_pipeline_against_a_real_local_model_server(tmp_path, samples_dir, monkeypatch):
    for key in ("LLM_API_BASE", "LLM_MODEL", "LLM_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    pdfs = _one_pdf(tmp_path, samples_dir)
    result = run_locally(LocalRunOptions(input_dir=str(pdfs), output_dir=str(tmp_path / "out"), parameters={"generate_max_chunks": 2}))

    summary = result.summary
    assert summary["model"] == "smollm2" and summary["documents"] == 1
    # the embedded model's run: its slots, a slow machine's timeout, a target and a request budget
    from socratic_sdg.deploy.local_run import EMBEDDED_MAX_REQUESTS, EMBEDDED_TARGET_EXAMPLES, EMBEDDED_TUTOR_CANDIDATES

    assert (summary["target_examples"], summary["max_requests"]) == (EMBEDDED_TARGET_EXAMPLES, EMBEDDED_MAX_REQUESTS)
    assert summary["tutor_candidates"] == EMBEDDED_TUTOR_CANDIDATES  # best of 3: llama.cpp answers n
    # every row is accounted for: generated or failed, then accepted or rejected
    assert summary["generated"] + summary["generation_failed"] == 2
    assert summary["accepted"] + summary["rejected"] == summary["generated"]
    assert sum(summary["rejected_by_reason"].values()) >= summary["rejected"]
    records = _dataset_records(result.dataset_dir)  # the tiny model may leave few or none: no crash
    assert len(records) == summary["accepted"]
    # the embedded server is stopped and the environment restored after the run
    import os

    assert "LLM_API_BASE" not in os.environ


def test_sharded_conversion_gives_the_same_chunks_as_one_task(tmp_path, samples_dir, sample_chunks, fake_llm, monkeypatch):
    monkeypatch.setenv("LLM_API_BASE", fake_llm.api_base)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    parameters = {"convert_num_shards": 3, "generate_max_chunks": 1}
    result = run_locally(LocalRunOptions(input_dir=str(samples_dir), output_dir=str(tmp_path / "out"), parameters=parameters))
    assert result.summary["documents"] == 4 and result.summary["documents_failed"] == 0
    assert result.summary["chunks"] == sum(1 for _ in read_jsonl(sample_chunks))


def test_sharded_generation_gives_the_same_records_as_one_task(tmp_path, samples_dir, fake_llm, monkeypatch):
    monkeypatch.setenv("LLM_API_BASE", fake_llm.api_base)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    pdfs = _one_pdf(tmp_path, samples_dir, "rbt-multivar-calculus.pdf")
    ids = {}
    for shards in (1, 3):
        parameters = FAKE_SERVER_PARAMETERS | {"generate_max_chunks": 5, "generate_num_shards": shards, "generate_max_concurrency": 3}
        result = run_locally(LocalRunOptions(input_dir=str(pdfs), output_dir=str(tmp_path / f"out-{shards}"), parameters=parameters))
        assert result.summary["generated"] == 5 and result.summary["generation_failed"] == 0
        ids[shards] = sorted(r["id"] for r in _dataset_records(result.dataset_dir))
    assert len(ids[1]) == 5 and ids[3] == ids[1]


def test_estimate_only_probes_the_endpoint_and_generates_nothing(tmp_path, samples_dir, fake_llm, monkeypatch):
    import json

    monkeypatch.setenv("LLM_API_BASE", fake_llm.api_base)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    pdfs = _one_pdf(tmp_path, samples_dir, "rbt-multivar-calculus.pdf")
    published = tmp_path / "published"
    published.mkdir()
    for name in ("train.jsonl", "validation.jsonl", "export_metrics.json"):  # a dataset an earlier version published
        (published / name).write_text("{}\n")
    parameters = FAKE_SERVER_PARAMETERS | {
        "generate_estimate_only": True,
        "generate_estimate_probe_rows": 2,
        "generate_target_examples": 10,
        "export_pvc_path": str(published),
    }
    result = run_locally(LocalRunOptions(input_dir=str(pdfs), output_dir=str(tmp_path / "out"), parameters=parameters))
    assert result.summary["generated"] == 0 and result.summary["accepted"] == 0
    assert fake_llm.requests == 2 * 3  # the probe's rows only
    (estimate_file,) = (tmp_path / "out" / "runs").rglob("estimate.json")
    estimate = json.loads(estimate_file.read_text())
    assert estimate["basis"] == "probe" and estimate["target_examples"] == 10 and estimate["requests"] == 10 * 3
    assert (published / "train.jsonl").read_text() == "{}\n"  # an empty run does not replace it


def test_the_sdg_pipeline_nests_in_a_bigger_pipeline_and_feeds_the_next_step(tmp_path, samples_dir, fake_llm, monkeypatch):
    from kfp import local

    from socratic_sdg.pipelines.example_training_pipeline import sdg_then_train

    monkeypatch.setenv("LLM_API_BASE", fake_llm.api_base)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    pdfs = _one_pdf(tmp_path, samples_dir, "rbt-multivar-calculus.pdf")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = sdg_then_train(convert_input_dir=str(pdfs), convert_pipeline="native", generate_max_chunks=3, filter_dedup=False)
    assert task.output == 3  # the training step received and validated the 3 records


def test_local_run_writes_the_card_and_report(tmp_path, samples_dir, fake_llm, monkeypatch):
    monkeypatch.setenv("LLM_API_BASE", fake_llm.api_base)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    pdfs = _one_pdf(tmp_path, samples_dir)
    result = run_locally(LocalRunOptions(input_dir=str(pdfs), output_dir=str(tmp_path / "out"), parameters={"generate_max_chunks": 2}))
    for name in ("README.md", "report.html", "report.md", "summary.json"):
        assert (result.dataset_dir / name).is_file(), name
    from socratic_sdg.export.validate import validate

    assert validate(result.dataset_dir).ok


def test_a_local_run_is_quiet_shows_each_stage_and_keeps_the_runner_log(tmp_path, samples_dir, fake_llm, monkeypatch, capsys):
    from socratic_sdg import cli

    monkeypatch.setenv("LLM_API_BASE", fake_llm.api_base)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    pdfs = _one_pdf(tmp_path, samples_dir)
    argv = ["run", "--input", str(pdfs), "--output-dir", str(tmp_path / "out"), "--max-chunks", "2", "--param", "filter_dedup=false"]
    assert cli.main(argv) == 0
    out = capsys.readouterr()
    lines = (out.out + out.err).splitlines()
    assert len(lines) < 60, "\n".join(lines)  # the runner's own logs stay in the log file
    for task in ("convert-documents", "chunk-documents", "generate-conversations", "filter-conversations", "export-dataset"):
        assert f"- {task}" in lines
    assert any(line.strip().startswith("[generate 2/2]") for line in lines)
    log = next(line for line in lines if "the runner's log:" in line).split("the runner's log: ")[1].rstrip(")")
    assert "Executing task" in open(log).read()
    assert sum(line.startswith("conversations  ") or line.startswith("conversations generated") for line in lines) == 1  # summaries once


def test_a_local_run_refuses_bad_input_before_any_work(tmp_path, monkeypatch, capsys):
    from socratic_sdg import cli

    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("LLM_API_BASE", "http://127.0.0.1:9/v1")  # nothing listens there
    monkeypatch.setenv("LLM_MODEL", "m")
    assert cli.main(["run", "--input", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no documents found in" in err and "Traceback" not in err
    (tmp_path / "empty" / "notes.md").write_text("# A note\n\nSome text.\n")
    assert cli.main(["run", "--input", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "127.0.0.1:9" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "runs").exists()  # nothing ran


def test_a_task_that_fails_under_the_local_runner_ends_the_run_with_its_sentence(tmp_path, fake_llm, monkeypatch, capsys):
    from socratic_sdg import cli
    from socratic_sdg.testing.bad_files import write_bad_corpus

    monkeypatch.setenv("LLM_API_BASE", fake_llm.api_base)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    write_bad_corpus(tmp_path / "bad")
    assert cli.main(["run", "--input", str(tmp_path / "bad"), "--output-dir", str(tmp_path / "out")]) == 2
    out = capsys.readouterr()
    last = out.err.strip().splitlines()[-1]
    assert last.startswith("socratic-sdg run: error: the convert-documents task failed: ") and "(the whole log: " in last, last
    assert "Traceback" not in out.err and "Traceback" not in out.out
