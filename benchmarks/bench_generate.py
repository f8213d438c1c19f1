"""Benchmark: the generation stage against a simulated endpoint with a server-side concurrency cap
and variable latency, compared with running the same flow through plain sdg_hub.

    .venv/bin/python benchmarks/bench_generate.py                 # defaults below, ~2 minutes
    .venv/bin/python benchmarks/bench_generate.py --rows 120 --cap 32 --latency 0.5:1.5 --flow socratic-multi-turn

The simulated endpoint (socratic_sdg.testing.fake_openai in its own process) serves at most ``--cap`` requests at
once, each taking a uniformly random ``--latency`` (extra requests queue, as in vLLM's scheduler);
its capacity is ``cap / mean latency`` requests per second. Each contender gets the same rows and
``max_concurrency = cap`` and checkpoints as it goes:

* socratic-sdg: ``generate.run(..., GenerateOptions(max_concurrency=C, checkpoint_dir=...))``;
* sdg_hub: ``flow.generate(df, max_concurrency=C, checkpoint_dir=..., save_freq=...)`` (and, for
  reference, without checkpointing).

Printed: achieved requests/s, as a fraction of capacity, client CPU per request, and the speed-up.

``bench_generate.py best-of-k`` measures what best of k tutor replies costs: the same rows generated
with ``tutor_candidates`` k = 1, 2, 3 against a simulated endpoint whose tutor replies leak the answer
at ``--leak-rates``, each run then filtered; printed per k: requests and tokens per accepted
conversation, and preference pairs, for an endpoint that answers the chat API's ``n`` (vLLM) and one
that does not (a request per candidate).

Other benchmarks reuse the simulator: ``start_endpoint(latency, cap, replies=..., log_requests=False)``
starts it in its own process with their own replies (``bench_generate.py serve ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("TQDM_DISABLE", "1")  # sdg_hub draws a progress bar per block call otherwise

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stats(api_base: str) -> dict:
    with urllib.request.urlopen(api_base.rsplit("/v1", 1)[0] + "/stats", timeout=10) as response:
        return json.loads(response.read())


endpoint_stats = _stats  # the simulator's counters (requests, completed, tokens, max_in_flight...)


def start_endpoint(latency: str, cap: int, replies: str | None = None, log_requests: bool = True) -> tuple[subprocess.Popen, str]:
    """Start the simulated endpoint (socratic_sdg.testing.fake_openai) in its own process: ``(process, api_base)``.

    ``latency`` is ``LOW:HIGH`` seconds (or one number), ``cap`` the server-side concurrency cap.
    ``replies`` (``path/to/file.py:function``) replaces the simulator's canned replies: the function
    gets a request's ``messages`` and returns the reply text (None: the canned reply). With
    ``log_requests=False`` the simulator does not keep every request it received (``prompts``,
    ``calls``), so its memory stays flat over long runs. Stop it with ``process.kill()``.
    """
    if replies is None and log_requests:
        command = [sys.executable, "-m", "socratic_sdg.testing.fake_openai", "--latency", latency, "--max-concurrent", str(cap)]
    else:
        command = [sys.executable, str(Path(__file__).resolve()), "serve", "--latency", latency, "--max-concurrent", str(cap)]
        command += (["--replies", replies] if replies else []) + ([] if log_requests else ["--no-log"])
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    api_base = server.stdout.readline().strip()
    if not api_base.startswith("http"):
        server.kill()
        server.wait()
        raise RuntimeError(f"the simulated endpoint did not start (printed {api_base!r})")
    return server, api_base


class _Discard(list):
    """A request log that keeps nothing."""

    def append(self, item) -> None:
        pass


def serve(argv: list[str]) -> None:
    """``bench_generate.py serve``: the simulated endpoint with pluggable replies (see start_endpoint)."""
    import importlib.util

    from socratic_sdg.testing import fake_openai

    parser = argparse.ArgumentParser(prog="bench_generate.py serve")
    parser.add_argument("--latency", default="0")
    parser.add_argument("--max-concurrent", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replies", help="path/to/file.py:function(messages) -> str | None")
    parser.add_argument("--no-log", action="store_true", help="do not keep the request log")
    args = parser.parse_args(argv)
    server = fake_openai.FakeOpenAI(latency=fake_openai._parse_latency(args.latency), max_concurrent=args.max_concurrent or None, seed=args.seed)
    if args.replies:
        path, _, name = args.replies.rpartition(":")
        spec = importlib.util.spec_from_file_location("_simulated_replies", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        custom, canned = getattr(module, name), server.reply_for
        server.reply_for = lambda messages: custom(messages) or canned(messages)
    if args.no_log:
        server.prompts, server.calls = _Discard(), _Discard()
    fake_openai.serve_until_killed(server)


def _chunks(n: int) -> list[dict]:
    text = (
        "The gradient of a differentiable function f(x, y) is the vector of its partial derivatives, "
        "grad f = (df/dx, df/dy). It points in the direction of steepest ascent, and its length is the "
        "rate of increase in that direction. For f(x, y) = x^2 + y^2 the gradient is (2x, 2y). "
    )
    return [
        {"chunk_id": f"chunk-{i}", "doc_id": "bench", "source": "bench.pdf", "text": f"Section {i}. {text}", "headings": ["Calculus", "Gradients"]}
        for i in range(n)
    ]


def _measure(label: str, api_base: str, requests_expected: int, capacity: float, fn) -> dict:
    before = _stats(api_base)
    cpu0, wall0 = _cpu(), time.perf_counter()
    fn()
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    after = _stats(api_base)
    completed = after["completed"] - before["completed"]
    assert completed >= requests_expected, f"{label}: {completed} requests completed, expected {requests_expected}"
    rate = completed / wall
    return {
        "label": label,
        "wall_seconds": round(wall, 2),
        "requests": completed,
        "requests_per_second": round(rate, 2),
        "fraction_of_capacity": round(rate / capacity, 4),
        "client_cpu_ms_per_request": round(1000 * cpu / completed, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=240, help="input rows (chunks, one conversation each)")
    parser.add_argument("--cap", type=int, default=16, help="server-side concurrency cap (also max_concurrency)")
    parser.add_argument("--latency", default="0.2:0.6", help="per-request latency range LOW:HIGH seconds (uniform)")
    parser.add_argument("--flow", default="socratic-single-turn")
    parser.add_argument("--save-freq", type=int, default=0, help="sdg_hub save_freq (default: 2 x cap)")
    parser.add_argument("--skip-plain-without-checkpoint", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    low, high = (float(x) for x in args.latency.split(":"))
    capacity = args.cap / ((low + high) / 2)
    server, api_base = start_endpoint(args.latency, args.cap)
    try:
        import pandas as pd
        from sdg_hub import Flow

        from socratic_sdg import generate

        from socratic_sdg.generate import RequestPolicy
        from socratic_sdg.endpoint import EndpointConfig
        from socratic_sdg.generate.catalog import load_diversity
        from socratic_sdg.records import write_jsonl

        endpoint = EndpointConfig(api_base=api_base, model="fake-model", api_key="bench")
        work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
        write_jsonl(work / "chunks.jsonl", _chunks(args.rows))
        flow_path = generate.resolve_flow_path(generate.GenerateOptions(flow_id=args.flow))
        llm_blocks = Flow.from_yaml(str(flow_path)).blocks
        per_row = sum(1 for b in llm_blocks if b.__class__.__name__ == "LLMChatBlock")
        expected = args.rows * per_row
        save_freq = args.save_freq or 2 * args.cap
        print(f"simulated endpoint: {args.cap} slots, latency {low:.2f}-{high:.2f} s (mean {(low + high) / 2:.2f} s) -> capacity {capacity:.1f} requests/s")
        print(f"flow {args.flow}: {args.rows} rows x {per_row} requests = {expected} requests; max_concurrency {args.cap}; sdg_hub save_freq {save_freq}")
        print(f"ideal time at capacity: {expected / capacity:.1f} s\n", flush=True)

        # warm up imports and connections outside the measurements
        generate.run(work / "chunks.jsonl", work / "warm", generate.GenerateOptions(flow_id=args.flow, max_chunks=2), endpoint)

        results = []

        def ours():
            options = generate.GenerateOptions(flow_id=args.flow, checkpoint_dir=str(work / "ckpt-ours"), requests=RequestPolicy(max_concurrency=args.cap))
            result = generate.run(work / "chunks.jsonl", work / "ours", options, endpoint)
            assert result.output_rows == args.rows and result.failed_rows == 0, result.metrics()

        results.append(_measure("socratic-sdg engine (checkpointed)", api_base, expected, capacity, ours))
        print(_line(results[-1]), flush=True)

        options = generate.GenerateOptions(flow_id=args.flow)
        required = list(Flow.from_yaml(str(flow_path)).metadata.dataset_requirements.required_columns or [])
        rows = generate.chunk_rows(_chunks(args.rows), options, load_diversity(flow_path), required)

        def plain(checkpoint: bool):
            def go():
                flow = Flow.from_yaml(str(flow_path))
                flow.set_model_config(model=endpoint.litellm_model, api_base=api_base, api_key="bench", num_retries=3, timeout=120)
                kwargs = {"checkpoint_dir": str(work / "ckpt-plain"), "save_freq": save_freq} if checkpoint else {}
                out = flow.generate(pd.DataFrame(rows), max_concurrency=args.cap, **kwargs)
                assert len(out) == args.rows

            return go

        results.append(_measure(f"sdg_hub flow.generate (checkpoint, save_freq={save_freq})", api_base, expected, capacity, plain(True)))
        print(_line(results[-1]), flush=True)
        if not args.skip_plain_without_checkpoint:
            results.append(_measure("sdg_hub flow.generate (no checkpoint)", api_base, expected, capacity, plain(False)))
            print(_line(results[-1]), flush=True)

        speedup = results[1]["wall_seconds"] / results[0]["wall_seconds"]
        print(f"\nspeed-up over plain sdg_hub with checkpointing: {speedup:.2f}x")
        if len(results) > 2:
            print(f"speed-up over plain sdg_hub without checkpointing: {results[2]['wall_seconds'] / results[0]['wall_seconds']:.2f}x")
        report = {
            "capacity_requests_per_second": round(capacity, 2),
            "cap": args.cap,
            "latency": [low, high],
            "flow": args.flow,
            "rows": args.rows,
            "requests": expected,
            "results": results,
            "speedup_vs_plain_checkpointed": round(speedup, 3),
        }
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        return report
    finally:
        server.kill()
        server.wait()


def best_of_k(argv: list[str]) -> dict:
    """``bench_generate.py best-of-k``: cost per accepted conversation for k = 1, 2, 3 (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="bench_generate.py best-of-k")
    parser.add_argument("--rows", type=int, default=200, help="input rows (chunks, one conversation each)")
    parser.add_argument("--leak-rates", default="0.1,0.2,0.4,0.6", help="shares of tutor replies that give the answer away")
    parser.add_argument("--candidates", default="1,2,3")
    parser.add_argument("--flow", default="socratic-single-turn")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    from socratic_sdg import export, filtering, generate
    from socratic_sdg.endpoint import EndpointConfig
    from socratic_sdg.records import write_jsonl
    from socratic_sdg.testing.fake_openai import FakeOpenAI

    work = Path(tempfile.mkdtemp(prefix="bench-best-of-k-"))
    write_jsonl(work / "chunks.jsonl", _chunks(args.rows))
    results = []
    print(f"flow {args.flow}, {args.rows} rows; cost per conversation the filter accepts\n")
    print(f"{'endpoint':<10} {'leak':>5} {'k':>2} {'requests':>9} {'tokens':>8} {'accepted':>9} {'req/acc':>8} {'tok/acc':>8} {'pairs':>6}")
    for answers_n in (True, False):
        for leak in (float(x) for x in args.leak_rates.split(",")):
            for k in (int(x) for x in args.candidates.split(",")):
                server = FakeOpenAI(leak_rate=leak, answers_n=answers_n).start()
                try:
                    endpoint = EndpointConfig(api_base=server.api_base, model="fake-model", api_key="bench")
                    run = work / f"n{int(answers_n)}-leak{leak}-k{k}"
                    options = generate.GenerateOptions(flow_id=args.flow, tutor_candidates=k)
                    generate.run(work / "chunks.jsonl", run / "generated", options, endpoint)
                    stats = server.stats()
                finally:
                    server.stop()
                filtered = filtering.run(run / "generated" / "conversations.jsonl", run / "filtered")
                exported = export.run(run / "filtered" / "accepted.jsonl", run / "dataset")
                accepted = filtered.accepted
                tokens = stats["prompt_tokens"] + stats["completion_tokens"]
                pairs = exported.preference["train"] + exported.preference["validation"] if exported.preference else 0
                row = {"answers_n": answers_n, "leak_rate": leak, "tutor_candidates": k, "requests": stats["completed"], "tokens": tokens,
                       "accepted": accepted, "requests_per_accepted": round(stats["completed"] / max(accepted, 1), 3),
                       "tokens_per_accepted": round(tokens / max(accepted, 1), 1), "preference_pairs": pairs}
                results.append(row)
                print(f"{'n' if answers_n else 'no n':<10} {leak:>5.0%} {k:>2} {row['requests']:>9} {tokens:>8} {accepted:>9} "
                      f"{row['requests_per_accepted']:>8.2f} {row['tokens_per_accepted']:>8.0f} {pairs:>6}", flush=True)
    report = {"flow": args.flow, "rows": args.rows, "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _line(r: dict) -> str:
    return (
        f"{r['label']:<52} {r['wall_seconds']:7.1f} s  {r['requests_per_second']:6.1f} req/s  "
        f"{100 * r['fraction_of_capacity']:5.1f} % of capacity  {r['client_cpu_ms_per_request']:5.2f} ms CPU/request"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
    elif sys.argv[1:2] == ["best-of-k"]:
        best_of_k(sys.argv[2:])
    else:
        main()
