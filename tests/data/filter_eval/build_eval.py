"""Builds eval.jsonl and dedup.jsonl (the quality filter's labelled evaluation sets) from cases.yaml.

The cases are written by hand; this script only gives them ids and the record shape the filter reads.
Edit the cases in cases.yaml and rerun ``python tests/data/filter_eval/build_eval.py``; a test checks that the
committed JSONL files match cases.yaml, so the two cannot drift apart.

Labels (``eval.label``), one per record:

* ``good``: a Socratic reply a careful teacher keeps; the filter must accept it.
* ``leak``: some tutor turn lets the student read off the final answer (value, expression or final
  equation) without doing the last reasoning step: stating it, confirming a value the student never
  gave, offering it as the thing to try, or walking through to it. This is the positive class of
  leak detection. The filter must reject it with a leak code.
* ``weak``: no leak, but not a training target (lecture without a question, a question that only
  checks comprehension, template leftovers, role tags, refusals, wrong language, malformed turns,
  off-length). The filter must reject it, with any code.

``eval.layer`` names the layer expected to catch a rejected case (format, rules, leakage, language,
judge); ``judge`` cases need semantic understanding and are out of reach of the deterministic layers:
they are reported, but not counted in the deterministic bar.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

HERE = Path(__file__).parent
METADATA = {"doc_id": "eval", "source": "eval", "model": "hand-written", "flow_id": "eval"}


def record(item: dict, problems: dict) -> dict:
    """One case in the record shape the filter reads: the problem's first message (or ``first``),
    then the tutor turns; ``reference`` absent means the problem's reference answer."""
    if "messages" in item:  # hand-made, possibly malformed
        metadata = {"chunk_id": "chunk-raw", **METADATA}
        if item.get("reference"):
            metadata["reference_answer"] = item["reference"]
        return {"label": item["label"], "topic": item["topic"], "key": "raw", "messages": item["messages"], "metadata": metadata,
                "note": item["note"], "layer": item["layer"]}
    problem = problems[item["problem"]]
    turns = [item["tutor"]] if isinstance(item["tutor"], str) else list(item["tutor"])
    texts = [item.get("first", problem["first"])] + turns
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(texts)]
    metadata = {"chunk_id": f"chunk-{item['problem']}", **METADATA}
    reference = item.get("reference", problem["reference"])
    if reference:
        metadata["reference_answer"] = reference
    return {"label": item["label"], "topic": problem["topic"], "key": item["problem"], "messages": messages, "metadata": metadata,
            "note": item["note"], "layer": item.get("layer")}


def build() -> tuple[list[dict], list[dict], list[dict]]:
    cases = yaml.safe_load((HERE / "cases.yaml").read_text(encoding="utf-8"))
    counters: dict[str, int] = {}
    splits: dict[str, list[dict]] = {"dev": [], "heldout": []}
    for split, prefix in (("dev", ""), ("heldout", "h")):
        for item in cases[split]:
            case = record(item, cases["problems"])
            counters[prefix + case["label"]] = counters.get(prefix + case["label"], 0) + 1
            splits[split].append({
                "id": f"{prefix}{case['label']}-{counters[prefix + case['label']]:03d}-{case['key']}",
                "messages": case["messages"],
                "metadata": case["metadata"],
                "eval": {"label": case["label"], "topic": case["topic"], "layer": case["layer"], "note": case["note"], "split": split},
            })
    dedup = [{
        "id": item["id"],
        "messages": [{"role": "user", "content": item["first"]}, {"role": "assistant", "content": item["tutor"]}],
        "metadata": {"chunk_id": "chunk-dedup", "source": "eval"},
        "eval": {"expect": item["expect"], "duplicate_of": item["duplicate_of"], "note": item["note"]},
    } for item in cases["dedup"]]
    return splits["dev"], splits["heldout"], dedup


def render(records: list[dict]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def main() -> None:
    dev, held, dedup = build()
    for name, records in (("eval.jsonl", dev), ("heldout.jsonl", held), ("dedup.jsonl", dedup)):
        (HERE / name).write_text(render(records), encoding="utf-8")
        counts: dict[str, int] = {}
        for record in records:
            key = record["eval"].get("label") or record["eval"].get("expect")
            counts[key] = counts.get(key, 0) + 1
        print(f"{name}: {len(records)} records {counts}")


if __name__ == "__main__":
    main()
