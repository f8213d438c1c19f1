import json

from socratic_sdg import export
from socratic_sdg.records import read_jsonl, write_jsonl


def _records(n_chunks: int, per_chunk: int) -> list[dict]:
    return [
        {
            "id": f"c{c}-{k}",
            "messages": [
                {"role": "user", "content": f"How do I start problem {c}?"},
                {"role": "assistant", "content": "What do you notice about the first equation?"},
            ],
            "metadata": {"chunk_id": f"chunk-{c}", "reference_answer": "x = 4"},
        }
        for c in range(n_chunks)
        for k in range(per_chunk)
    ]


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
