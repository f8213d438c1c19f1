"""Quality-filter benchmark: evaluation figures vs the workshop baseline, throughput, dedup at scale.

    .venv/bin/python benchmarks/bench_filter.py [--records 20000] [--dedup-records 100000] [--repeat 3]

0. The headline: the filter on human-labelled tutor replies (samples/tutor-eval, MRBench dev half,
   766 replies by LLMs and human tutors, labelled by people): on the accepted set, the share that
   reveals the answer and the share labelled guiding + actionable + not revealing; recall of good
   replies ending in a question; next to accept-everything and the workshop keyword filter.
1. Leak detection on the labelled sets (tests/data/filter_eval): this filter's deterministic layers
   next to the workshop keyword filter ("the answer is", "the solution is", "therefore, x =" rejected, then a
   "?" or a guiding phrase accepted).
2. Throughput of the deterministic per-record layers (format, rules, leakage: ``check_conversation`` one
   record at a time) on synthetic records that look like generated ones (see
   socratic_sdg.filter_eval.synthetic_records: ~25% leaking, ~10% weak, ~20% multi-turn, every
   record with a reference answer), then a full ``filter.run`` over a JSONL file (parsing, writing;
   dedup off, then on) for the end-to-end figure; then the same layers on the hand-labelled
   records, whose text varies more. Each row shows its time relative to the format layer alone,
   and "pre-checks off" runs the leakage layer's full analysis on every record (same drop reasons,
   which the benchmark checks) to show what the cheap pre-checks save.
3. Dedup on 100,000 records with ~10% injected duplicates (exact copies, reformatted and
   paraphrased questions): records/s, the index's memory, duplicates found.

Times are CPU time of this process (best of ``--repeat``), which is steadier than wall time on a
shared machine (one core: the filter is single-threaded); the end-to-end run reports wall time too.
The filter caches work per text (reference answers, math, student turns): every timed round starts
with empty caches, so a round profits only from repetition inside its own records, as a real run
would.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from socratic_sdg import filtering
from socratic_sdg.filtering import leakage as filter_leakage
from socratic_sdg.testing import filter_eval
from socratic_sdg.filtering.dedup import DedupCandidate, Deduplicator, DedupOptions

EVAL_DIR = ROOT / "tests" / "data" / "filter_eval"


def human_labelled() -> None:
    from socratic_sdg import evaluate

    print("== Human-labelled tutor replies (samples/tutor-eval/mrbench-dev.json; the headline figures) ==")
    replies = evaluate.load(ROOT / "samples" / "tutor-eval" / "mrbench-dev.json")
    options = filtering.FilterOptions(dedup=False, graded_turns="last")
    rows = [(name, evaluate.run_decision(name, replies, decide).overall) for name, decide in (
        ("accept everything", evaluate.accept_all), ("workshop filter", evaluate.workshop_decide),
        ("socratic-sdg filter", evaluate.filter_decide(options)))]
    print("\n".join(evaluate.headline_table(rows, "decision")))
    print()


def evaluation() -> None:
    print("== Leak detection on the labelled sets (positive class: leak) ==")
    decide = filter_eval.filter_decide(filtering.FilterOptions(language="en"))
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
    """Best CPU time of ``repeat`` cold-cache rounds of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        filtering.clear_caches()
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


LAYERS = "format + rules + leakage"
PRECHECKS_OFF = "  same, leakage pre-checks off"


def _row(label: str, count: int, seconds: float, reference: float, note: str = "") -> str:
    return (f"  {label:<34} {count / seconds:9,.0f} records/s  {seconds / count * 1e6:7.1f} us/record  "
            f"{seconds / reference:5.1f}x  {note}").rstrip()


def _layer_rows(records: list[dict], repeat: int) -> tuple[dict[str, float], bool]:
    """Best CPU seconds per configuration of the per-record layers (check_conversation, one record at a
    time), and whether the leakage pre-checks left every record's drop reasons unchanged."""
    rules = filtering.load_rules(None)
    configs = {
        "format": dict(check_rules=False, check_leakage=False),
        "format + rules": dict(check_leakage=False),
        LAYERS: {},
        PRECHECKS_OFF: {},
    }
    best = {label: float("inf") for label in configs}
    for _ in range(repeat):  # interleaved rounds, so a noisy moment does not favour one configuration
        for label, options in configs.items():
            opts = filtering.FilterOptions(dedup=False, **options)
            filter_leakage.PRECHECKS = label != PRECHECKS_OFF
            filtering.clear_caches()
            started = time.process_time()
            for record in records:
                filtering.check_conversation(record, rules, opts)
            best[label] = min(best[label], time.process_time() - started)
    reasons = []
    for enabled in (True, False):  # untimed: the decisions with and without the pre-checks
        filter_leakage.PRECHECKS = enabled
        reasons.append([filtering.check_conversation(record, rules, filtering.FilterOptions(dedup=False))
                        for record in records])
    filter_leakage.PRECHECKS = True
    return best, reasons[0] == reasons[1]


def _print_layers(count: int, best: dict[str, float], same: bool) -> None:
    for label, seconds in best.items():
        print(_row(label, count, seconds, best["format"]))
    print(f"  {'':<34} pre-checks: {best[PRECHECKS_OFF] / best[LAYERS]:.2f}x faster than the full leakage analysis, "
          f"drop reasons {'identical' if same else 'DIFFERENT'} on every record")


def throughput(count: int, repeat: int) -> None:
    print(f"\n== Deterministic layers, one core: CPU time of this process, best of {repeat} rounds, the filter's "
          "caches emptied before each round ==")
    print("  the last column is the time relative to the format layer alone (the cheapest pass, the reference)")
    records = list(filter_eval.synthetic_records(count, seed=42))
    references = {r["metadata"]["reference_answer"] for r in records}
    print(f"-- {count:,} synthetic generated-looking records ({len(references):,} distinct reference answers); "
          "target: format + rules + leakage >= 10,000 records/s --")
    best, same = _layer_rows(records, repeat)
    _print_layers(count, best, same)

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.jsonl"
        filter_eval.write_jsonl_lines(source, records)
        del records  # run() streams; holding 20,000 parsed records would only slow the garbage collector
        for label, opts in (("run() on the JSONL file, dedup off", filtering.FilterOptions(dedup=False)),
                            ("run() on the JSONL file, dedup on", filtering.FilterOptions())):
            wall = time.perf_counter()
            cpu = _best(lambda: filtering.run(source, Path(tmp) / "out", opts), repeat)
            wall = (time.perf_counter() - wall) / repeat
            result = filtering.run(source, Path(tmp) / "out", opts)
            print(_row(label, count, cpu, best["format"],
                       f"~{count / wall:,.0f}/s wall; {result.accepted} accepted, {result.rejected} rejected"))

    # The labelled sets: hand-written, more varied text than the six synthetic templates and little
    # repetition for the caches to exploit.
    labelled = [r for name in ("eval", "heldout") for r in filter_eval.load_labelled(EVAL_DIR / f"{name}.jsonl")]
    rounds = max(repeat, 7)
    print(f"-- the {len(labelled)} hand-labelled records (tests/data/filter_eval), each seen once per round, "
          f"best of {rounds} rounds --")
    best, same = _layer_rows(labelled, rounds)
    _print_layers(len(labelled), best, same)


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
    parser.add_argument("--dedup-records", type=int, default=100000, help="records for the dedup benchmark (0: skip it)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N for timings")
    args = parser.parse_args(argv)
    human_labelled()
    evaluation()
    throughput(args.records, args.repeat)
    if args.dedup_records:
        dedup(args.dedup_records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
