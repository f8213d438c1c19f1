"""Quality-filter benchmark: evaluation figures vs the workshop baseline, throughput, dedup at scale.

    .venv/bin/python benchmarks/bench_filter.py [--records 20000] [--dedup-records 100000] [--repeat 3]

1. Leak detection on the labelled sets (tests/data/filter_eval): this filter's deterministic layers
   next to the workshop keyword filter ("the answer is" rejected, then "what" or "?" accepted).
2. Throughput of the deterministic per-record layers (format, rules, leakage) on synthetic records
   that look like generated ones (see socratic_sdg.filter_eval.synthetic_records: ~25% leaking,
   ~10% weak, ~20% multi-turn, every record with a reference answer), single process, one core:
   per-layer cost in memory, then a full ``filter.run`` over a JSONL file (parsing, writing,
   dedup off) for the end-to-end figure.
3. Dedup on 100,000 records with ~10% injected duplicates (exact copies, reformatted and
   paraphrased questions): records/s, the index's memory, duplicates found.

Times are CPU time of this process (best of ``--repeat``), which is steadier than wall time on a
shared machine; the end-to-end run reports wall time too.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from socratic_sdg import filter as quality_filter  # noqa: E402
from socratic_sdg import filter_eval  # noqa: E402
from socratic_sdg.filter_dedup import DedupCandidate, Deduplicator, DedupOptions  # noqa: E402

EVAL_DIR = ROOT / "tests" / "data" / "filter_eval"


def evaluation() -> None:
    print("== Leak detection on the labelled sets (positive class: leak) ==")
    decide = filter_eval.filter_decide(quality_filter.FilterOptions(language="en"))
    sets = {name: filter_eval.load_labelled(EVAL_DIR / f"{name}.jsonl") for name in ("eval", "heldout")}
    sets["all"] = sets["eval"] + sets["heldout"]
    for name, records in sets.items():
        print(filter_eval.score(records, filter_eval.workshop_decide, f"{name}: workshop baseline").row())
        ours = filter_eval.score(records, decide, f"{name}: this filter")
        print(ours.row())
        for miss in ours.misses:
            print(f"    {miss}")
    judge = filter_eval.score(sets["all"], decide, "all, incl. judge-only", include_judge_cases=True)
    print(f"(accuracy including the {judge.total - filter_eval.score(sets['all'], decide, 'x').total} judge-only "
          f"weak cases, which need the LLM judge: {judge.accuracy:.3f})")


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def throughput(count: int, repeat: int) -> None:
    print(f"\n== Deterministic layers on {count} synthetic generated-looking records, one core ==")
    records = list(filter_eval.synthetic_records(count, seed=42))
    rules = quality_filter.load_rules(None)
    configs = [
        ("format", dict(check_rules=False, check_leakage=False)),
        ("format + rules", dict(check_leakage=False)),
        ("format + rules + leakage", {}),
    ]
    best = {label: float("inf") for label, _ in configs}
    for _ in range(repeat):  # interleaved rounds, so a noisy moment does not favour one configuration
        for label, options in configs:
            opts = quality_filter.FilterOptions(dedup=False, **options)
            started = time.process_time()
            for record in records:
                quality_filter.check_record(record, rules, opts)
            best[label] = min(best[label], time.process_time() - started)
    for label, _ in configs:
        seconds = best[label]
        print(f"  {label:<28} {count / seconds:9,.0f} records/s  ({seconds / count * 1e6:6.1f} us/record)")

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.jsonl"
        filter_eval.write_jsonl_lines(source, records)
        opts = quality_filter.FilterOptions(dedup=False)
        wall = time.perf_counter()
        cpu = _best(lambda: quality_filter.run(source, Path(tmp) / "out", opts), repeat)
        wall = (time.perf_counter() - wall) / repeat
        result = quality_filter.run(source, Path(tmp) / "out", opts)
        print(f"  {'run() on a JSONL file':<28} {count / cpu:9,.0f} records/s CPU, ~{count / wall:,.0f} wall "
              f"(read, all per-record layers, write; {result.accepted} accepted, {result.rejected} rejected)")
        opts = quality_filter.FilterOptions()
        cpu = _best(lambda: quality_filter.run(source, Path(tmp) / "out", opts), 1)
        print(f"  {'run() with dedup':<28} {count / cpu:9,.0f} records/s CPU")


def _dedup_pass(items: list[DedupCandidate]) -> tuple[Deduplicator, list, float]:
    deduplicator = Deduplicator(DedupOptions())
    started = time.process_time()
    decisions = []
    for start in range(0, len(items), 512):
        decisions += deduplicator.check_block(items[start:start + 512])
    return deduplicator, decisions, time.process_time() - started


def dedup(count: int) -> None:
    print(f"\n== Dedup on {count:,} records (~10% injected duplicates) ==")
    records = list(filter_eval.synthetic_records(count, seed=7, duplicate_rate=0.1))
    items = [DedupCandidate(r["id"], r["messages"]) for r in records]
    deduplicator, decisions, seconds = _dedup_pass(items)
    # Memory in a second pass (tracing slows Python down, so it is not timed).
    tracemalloc.start()
    traced, _, _ = _dedup_pass(items)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del traced
    injected = [(r, d) for r, d in zip(records, decisions) if "duplicate_of" in r["metadata"]]
    caught = sum(1 for _, (reason, _) in injected if reason is not None)
    other = sum(1 for r, (reason, _) in zip(records, decisions) if reason is not None and "duplicate_of" not in r["metadata"])
    print(f"  {count / seconds:9,.0f} records/s  ({seconds:.1f} s CPU; peak traced memory {peak / 2**20:.0f} MB, "
          f"index of {deduplicator.metrics()['indexed_questions']:,} records)")
    print(f"  injected duplicates caught: {caught}/{len(injected)} (the rest are paraphrases below the 0.8 "
          f"similarity threshold); other records rejected as duplicates: {other} (the generator's templates "
          "repeat some questions verbatim)")
    print("  by reason:", json.dumps(deduplicator.metrics()["duplicates"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20000, help="records for the throughput benchmark")
    parser.add_argument("--dedup-records", type=int, default=100000, help="records for the dedup benchmark")
    parser.add_argument("--repeat", type=int, default=3, help="best of N for timings")
    args = parser.parse_args(argv)
    evaluation()
    throughput(args.records, args.repeat)
    dedup(args.dedup_records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
