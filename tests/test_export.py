import json

from socratic_sdg import export
from socratic_sdg.records import read_jsonl, write_jsonl
from socratic_sdg.testing.generation import conversation


def _records(n_chunks: int, per_chunk: int) -> list[dict]:
    return [conversation(f"c{c}-{k}", f"How do I start problem {c}?", "What do you notice about the first equation?",
                         chunk_id=f"chunk-{c}", reference_answer="x = 4")
            for c in range(n_chunks) for k in range(per_chunk)]


def test_split_is_grouped_by_chunk_deterministic_and_near_the_ratio(tmp_path):
    records = _records(200, 3)
    write_jsonl(tmp_path / "accepted.jsonl", records)
    result = export.run(tmp_path / "accepted.jsonl", tmp_path / "out")
    train = list(read_jsonl(result.train_path))
    validation = list(read_jsonl(result.validation_path))
    assert len(train) + len(validation) == 600
    train_chunks = {r["metadata"]["chunk_id"] for r in train}
    validation_chunks = {r["metadata"]["chunk_id"] for r in validation}
    assert not train_chunks & validation_chunks
    assert 0.05 < len(validation_chunks) / 200 < 0.15
    # the same split whatever the order of the input
    write_jsonl(tmp_path / "reversed.jsonl", list(reversed(records)))
    again = export.run(tmp_path / "reversed.jsonl", tmp_path / "out2")
    assert {r["id"] for r in read_jsonl(again.validation_path)} == {r["id"] for r in validation}
    # another seed, another split
    other = export.run(tmp_path / "accepted.jsonl", tmp_path / "out3", export.ExportOptions(seed=7))
    assert {r["id"] for r in read_jsonl(other.validation_path)} != {r["id"] for r in validation}


def test_records_are_in_chat_format_with_only_the_three_keys(tmp_path):
    records = _records(3, 1)
    records[0]["extra"] = "dropped"
    records[1]["messages"].insert(0, {"role": "system", "content": "generator system prompt"})
    write_jsonl(tmp_path / "accepted.jsonl", records)
    result = export.run(tmp_path / "accepted.jsonl", tmp_path / "out")
    for record in list(read_jsonl(result.train_path)) + list(read_jsonl(result.validation_path)):
        assert set(record) == {"id", "messages", "metadata"}
        assert [m["role"] for m in record["messages"]] == ["user", "assistant"]


def test_system_prompt_is_opt_in(tmp_path):
    write_jsonl(tmp_path / "accepted.jsonl", _records(4, 1))
    result = export.run(tmp_path / "accepted.jsonl", tmp_path / "out", export.ExportOptions(system_prompt="Be Socratic."))
    first = next(read_jsonl(result.train_path))
    assert first["messages"][0] == {"role": "system", "content": "Be Socratic."}


def test_few_groups_still_give_a_validation_split_and_zero_records_do_not_crash(tmp_path):
    write_jsonl(tmp_path / "two.jsonl", _records(2, 2))
    result = export.run(tmp_path / "two.jsonl", tmp_path / "out")
    assert (result.train, result.validation) == (2, 2)
    write_jsonl(tmp_path / "none.jsonl", [])
    empty = export.run(tmp_path / "none.jsonl", tmp_path / "empty")
    assert (empty.train, empty.validation) == (0, 0)
    assert empty.train_path.read_text() == "" and empty.validation_path.read_text() == ""
    metrics = json.loads((tmp_path / "empty" / "export_metrics.json").read_text())
    assert (metrics["train"], metrics["validation"], metrics["options"]["seed"]) == (0, 0, 42)


def _round_robin_reference(records: list[dict], max_records: int, seed: int) -> set[str]:
    """max_records as first specified: every record's key in memory, sorted per document, then taken
    one per document per round in document-name order."""
    by_document: dict[str, list] = {}
    for line_no, record in enumerate(records):
        by_document.setdefault(record["metadata"]["doc_id"], []).append((export.split_key(str(record["id"]), seed), line_no))
    queues = [sorted(v) for _, v in sorted(by_document.items())]
    selected: set[int] = set()
    while len(selected) < max_records and any(queues):
        for queue in queues:
            if queue and len(selected) < max_records:
                selected.add(queue.pop(0)[1])
    return {records[i]["id"] for i in selected}


def test_max_records_selection_streams_and_matches_the_round_robin(tmp_path):
    import random

    rng = random.Random(3)
    for trial in range(12):
        sizes = [rng.choice([0, 1, 2, 5, 17, 40]) for _ in range(rng.randint(1, 6))]
        records = []
        for d, size in enumerate(sizes):
            for c in _records(size, 1):
                c["id"] = f"t{trial}-d{d}-{c['id']}"
                c["metadata"] = {**c["metadata"], "doc_id": f"doc{d}", "chunk_id": f"d{d}-{c['metadata']['chunk_id']}"}
                records.append(c)
        rng.shuffle(records)
        limit = rng.randint(1, max(1, len(records) + 3))
        write_jsonl(tmp_path / "accepted.jsonl", records)
        result = export.run(tmp_path / "accepted.jsonl", tmp_path / f"out{trial}", export.ExportOptions(max_records=limit, seed=trial))
        kept = {r["id"] for r in list(read_jsonl(result.train_path)) + list(read_jsonl(result.validation_path))}
        assert kept == _round_robin_reference(records, limit, trial), (sizes, limit)


def test_split_rule_matches_the_set_of_groups_and_keeps_one_group_aside():
    records = _records(40, 2)
    train, validation = export.assign_splits(records, export.ExportOptions(validation_ratio=0.25, seed=5))
    chosen = {r["metadata"]["chunk_id"] for r in validation}
    assert chosen == {f"chunk-{c}" for c in range(40) if export.split_key(f"chunk-{c}", 5) < 0.25}
    # a ratio too small for the groups there are still sets the group with the smallest key aside
    few = _records(3, 2)
    train, validation = export.assign_splits(few, export.ExportOptions(validation_ratio=1e-9))
    smallest = min((f"chunk-{c}" for c in range(3)), key=lambda g: export.split_key(g, 42))
    assert {r["metadata"]["chunk_id"] for r in validation} == {smallest} and len(train) == 4
    # one group only: nothing to set aside
    assert export.assign_splits(_records(1, 3), export.ExportOptions(validation_ratio=1e-9)) == (_records(1, 3), [])


# --- issue 13: what an operator ran into ---------------------------------------------------------

import pytest  # noqa: E402

from socratic_sdg import records  # noqa: E402
from socratic_sdg.export.validate import validate  # noqa: E402
from test_records import killed_during_renames  # noqa: E402


def _exported(tmp_path, n_chunks: int = 4, name: str = "dataset"):
    write_jsonl(tmp_path / "accepted.jsonl", _records(n_chunks, 2))
    return export.run(tmp_path / "accepted.jsonl", tmp_path / name)


def test_copy_dataset_refuses_a_folder_that_holds_other_files_and_deletes_nothing(tmp_path):
    dataset = _exported(tmp_path).train_path.parent
    target = tmp_path / "pvc" / "course"
    target.mkdir(parents=True)
    (target / "course.pdf").write_bytes(b"%PDF-1.4 the only copy")
    (tmp_path / "pvc" / ".course.incoming").mkdir()  # a user's folder beside it, whatever its name
    (tmp_path / "pvc" / ".course.incoming" / "notes.txt").write_text("mine")
    before = sorted(p.relative_to(tmp_path / "pvc") for p in (tmp_path / "pvc").rglob("*"))
    with pytest.raises(ValueError) as raised:
        export.copy_dataset(dataset, target)
    message = str(raised.value)
    assert str(target) in message and "course.pdf" in message and "\n" not in message
    assert (target / "course.pdf").read_bytes() == b"%PDF-1.4 the only copy"
    assert sorted(p.relative_to(tmp_path / "pvc") for p in (tmp_path / "pvc").rglob("*")) == before
    # a file where the folder should be is refused too
    (tmp_path / "pvc" / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        export.copy_dataset(dataset, tmp_path / "pvc" / "file")
    assert (tmp_path / "pvc" / "file").read_text() == "x"


def test_copy_dataset_replaces_only_a_dataset_it_wrote_and_never_copies_temp_files(tmp_path):
    dataset = _exported(tmp_path).train_path.parent
    assert (dataset / export.DATASET_MARKER).is_file()
    (dataset / ".report.html.abcdefgh.tmp").write_text("what a killed run left")
    empty = tmp_path / "pvc" / "empty"
    empty.mkdir(parents=True)
    for target in (tmp_path / "pvc" / "new", empty):  # a missing or empty target is fine
        export.copy_dataset(dataset, target)
        assert validate(target).ok and (target / export.DATASET_MARKER).is_file()
        assert target.stat().st_mode & 0o777 == dataset.stat().st_mode & 0o777  # readable by the next pipeline
        assert not [p.name for p in target.iterdir() if p.name.endswith(".tmp")]
    # a copy this project made is replaced whole
    (tmp_path / "pvc" / "new" / "validation.jsonl").write_text("")
    export.copy_dataset(dataset, tmp_path / "pvc" / "new")
    assert (tmp_path / "pvc" / "new" / "validation.jsonl").read_bytes() == (dataset / "validation.jsonl").read_bytes()
    assert sorted(p.name for p in (tmp_path / "pvc").iterdir()) == ["empty", "new"]
    # ...but not once someone put their own files in it
    (tmp_path / "pvc" / "new" / "course.pdf").write_text("mine")
    with pytest.raises(ValueError, match="course.pdf"):
        export.copy_dataset(dataset, tmp_path / "pvc" / "new")
    assert (tmp_path / "pvc" / "new" / "course.pdf").read_text() == "mine"


def test_copy_dataset_replaces_a_copy_an_earlier_version_made_without_the_marker(tmp_path):
    dataset = _exported(tmp_path).train_path.parent
    legacy = tmp_path / "pvc" / "latest"
    legacy.mkdir(parents=True)
    for name in ("train.jsonl", "validation.jsonl", "export_metrics.json", "README.md", "summary.json"):
        (legacy / name).write_text("old\n")
    (legacy / ".train.jsonl.zzzzzzzz.tmp").write_text("old temp")
    export.copy_dataset(dataset, legacy)
    assert (legacy / "train.jsonl").read_bytes() == (dataset / "train.jsonl").read_bytes()
    assert not (legacy / "README.md").exists() and not (legacy / ".train.jsonl.zzzzzzzz.tmp").exists()


def test_a_kill_between_train_and_validation_is_seen_by_validate_and_copy_and_the_next_run_repairs_it(tmp_path):
    _exported(tmp_path, n_chunks=30)
    out = tmp_path / "dataset"
    write_jsonl(tmp_path / "accepted2.jsonl", _records(60, 1))
    killed_during_renames(f"""
        from socratic_sdg import export
        export.run({str(tmp_path / 'accepted2.jsonl')!r}, {str(out)!r})
    """, ("train.jsonl", "validation.jsonl"))
    report = validate(out)
    assert not report.ok and any("interrupted" in p and "rerun" in p for p in report.problems), report.problems
    with pytest.raises(ValueError, match="interrupted"):
        export.copy_dataset(out, tmp_path / "pvc" / "latest")
    assert not (tmp_path / "pvc" / "latest").exists()
    export.run(tmp_path / "accepted2.jsonl", out)
    assert validate(out).ok
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_stale_temp_files_of_the_dataset_are_removed_on_start_and_nothing_else(tmp_path):
    out = tmp_path / "dataset"
    out.mkdir()
    stale = [out / ".train.jsonl.k2j4h5g6.tmp", out / ".validation.jsonl.abcdefgh.tmp", out / ".report.html.abcdefgh.tmp"]
    kept = [out / ".accepted.jsonl.abcdefgh.tmp", out / "notes.tmp", tmp_path / ".train.jsonl.abcdefgh.tmp"]
    for path in stale + kept:
        path.write_bytes(b"x" * 1000)
    _exported(tmp_path)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_a_deeply_nested_line_is_an_error_naming_the_file_and_line(tmp_path):
    path = tmp_path / "accepted.jsonl"
    write_jsonl(path, _records(2, 1))
    with path.open("a") as handle:
        handle.write('{"id": "deep", "messages": ' + "[" * 200_000 + "]" * 200_000 + "}\n")
    with pytest.raises(ValueError, match="nested") as raised:
        export.run(path, tmp_path / "out")
    assert f"{path}:3" in str(raised.value)


def test_invalid_utf8_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "accepted.jsonl"
    write_jsonl(path, _records(2, 1))
    with path.open("ab") as handle:
        handle.write(b'{"id": "\xff"}\n')
    with pytest.raises(ValueError, match="UTF-8") as raised:
        export.run(path, tmp_path / "out")
    assert f"{path}:3" in str(raised.value)


def test_records_that_did_not_come_through_the_filter_are_refused_with_file_line_and_fix(tmp_path):
    path = tmp_path / "accepted.jsonl"
    records_in = _records(2, 1)
    records_in[1]["metadata"] = "chunk-1"
    write_jsonl(path, records_in)
    with pytest.raises(ValueError) as raised:
        export.run(path, tmp_path / "out")
    assert f"{path}:2" in str(raised.value) and "filter" in str(raised.value) and "\n" not in str(raised.value)
    for broken in ({"id": "x", "metadata": {}}, {"id": "x", "messages": "hi"}, {"id": "x", "messages": [{"role": "user"}]}):
        write_jsonl(path, [_records(1, 1)[0], broken])
        with pytest.raises(ValueError, match="messages") as raised:
            export.run(path, tmp_path / "out")
        assert f"{path}:2" in str(raised.value)
    assert not (tmp_path / "out" / "train.jsonl").exists()  # nothing half-written


def test_a_missing_or_incomplete_input_names_the_file_and_what_writes_it(tmp_path, capsys):
    from socratic_sdg import cli

    missing = tmp_path / "filtered" / "accepted.jsonl"
    with pytest.raises(FileNotFoundError) as raised:
        export.run(missing, tmp_path / "out")
    assert str(missing) in str(raised.value) and "socratic-sdg filter" in str(raised.value) and "Errno" not in str(raised.value)
    assert cli.main(["export", "--input", str(missing), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(missing) in err and len(err.splitlines()) == 1
    # accepted.jsonl of a filter run that was killed between its two outputs is refused
    missing.parent.mkdir()
    write_jsonl(missing, _records(2, 1))
    records.set_manifest_path(missing.parent, "filter").write_text(json.dumps(
        {"written_by": "socratic-sdg", "producer": "socratic-sdg filter", "complete": False, "files": {"accepted.jsonl": {}, "rejected.jsonl": {}}}))
    with pytest.raises(ValueError, match="rerun") as raised:
        export.run(missing, tmp_path / "out")
    assert str(missing) in str(raised.value)


def test_validate_reports_bad_bytes_and_deep_nesting_by_line_instead_of_crashing(tmp_path):
    out = _exported(tmp_path).train_path.parent
    with (out / "train.jsonl").open("ab") as handle:
        handle.write(b'{"messages": "caf\xe9"}\n')
        handle.write(b'{"messages": ' + b"[" * 200_000 + b"]" * 200_000 + b"}\n")
    lines = (out / "train.jsonl").read_text(errors="replace").count("\n")
    report = validate(out)
    assert any(p.startswith(f"{out / 'train.jsonl'}:{lines - 1}: not valid UTF-8") for p in report.problems), report.problems
    assert any(p.startswith(f"{out / 'train.jsonl'}:{lines}: not valid JSON (nested") for p in report.problems), report.problems
