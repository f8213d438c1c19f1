"""records: JSONL reads that name the file and line of a bad input, atomic files and atomic sets of
files, and the clean-up of temp files a killed run left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from socratic_sdg import records
from socratic_sdg.records import read_jsonl, write_jsonl

SRC = Path(__file__).resolve().parents[1] / "src"


def killed_during_renames(script: str, names: tuple[str, str]) -> None:
    """Run ``script`` in a child Python that dies (os._exit, like a SIGKILL: no clean-up runs) at the
    moment one of the two ``names`` has been renamed into place and the other is about to be: the
    window where a reader would see one new file beside one old one."""
    hook = textwrap.dedent(f"""
        import os
        _real_replace, _done = os.replace, []
        def _replace(src, dst, *args, **kwargs):
            if os.path.basename(os.fspath(dst)) in {names!r}:
                if _done:
                    os._exit(9)
                _done.append(dst)
            return _real_replace(src, dst, *args, **kwargs)
        os.replace = _replace
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run([sys.executable, "-c", hook + textwrap.dedent(script)], env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == 9, child.stderr


# --- reading ------------------------------------------------------------------------------------


def test_invalid_utf8_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "chunks.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "caf\xe9"}\n')
    with pytest.raises(ValueError) as raised:
        list(read_jsonl(path))
    message = str(raised.value)
    assert f"{path}:2" in message and "UTF-8" in message and "\n" not in message


def test_a_deeply_nested_or_unparsable_line_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"ok": 1}\n{"deep": ' + "[" * 200_000 + "]" * 200_000 + "}\n", encoding="utf-8")
    with pytest.raises(records.JsonlError, match="nested") as raised:
        list(read_jsonl(path))
    assert f"{path}:2" in str(raised.value)
    # a number Python refuses to convert (over 4300 digits) is also one bad line, not a crash
    path.write_text('{"n": ' + "1" * 5000 + "}\n", encoding="utf-8")
    with pytest.raises(records.JsonlError, match=f"{path}:1"):
        list(read_jsonl(path))


def test_line_numbers_count_blank_lines_and_a_byte_order_mark_is_tolerated(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"b": 2}\r\n')
    assert list(records.iter_jsonl(path)) == [(1, {"a": 1}), (3, {"b": 2})]
    path.write_text('{"a": 1}\n[1]\n', encoding="utf-8")
    with pytest.raises(records.JsonlError, match=f"{path}:2: expected a JSON object"):
        list(read_jsonl(path))


def test_a_missing_input_names_the_file_and_what_writes_it(tmp_path):
    with pytest.raises(FileNotFoundError) as raised:
        list(read_jsonl(tmp_path / "nowhere.jsonl"))
    assert str(tmp_path / "nowhere.jsonl") in str(raised.value) and "Errno" not in str(raised.value)
    with pytest.raises(FileNotFoundError) as raised:
        records.require_input(tmp_path / "accepted.jsonl", "export input", "the accepted.jsonl that `socratic-sdg filter` writes")
    assert "socratic-sdg filter" in str(raised.value) and str(tmp_path / "accepted.jsonl") in str(raised.value)
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileNotFoundError, match="is a folder"):
        records.require_input(tmp_path / "folder", "export input", "the accepted.jsonl that `socratic-sdg filter` writes")


def test_read_json_names_the_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_bytes(b'{"a": \xff}')
    with pytest.raises(ValueError, match=str(path)):
        records.read_json(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match=str(path)):
        records.read_json(path)


# --- atomic sets ----------------------------------------------------------------------------------


def _write_set(folder: Path, text: str) -> None:
    with records.AtomicFileSet(folder, ["a.jsonl", "b.jsonl"], kind="demo", producer="the demo") as files:
        files["a.jsonl"].write(text + "-a\n")
        files["b.jsonl"].write(text + "-b\n")


def test_a_set_is_written_whole_or_not_at_all(tmp_path):
    _write_set(tmp_path, "one")
    assert (tmp_path / "a.jsonl").read_text() == "one-a\n" and (tmp_path / "b.jsonl").read_text() == "one-b\n"
    records.check_complete(tmp_path / "a.jsonl")
    assert records.incomplete_sets(tmp_path) == []
    manifest = json.loads(records.set_manifest_path(tmp_path, "demo").read_text())
    assert manifest["complete"] is True and manifest["files"]["a.jsonl"]["bytes"] == len("one-a\n")
    with pytest.raises(RuntimeError):
        with records.AtomicFileSet(tmp_path, ["a.jsonl", "b.jsonl"], kind="demo", producer="the demo") as files:
            files["a.jsonl"].write("two-a\n")
            raise RuntimeError("the stage failed half way")
    assert (tmp_path / "a.jsonl").read_text() == "one-a\n" and (tmp_path / "b.jsonl").read_text() == "one-b\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    records.check_complete(tmp_path)


def test_a_kill_between_the_renames_is_seen_by_every_reader_and_the_next_run_repairs_it(tmp_path):
    _write_set(tmp_path, "one")
    killed_during_renames(f"""
        from socratic_sdg.records import AtomicFileSet
        with AtomicFileSet({str(tmp_path)!r}, ["a.jsonl", "b.jsonl"], kind="demo", producer="the demo") as files:
            files["a.jsonl"].write("two-a\\n")
            files["b.jsonl"].write("two-b\\n")
    """, ("a.jsonl", "b.jsonl"))
    pair = ((tmp_path / "a.jsonl").read_text(), (tmp_path / "b.jsonl").read_text())
    assert pair in {("two-a\n", "one-b\n"), ("one-a\n", "two-b\n")}  # one new file beside one old one
    with pytest.raises(records.IncompleteSetError) as raised:
        records.check_complete(tmp_path / "a.jsonl")
    message = str(raised.value)
    assert str(tmp_path / "a.jsonl") in message and "rerun the demo" in message and "\n" not in message
    assert len(records.incomplete_sets(tmp_path)) == 1
    records.check_complete(tmp_path / "unrelated.jsonl")  # a file the set does not name is not its business
    _write_set(tmp_path, "three")  # the next run starts clean and completes the set
    records.check_complete(tmp_path / "a.jsonl")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_kill_before_the_switch_keeps_the_previous_set(tmp_path):
    _write_set(tmp_path, "one")
    hook = f"""
        import os
        from socratic_sdg.records import AtomicFileSet
        with AtomicFileSet({str(tmp_path)!r}, ["a.jsonl", "b.jsonl"], kind="demo", producer="the demo") as files:
            files["a.jsonl"].write("two-a\\n")
            os._exit(9)
    """
    killed_during_renames(hook, ("never", "renamed"))
    assert (tmp_path / "a.jsonl").read_text() == "one-a\n"
    records.check_complete(tmp_path / "a.jsonl")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # what a kill leaves...
    _write_set(tmp_path, "two")
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # ...the next run removes


def test_stale_temp_files_are_removed_only_for_the_given_names(tmp_path):
    stale = [tmp_path / ".train.jsonl.k2j_h5g6.tmp", tmp_path / ".train.jsonl.abcdefgh.tmp"]
    kept = [tmp_path / ".other.jsonl.abcdefgh.tmp", tmp_path / "train.jsonl.tmp", tmp_path / ".train.jsonl.tmp",
            tmp_path / ".train.jsonl.abc.tmp", tmp_path / "notes.tmp"]
    for path in stale + kept:
        path.write_text("x")
    removed = records.remove_stale_temps(tmp_path, ["train.jsonl"])
    assert sorted(removed) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    assert records.remove_stale_temps(tmp_path / "missing", ["train.jsonl"]) == []
    assert records.is_temp_name(".train.jsonl.abcdefgh.tmp") and not records.is_temp_name("notes.tmp")


def test_write_jsonl_round_trip(tmp_path):
    rows = [{"id": "é", "n": [1, 2]}, {"id": "b"}]
    assert write_jsonl(tmp_path / "x.jsonl", rows) == 2
    assert list(read_jsonl(tmp_path / "x.jsonl")) == rows
