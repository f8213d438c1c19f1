"""The command line, stage by stage on plain files, as a user would debug a run."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from socratic_sdg.testing.fake_openai import TUTOR

from socratic_sdg import cli
from socratic_sdg.records import read_jsonl, write_jsonl

COMMANDS = ["convert", "chunk", "generate", "estimate", "filter", "export", "validate", "run", "compile", "submit", "flows", "serve-local"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"socratic-sdg {command}" in out


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("socratic-sdg")  # installed next to this interpreter
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and all(c in result.stdout for c in COMMANDS)


def test_stages_one_by_one_on_plain_files(tmp_path, samples_dir, fake_llm, monkeypatch, capsys):
    pdfs = tmp_path / "pdfs"
    pdfs.mkdir()
    shutil.copy(samples_dir / "rbt-multivar-calculus.pdf", pdfs)
    work = tmp_path / "work"
    assert cli.main(["convert", "--input", str(pdfs), "--output-dir", str(work / "converted")]) == 0
    assert cli.main(["chunk", "--input", str(work / "converted"), "--output", str(work / "chunks.jsonl")]) == 0
    monkeypatch.setenv("LLM_API_BASE", fake_llm.api_base)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    assert cli.main(["generate", "--input", str(work / "chunks.jsonl"), "--output-dir", str(work / "generated"), "--max-chunks", "3"]) == 0
    # the fake server answers every chunk with the same conversation: dedup would rightly keep one
    assert cli.main(["filter", "--input", str(work / "generated" / "conversations.jsonl"), "--output-dir", str(work / "filtered"), "--no-dedup"]) == 0
    assert cli.main(["export", "--input", str(work / "filtered" / "accepted.jsonl"), "--output-dir", str(work / "dataset")]) == 0

    out = capsys.readouterr().out
    assert "[convert 1/1] rbt-multivar-calculus.pdf: 14 pages" in out
    assert "3 accepted, 0 rejected of 3" in out
    records = list(read_jsonl(work / "dataset" / "train.jsonl")) + list(read_jsonl(work / "dataset" / "validation.jsonl"))
    assert len(records) == 3
    assert all(r["messages"][-1] == {"role": "assistant", "content": TUTOR} for r in records)


def test_estimate_then_a_target_driven_generate(tmp_path, sample_chunks, fake_llm, monkeypatch, capsys):
    monkeypatch.setenv("LLM_API_BASE", fake_llm.api_base)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    chunks = str(sample_chunks)
    assert (
        cli.main(["estimate", "--input", chunks, "--target-examples", "4", "--probe-rows", "3", "--no-dedup", "--output-dir", str(tmp_path / "estimate")]) == 0
    )
    estimate = json.loads((tmp_path / "estimate" / "estimate.json").read_text())
    assert estimate["basis"] == "probe" and estimate["acceptance_rate"] == 1.0 and estimate["requests"] == 4 * 3
    out = capsys.readouterr().out
    assert "requests           12" in out

    fake_llm.reset_stats()
    args = ["generate", "--input", chunks, "--output-dir", str(tmp_path / "g"), "--target-examples", "4", "--no-dedup", "--max-concurrency", "1"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "stopped early      target_examples reached" in out
    generated = list(read_jsonl(tmp_path / "g" / "conversations.jsonl"))
    assert 4 <= len(generated) <= 4 + 16 and fake_llm.requests == 3 * len(generated)


def test_user_errors_are_one_line_with_exit_code_2(tmp_path, capsys, monkeypatch):
    assert cli.main(["convert", "--input", str(tmp_path / "missing"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: input folder" in err and "Traceback" not in err

    monkeypatch.delenv("LLM_API_BASE", raising=False)
    (tmp_path / "chunks.jsonl").write_text(json.dumps({"chunk_id": "c", "text": "t"}) + "\n")
    assert cli.main(["generate", "--input", str(tmp_path / "chunks.jsonl"), "--output-dir", str(tmp_path / "g")]) == 2
    assert "set LLM_API_BASE" in capsys.readouterr().err

    monkeypatch.setenv("LLM_API_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LLM_MODEL", "m")
    assert cli.main(["generate", "--input", str(tmp_path / "chunks.jsonl"), "--output-dir", str(tmp_path / "g")]) == 2
    assert "cannot reach the model endpoint at http://127.0.0.1:9/v1" in capsys.readouterr().err


def test_secret_values_never_reach_the_output(tmp_path, fake_llm, monkeypatch, capsys, caplog):
    (tmp_path / "chunks.jsonl").write_text(json.dumps({"chunk_id": "c", "text": "Solve 2x + 3 = 11 for x."}) + "\n")
    monkeypatch.setenv("LLM_API_BASE", fake_llm.api_base)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    monkeypatch.setenv("LLM_API_KEY", "sk-do-not-print-me")
    assert cli.main(["-v", "generate", "--input", str(tmp_path / "chunks.jsonl"), "--output-dir", str(tmp_path / "g")]) == 0
    captured = capsys.readouterr()
    everything = captured.out + captured.err + caplog.text + "".join(p.read_text() for p in (tmp_path / "g").iterdir())
    assert "sk-do-not-print-me" not in everything


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "socratic_sdg.cli", "compile", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "socratic-sdg compile" in result.stdout


def test_a_full_disk_or_an_unwritable_path_is_one_sentence(tmp_path, capsys, monkeypatch):
    import errno

    from socratic_sdg import filtering

    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "What?"}]}) + "\n")
    target = tmp_path / "out" / "accepted.jsonl"

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(filtering, "run", full)
    assert cli.main(["filter", "--input", str(source), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"no space left on the device writing {target}" in err and "rerun" in err

    def read_only(*_args, **_kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "/data/out")

    monkeypatch.setattr(filtering, "run", read_only)
    assert cli.main(["filter", "--input", str(source), "--output-dir", "/data/out"]) == 2
    assert "cannot write /data/out (Permission denied); choose a folder you can write to" in capsys.readouterr().err


def test_a_parameter_typo_is_named_with_the_closest_name_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LLM_API_BASE", raising=False)
    code = cli.main(["run", "--input", str(tmp_path), "--output-dir", str(tmp_path / "out"), "--param", "generate_max_chunk=2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "unknown pipeline parameter generate_max_chunk (did you mean generate_max_chunks?)" in err
    assert not (tmp_path / "out").exists()  # nothing started: no server, no runs folder


def test_run_takes_dashboard_names_too_and_checks_them_by_their_short_name_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LLM_API_BASE", raising=False)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text("# A note\n\nSome text.\n")
    run = ["run", "--input", str(tmp_path / "docs"), "--output-dir", str(tmp_path / "out")]
    # The pre-run check reads the flow by its short name (generate_flow_id): it sees the dashboard name's value.
    assert cli.main([*run, "--param", "phase_03_generate_opt_flow_id=no-such-flow"]) == 2
    assert "no flow with id 'no-such-flow'" in capsys.readouterr().err
    assert cli.main([*run, "--max-chunks", "2", "--param", "phase_03_generate_opt_max_chunks=3"]) == 2
    assert "parameter phase_03_generate_opt_max_chunks is given twice" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_serve_local_on_a_port_in_use_is_one_sentence(capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli.main(["serve-local", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"port {port} on 127.0.0.1 is already in use" in err


def test_preview_shows_a_few_conversations_with_the_filter_s_verdict_and_reasons(tmp_path, monkeypatch, capsys):
    from socratic_sdg.testing.fake_openai import TUTOR, FakeOpenAI
    from socratic_sdg.testing.generation import gradient_chunks

    write_jsonl(tmp_path / "chunks.jsonl", gradient_chunks(12))

    class HalfLeaking(FakeOpenAI):  # the tutor gives the answer away for even sections
        def reply_for(self, messages):
            reply = super().reply_for(messages)
            even = any(f"Section {i}:" in str(m.get("content")) for m in messages for i in range(0, 12, 2))
            return "The answer is (2, 4). Does that make sense?" if reply == TUTOR and even else reply

    with HalfLeaking() as server:
        monkeypatch.setenv("LLM_API_BASE", server.api_base)
        monkeypatch.setenv("LLM_MODEL", "fake-model")
        assert cli.main(["preview", "--input", str(tmp_path / "chunks.jsonl"), "--rows", "4"]) == 0
    out = capsys.readouterr().out
    blocks = [line for line in out.splitlines() if line.startswith("--- ")]
    assert len(blocks) == 4, out
    assert any("ACCEPTED" in b for b in blocks) and any("REJECTED" in b for b in blocks)
    assert "tutor: The answer is (2, 4)." in out and "why:" in out  # the rejected text and the reason, in words
    assert "workshop filter: drop, states_answer" in out
    assert out.strip().splitlines()[-1].startswith(f"{sum('ACCEPTED' in b for b in blocks)} of 4 accepted (fake-model, flow socratic-single-turn)")
