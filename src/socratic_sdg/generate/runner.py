"""The flow runner: each row streams through the flow's blocks on its own (LLM blocks through the gateway, cheap blocks coalesced), so no row waits for a batch.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from .gateway import LLMGateway, RequestFailure, StopRun, _short


# --- running a flow ---------------------------------------------------------------------------

_INLINE_MODULES = ("sdg_hub.core.blocks.transform", "sdg_hub.core.blocks.parsing", "sdg_hub.core.blocks.filtering")
_INLINE_CLASSES = {"PromptBuilderBlock", "LLMResponseExtractorBlock"}


@dataclass
class Step:
    block: Any
    name: str
    mode: str  # "llm" | "inline" | "thread"
    kwargs: dict  # runtime params (non-LLM) or completion kwargs (LLM)
    input_col: str = ""
    output_col: str = ""
    candidates: int = 1  # a tutor block with tutor_candidates: completions asked for, of which the chooser keeps one


@dataclass
class RowResult:
    row_id: str
    outputs: list[dict]  # the flow's output records for this row, in order
    failure: tuple[str, str, str] | None  # (kind, reason, block) of the first thing that went wrong
    truncated: list[str]  # blocks whose completion hit max_tokens


class BlockFailure(Exception):
    def __init__(self, kind: str, reason: str, block: str):
        super().__init__(reason)
        self.kind, self.reason, self.block = kind, reason, block


def _llm_completion_kwargs(block, params: dict) -> dict:
    """The completion kwargs sdg_hub's LLMChatBlock would send with these runtime params."""
    fields = block.__class__.model_fields
    overrides = {k: v for k, v in params.items() if k in fields and k not in ("block_name", "input_cols", "output_cols")}
    saved = {k: getattr(block, k) for k in overrides}
    try:
        for key, value in overrides.items():
            setattr(block, key, value)
        return block._build_completion_kwargs(**params)
    finally:
        for key, value in saved.items():
            setattr(block, key, value)


def build_steps(flow, runtime_params: dict | None) -> list[Step]:
    """The flow's blocks with their runtime params applied; LLM blocks resolved to completion kwargs."""
    from sdg_hub.core.blocks.llm.llm_chat_block import LLMChatBlock

    runtime_params = runtime_params or {}
    unknown = set(runtime_params) - {b.block_name for b in flow.blocks}
    if unknown:
        from .errors import GenerateError

        raise GenerateError(
            f"runtime_params name block(s) {', '.join(sorted(unknown))} that the flow does not have; "
            f"its blocks are: {', '.join(b.block_name for b in flow.blocks)}"
        )
    steps = []
    for block in flow.blocks:
        params = dict(runtime_params.get(block.block_name, {}))
        if isinstance(block, LLMChatBlock):
            kwargs = _llm_completion_kwargs(block, params)
            steps.append(Step(block, block.block_name, "llm", kwargs, block.input_cols[0], block.output_cols[0]))
        elif block.__class__.__module__.startswith(_INLINE_MODULES) or block.__class__.__name__ in _INLINE_CLASSES:
            steps.append(Step(block, block.block_name, "inline", params))
        else:
            steps.append(Step(block, block.block_name, "thread", params))
    return steps


def _seed_for(base: int | None, row_id: str, block: str) -> int | None:
    if base is None:
        return None
    import hashlib

    digest = hashlib.sha256(f"{base}\x00{row_id}\x00{block}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _valid_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and m.get("role") is not None and m.get("content") is not None for m in value)
    )


_OBJECT_STRINGS: bool | None = None


def _object_strings_supported() -> bool:
    """Whether pandas still lets a caller turn off Arrow-backed strings (pandas 3 deprecates it, 4 removes it)."""
    global _OBJECT_STRINGS
    if _OBJECT_STRINGS is None:
        import pandas as pd

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with pd.option_context("future.infer_string", False):
                    pass
            _OBJECT_STRINGS = True
        except (KeyError, ValueError, pd.errors.OptionError):
            _OBJECT_STRINGS = False
    return _OBJECT_STRINGS


class Segment:
    """Consecutive non-LLM blocks, called on all the rows that reach them at about the same time.

    sdg_hub's blocks cost a few milliseconds per call whatever the number of rows (DataFrame
    building, validation), so rows are coalesced: a segment runs at once when it has been idle for
    ``interval`` seconds, otherwise it waits for the interval to pass and takes every row that arrived
    meanwhile: one row at a time when the run is quiet, dozens per call when responses pour in (on
    2 cores this halves the client's CPU per row at 200 requests/s). Blocks see whole rows (all
    records of a row together); row-wise blocks, which sdg_hub's are, give the same output per row
    however rows are grouped.
    """

    def __init__(self, steps: list[Step], max_group: int = 0, interval: float = 0.1):
        self.steps = steps
        self.max_group = max_group  # rows per block call at most (0 = no limit)
        self.interval = interval  # at most one call per interval: rows arriving meanwhile are grouped
        self.threaded = any(s.mode == "thread" for s in steps)
        self._pending: list[tuple[str, list[dict], asyncio.Future]] = []
        self._last_start = -1e9
        self.calls = 0
        self.rows = 0

    async def submit(self, row_id: str, records: list[dict]) -> list[dict]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._pending:
            # Idle segment: run at once (next loop turn). Busy one: wait for the interval to pass, so
            # that under load one call serves every row that arrived meanwhile.
            wait = self._last_start + self.interval - loop.time()
            if wait > 0:
                loop.call_later(wait, self._start)
            else:
                loop.call_soon(self._start)
        self._pending.append((row_id, records, future))
        return await future

    def _start(self) -> None:
        self._last_start = asyncio.get_running_loop().time()
        items, self._pending = self._pending, []
        size = self.max_group or len(items)
        for start in range(0, len(items), size):
            group = items[start : start + size]
            if self.threaded:
                asyncio.get_running_loop().create_task(self._run_threaded(group))
            else:
                try:
                    results = self._run_items(group)
                except Exception as exc:  # a bug, not a block failure: the waiting rows re-raise it
                    results = {row_id: exc for row_id, _, _ in group}
                self._settle(group, results)

    async def _run_threaded(self, items) -> None:
        try:
            results = await asyncio.to_thread(self._run_items, items)
        except BaseException as exc:  # noqa: BLE001  (handed to the waiting rows)
            results = {row_id: exc for row_id, _, _ in items}
        self._settle(items, results)

    @staticmethod
    def _settle(items, results: dict) -> None:
        for row_id, _, future in items:
            if future.done():
                continue
            result = results[row_id]
            if isinstance(result, BaseException) and not isinstance(result, BlockFailure):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _run_items(self, items) -> dict:
        """row_id -> output records or BlockFailure; a failing group is re-run row by row to isolate the bad row."""
        self.calls += 1
        self.rows += len(items)
        try:
            return self._run_blocks([(row_id, records) for row_id, records, _ in items])
        except BlockFailure as failure:
            if len(items) == 1:
                return {items[0][0]: failure}
        results = {}
        for row_id, records, _ in items:
            try:
                results.update(self._run_blocks([(row_id, records)]))
            except BlockFailure as failure:
                results[row_id] = failure
        return results

    def _run_blocks(self, group: list[tuple[str, list[dict]]]) -> dict:
        import pandas as pd

        if self.threaded or not _object_strings_supported():
            return self._run_blocks_in(group)
        # Plain Python strings (object columns) instead of pandas 3's Arrow strings: sdg_hub's blocks were
        # written for them, and small frames build ~1.6x faster. Scoped to this call, on the loop's thread.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"The 'future\.infer_string' option is deprecated")
            with pd.option_context("future.infer_string", False):
                return self._run_blocks_in(group)

    def _run_blocks_in(self, group: list[tuple[str, list[dict]]]) -> dict:
        import pandas as pd

        row_ids = [row_id for row_id, _ in group]
        records = [record for _, rows in group for record in rows]
        outputs: dict[str, Any] = {}
        frame = pd.DataFrame(records)
        for step in self.steps:
            before = set(frame["row_id"]) if len(frame) else set()
            try:
                frame = step.block(frame, **step.kwargs)
            except Exception as exc:
                raise BlockFailure("block_error", f"block {step.name!r} failed: {_short(str(exc) or exc.__class__.__name__)}", step.name) from None
            if len(frame) and "row_id" not in frame.columns:
                if len(before) != 1:
                    raise BlockFailure("block_error", f"block {step.name!r} removed the row_id column, so its rows cannot be traced", step.name)
                frame = frame.assign(row_id=next(iter(before)))
            after = set(frame["row_id"]) if len(frame) else set()
            for row_id in before - after:
                outputs[row_id] = BlockFailure("filtered", f"the flow's block {step.name!r} dropped this row", step.name)
            if not len(frame):
                break
        by_row: dict[str, list[dict]] = {}
        for record in frame.to_dict(orient="records") if len(frame) else []:
            by_row.setdefault(record["row_id"], []).append(record)
        for row_id in row_ids:
            if row_id in by_row:
                outputs[row_id] = by_row[row_id]
            else:
                outputs.setdefault(row_id, BlockFailure("filtered", "the flow dropped this row", self.steps[-1].name))
        return outputs


class FlowRunner:
    """Runs rows through a flow: LLM blocks through the gateway, other blocks in coalesced segments."""

    def __init__(self, steps: list[Step], gateway: LLMGateway, seed: int | None = None, max_group: int = 0, chooser=None):
        self.gateway = gateway
        self.seed = seed
        self.chooser = chooser  # keeps one of a tutor step's candidates (candidates.CandidateChooser), after the blocks that extract them
        # Whether the endpoint answers `n` > 1 with n choices (None: not asked yet). vLLM and llama.cpp do; a server
        # or proxy that answers one choice (or refuses `n`) gets one request per candidate for the rest of the run.
        self.n_supported: bool | None = None
        self.plan: list[tuple[int, Step | Segment]] = []  # (stage index, LLM step or segment)
        pending: list[Step] = []
        llm_index = 0
        for step in steps:
            if step.mode == "llm":
                if pending:
                    self.plan.append((llm_index, Segment(pending, max_group)))
                    pending = []
                llm_index += 1
                self.plan.append((llm_index, step))
            else:
                pending.append(step)
        if pending:
            self.plan.append((llm_index, Segment(pending, max_group)))

    @property
    def segments(self) -> list[Segment]:
        return [part for _, part in self.plan if isinstance(part, Segment)]

    async def run_row(self, row: dict, order: int) -> RowResult:
        row_id = row["row_id"]
        records = [row]
        failure: tuple[str, str, str] | None = None
        truncated: list[str] = []
        choosing = False  # a tutor step's candidates are in the records: keep one once they are extracted
        for stage, part in self.plan:
            if isinstance(part, Segment):
                result = await part.submit(row_id, records)
                if isinstance(result, BlockFailure):  # a block failed on this row, or dropped all its records
                    return RowResult(row_id, [], failure or (result.kind, result.reason, result.block), truncated)
                records = result
                if choosing:
                    records, choosing = self.chooser.choose(records), False
            else:
                if part.candidates > 1:
                    from .candidates import GROUP_COLUMN

                    records, choosing = [{**record, GROUP_COLUMN: index} for index, record in enumerate(records)], True
                records, step_failure = await self._llm(part, stage, order, row_id, records, truncated)
                failure = failure or step_failure
                if not records:
                    return RowResult(row_id, [], failure, truncated)
        return RowResult(row_id, records, failure, truncated)

    async def _llm(self, step: Step, stage: int, order: int, row_id: str, records: list[dict], truncated: list[str]):
        priority = (stage, order)
        seed = _seed_for(self.seed, row_id, step.name)
        for record in records:
            if not _valid_messages(record.get(step.input_col)):
                return [], ("block_error", f"block {step.name!r}: column {step.input_col!r} is not a list of chat messages", step.name)
        if step.candidates > 1:
            results = await asyncio.gather(*(self._candidates(r[step.input_col], step, priority, row_id) for r in records))
        elif len(records) == 1:
            results = [await _capture(self.gateway.complete(records[0][step.input_col], step.kwargs, priority, seed))]
        else:
            results = await asyncio.gather(
                *(_capture(self.gateway.complete(r[step.input_col], step.kwargs, priority, seed)) for r in records)
            )
        kept, failure = [], None
        for record, result in zip(records, results):
            if isinstance(result, RequestFailure):
                failure = failure or (result.kind, f"{step.name}: {result.reason}", step.name)
                continue
            record = dict(record)
            record[step.output_col] = result.messages
            kept.append(record)
            if result.truncated and step.name not in truncated:
                truncated.append(step.name)
        return kept, failure


    async def _candidates(self, messages: list[dict], step: Step, priority: tuple, row_id: str):
        """``step.candidates`` completions of one prompt as one response: one request asking for ``n`` of
        them while the endpoint answers ``n`` (the prompt is read once), else one request each, with
        its own seed so that they differ. A failure only when no candidate came back."""
        wanted = step.candidates
        got: list = []
        failure = None
        if self.n_supported is not False:
            result = await _capture(self.gateway.complete(messages, {**step.kwargs, "n": wanted}, priority, _seed_for(self.seed, row_id, step.name)))
            if isinstance(result, RequestFailure):
                if result.kind not in ("bad_request", "client_error"):
                    return result
                self.n_supported = False  # refused, perhaps for `n`: ask separately from now on (a bad prompt fails there too)
            else:
                got.append(result)
                if self.n_supported is None:
                    self.n_supported = len(result.messages) >= wanted
        missing = wanted - sum(len(r.messages) for r in got)
        if missing > 0:
            singles = await asyncio.gather(*(
                _capture(self.gateway.complete(messages, {**step.kwargs, "n": 1}, priority, _seed_for(self.seed, row_id, f"{step.name}#{index}")))
                for index in range(wanted - missing, wanted)))
            failure = next((r for r in singles if isinstance(r, RequestFailure)), None)
            got.extend(r for r in singles if not isinstance(r, RequestFailure))
        if not got:
            return failure
        return replace(got[0], messages=[m for r in got for m in r.messages][:wanted], truncated=any(r.truncated for r in got))


async def _capture(awaitable):
    """The result, or the RequestFailure (other exceptions, e.g. an abort, propagate)."""
    try:
        return await awaitable
    except RequestFailure as failure:
        return failure


@dataclass
class SchedulerReport:
    wall_seconds: float = 0.0
    mean_in_flight: float = 0.0
    max_in_flight: int = 0
    block_calls: int = 0
    rows_per_block_call: float = 0.0
    stopped_early: bool = False  # should_start said no before the rows ran out


async def run_rows(
    runner: FlowRunner,
    rows: Iterable[dict],
    on_row_done: Callable[[dict, RowResult], Awaitable[None]],
    max_active_rows: int,
    should_start: Callable[[int], bool] | None = None,
) -> SchedulerReport:
    """Run the rows (any iterable, consumed lazily), keeping about ``max_active_rows`` in the flow at once.

    More rows than request slots are kept active so that a request slot freed by one row is taken at
    once by a request waiting in another (the limiter keeps the in-flight count at its limit).
    ``should_start(active_rows)`` is asked before each new row; while it says no, the scheduler waits
    for rows in the flow to finish and asks again; a no with no row in the flow ends the run
    (``SchedulerReport.stopped_early``). ``on_row_done`` raising :class:`StopRun` ends it at once:
    the rows still in the flow are cancelled and not reported.
    """
    gateway = runner.gateway
    await gateway.transport.start()
    try:
        return await _run_rows(runner, rows, on_row_done, max_active_rows, should_start)
    finally:
        await gateway.transport.close()


async def _run_rows(runner, rows, on_row_done, max_active_rows, should_start) -> SchedulerReport:
    gateway = runner.gateway
    gateway.limiter.reset_clock()
    started = time.monotonic()
    active = 0
    slot_freed = asyncio.Event()
    tasks: set[asyncio.Task] = set()
    error: list[BaseException] = []
    stopped: list[StopRun] = []  # a callback ended the run early
    stopped_early = False

    async def one(order: int, row: dict) -> None:
        nonlocal active
        try:
            result = await runner.run_row(row, order)
            await on_row_done(row, result)
        except asyncio.CancelledError:
            raise
        except StopRun as stop:
            stopped.append(stop)
        except BaseException as exc:  # an abort or a bug: stop the run, re-raised below
            error.append(exc)
        finally:
            active -= 1
            slot_freed.set()

    try:
        for order, row in enumerate(rows):
            while active >= max_active_rows and not error and not stopped:
                slot_freed.clear()
                await slot_freed.wait()
            if error or stopped:
                break
            # A "no" while rows are still in the flow may turn into a "yes" once they finish
            # (fewer accepted than expected, budget left): wait for them before giving up.
            while should_start is not None and not should_start(active) and not error and not stopped:
                if active == 0:
                    stopped_early = True
                    break
                slot_freed.clear()
                await slot_freed.wait()
            if stopped_early or error or stopped:
                break
            active += 1
            task = asyncio.create_task(one(order, row))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        gateway.limiter.drain()
        while active > 0 and not error and not stopped:
            slot_freed.clear()
            await slot_freed.wait()
    finally:
        if tasks:
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    if error:
        raise error[0]
    stopped_early = stopped_early or bool(stopped)
    calls = sum(s.calls for s in runner.segments)
    return SchedulerReport(
        wall_seconds=time.monotonic() - started,
        mean_in_flight=gateway.limiter.mean_active(),
        max_in_flight=gateway.limiter.max_active,
        block_calls=calls,
        rows_per_block_call=(sum(s.rows for s in runner.segments) / calls) if calls else 0.0,
        stopped_early=stopped_early,
    )
