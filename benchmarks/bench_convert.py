"""Conversion throughput: docling's native pipeline in one process vs the stage's worker pool.

    .venv/bin/python benchmarks/bench_convert.py [--copies 3] [--workers 0]

The corpus is the sample PDFs repeated (each copy made distinct by a trailing comment, so the
content-addressed cache cannot serve one copy for another). Both runs convert the same files with
the same options; the figure that matters is the ratio, measured in one script on one machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_corpus(folder: Path, copies: int) -> list[Path]:
    paths = []
    for copy in range(copies):
        for pdf in sorted((ROOT / "samples" / "pdfs").glob("*.pdf")):
            target = folder / f"{pdf.stem}-{copy}.pdf"
            target.write_bytes(pdf.read_bytes() + f"\n% copy {copy}\n".encode())
            paths.append(target)
    return paths


def single_process(paths: list[Path]) -> tuple[int, float]:
    """Baseline: one DocumentConverter in this process, one file after another."""
    from socratic_sdg import convert

    options = convert.ConvertOptions()
    started = time.perf_counter()
    converter = convert.make_converter(options)
    pages = sum(convert.convert_one(converter, path, options)[2] for path in paths)
    return pages, time.perf_counter() - started


def pooled(folder: Path, workers: int) -> tuple[int, float]:
    from socratic_sdg import convert

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = convert.run(folder, out, convert.ConvertOptions(workers=workers, cache_dir=os.path.join(out, "cache")))
        return result.pages, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="0 = one per core")
    args = parser.parse_args()
    workers = args.workers or os.cpu_count() or 1
    folder = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    try:
        paths = make_corpus(folder, args.copies)
        pooled(folder, workers)  # warm-up: page cache, forkserver start (paid once per process)
        base_pages, base_seconds = single_process(paths)
        pool_pages, pool_seconds = pooled(folder, workers)
    finally:
        shutil.rmtree(folder)
    assert base_pages == pool_pages, (base_pages, pool_pages)
    base_rate, pool_rate = base_pages / base_seconds, pool_pages / pool_seconds
    print(f"corpus: {len(paths)} PDFs, {base_pages} pages; {os.cpu_count()} cores; native pipeline")
    print(f"single process : {base_seconds:6.2f} s  {base_rate:6.1f} pages/s")
    print(f"pool ({workers} workers): {pool_seconds:6.2f} s  {pool_rate:6.1f} pages/s")
    print(f"speed-up       : {pool_rate / base_rate:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
