"""Durable progress of a generation run: an append-only JSONL of finished rows in a checkpoint folder.

Layout of the folder (on a cluster, a path on a PVC):

* ``generate_manifest.json``: what the rows were generated with (flow and its files' hash, model,
  seed, runtime params...). Resuming with different settings is refused with a message naming
  what differs, so one dataset never silently mixes two configurations.
* ``generate_rows.jsonl``: one line per finished input row, ``{"row_id", "status": "done",
  "conversations": [...]}`` or ``{"row_id", "status": "failed", "kind", "reason", "block"}``.
  Lines are appended in one ``write`` and ``fsync``-ed; a line torn by a kill is cut off on the next
  open. A row is written once when it finishes; a failed row that a resumed run retries gets a second
  line, and the last line of a row wins, except that "done" is never replaced.
* ``.generate.lock``: an exclusive ``flock`` held while a run uses the folder.

Memory stays flat however many rows a run has: the checkpoint keeps, per row, only its status and
where its line is in the file (``entries``); the conversations are read back from disk one row at a
time (:meth:`Checkpoint.read_entry`) when the outputs are written.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import GenerateError
from ..records import dumps, read_json, write_json

MANIFEST = "generate_manifest.json"
ROWS = "generate_rows.jsonl"
LOCK = ".generate.lock"
FORMAT = 1


class Checkpoint:
    def __init__(self, directory: str | os.PathLike[str], manifest: dict, save_freq: int = 16, save_interval_seconds: float = 1.0,
                 discard_mismatch: bool = False):
        self.directory = Path(directory)
        self.discard_mismatch = discard_mismatch  # a temporary checkpoint of other settings is dropped, not refused
        self.manifest = {"format": FORMAT, **manifest}
        self.save_freq = max(1, int(save_freq))
        self.save_interval_seconds = save_interval_seconds
        self.entries: dict[str, dict] = {}  # row_id -> the entry without its conversations
        self.torn_bytes = 0  # bytes of a torn last line cut off at open
        self._offsets: dict[str, int] = {}  # row_id -> byte offset of its line in the rows file
        self._pending: list[tuple[str, bytes]] = []
        self._last_flush = time.monotonic()
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._write_lock = threading.Lock()

    @property
    def rows_path(self) -> Path:
        return self.directory / ROWS

    def open(self) -> dict[str, dict]:
        """Lock the folder, check the manifest, index finished rows (row_id -> entry without conversations)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise GenerateError(
                f"another generation run is using the checkpoint folder {self.directory}; wait for it to finish or use another folder"
            ) from None
        manifest_path = self.directory / MANIFEST
        if manifest_path.is_file():
            previous = read_json(manifest_path)
            differs = sorted(k for k in set(previous) | set(self.manifest) if previous.get(k) != self.manifest.get(k))
            if differs and self.discard_mismatch:
                (self.directory / ROWS).unlink(missing_ok=True)
                write_json(manifest_path, self.manifest)
            elif differs:
                self.close()
                details = "; ".join(f"{k}: {previous.get(k)!r} then, {self.manifest.get(k)!r} now" for k in differs)
                raise GenerateError(
                    f"the checkpoint folder {self.directory} holds a run with other settings ({details}); "
                    "resume with the same settings, or use a new checkpoint folder"
                )
        else:
            write_json(manifest_path, self.manifest)
        self.entries = self._load()
        self._fd = os.open(self.rows_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        return self.entries

    def _load(self) -> dict[str, dict]:
        path = self.rows_path
        entries: dict[str, dict] = {}
        if not path.is_file():
            return entries
        with open(path, "r+b") as handle:
            offset = 0
            for line in handle:
                if not line.endswith(b"\n"):  # a line torn by a kill mid-write: cut it off
                    self.torn_bytes = len(line)
                    handle.truncate(offset)
                    handle.flush()
                    os.fsync(handle.fileno())
                    break
                start, offset = offset, offset + len(line)
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # cannot happen with whole-line appends; skip rather than lose the run
                row_id = entry.get("row_id") if isinstance(entry, dict) else None
                if not row_id or entries.get(row_id, {}).get("status") == "done":
                    continue
                entries[row_id] = _summary(entry)
                self._offsets[row_id] = start
        return entries

    def read_entry(self, row_id: str) -> dict | None:
        """The full entry of a row (with its conversations), read back from the rows file."""
        offset = self._offsets.get(row_id)
        if offset is None:
            return None
        with open(self.rows_path, "rb") as handle:
            handle.seek(offset)
            return json.loads(handle.readline())

    def iter_entries(self) -> Iterator[dict]:
        """Every row's current full entry, in file order (one line in memory at a time)."""
        wanted = {offset for offset in self._offsets.values()}
        with open(self.rows_path, "rb") as handle:
            offset = 0
            for line in handle:
                if offset in wanted:
                    yield json.loads(line)
                offset += len(line)

    def add(self, entry: dict) -> None:
        row_id = entry["row_id"]
        if self.entries.get(row_id, {}).get("status") == "done":
            return  # never a second record for a finished row
        self.entries[row_id] = _summary(entry)
        self._pending.append((row_id, (dumps(entry) + "\n").encode("utf-8")))

    def due(self) -> bool:
        return bool(self._pending) and (len(self._pending) >= self.save_freq or time.monotonic() - self._last_flush >= self.save_interval_seconds)

    def take_pending(self) -> list[tuple[str, bytes]]:
        pending, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        return pending

    def write(self, lines: list[tuple[str, bytes]]) -> None:
        """Append and fsync (safe to call from a worker thread; calls are serialised)."""
        if not lines:
            return
        with self._write_lock:
            assert self._fd is not None, "checkpoint not open"
            offset = os.lseek(self._fd, 0, os.SEEK_END)  # only this run appends: the folder is locked
            for row_id, line in lines:
                self._offsets[row_id] = offset
                offset += len(line)
            view = memoryview(b"".join(line for _, line in lines))
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)

    def flush(self) -> None:
        self.write(self.take_pending())

    def close(self) -> None:
        if self._fd is not None:
            self.flush()
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove(self) -> None:
        """Delete the checkpoint files (a temporary checkpoint after a finished run)."""
        self.close()
        for name in (ROWS, MANIFEST, LOCK):
            try:
                (self.directory / name).unlink()
            except FileNotFoundError:
                pass
        try:
            self.directory.rmdir()
        except OSError:
            pass


def _summary(entry: dict) -> dict:
    """What the run needs to know of a row without holding its conversations."""
    summary = {k: v for k, v in entry.items() if k != "conversations"}
    summary["num_conversations"] = len(entry.get("conversations") or [])
    return summary
