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
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path

from .generation_errors import GenerateError
from .records import dumps, read_json, write_json

MANIFEST = "generate_manifest.json"
ROWS = "generate_rows.jsonl"
LOCK = ".generate.lock"
FORMAT = 1


class Checkpoint:
    def __init__(self, directory: str | os.PathLike[str], manifest: dict, save_freq: int = 16, save_interval: float = 1.0, discard_mismatch: bool = False):
        self.directory = Path(directory)
        self.discard_mismatch = discard_mismatch  # a temporary checkpoint of other settings is dropped, not refused
        self.manifest = {"format": FORMAT, **manifest}
        self.save_freq = max(1, int(save_freq))
        self.save_interval = save_interval
        self.entries: dict[str, dict] = {}
        self.torn_bytes = 0  # bytes of a torn last line cut off at open
        self._pending: list[str] = []
        self._last_flush = time.monotonic()
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._write_lock = threading.Lock()

    @property
    def rows_path(self) -> Path:
        return self.directory / ROWS

    def open(self) -> dict[str, dict]:
        """Lock the folder, check the manifest, load finished rows (row_id -> entry)."""
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
        data = path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a line torn by a kill mid-write: cut it off
            self.torn_bytes = len(data) - end
            with open(path, "r+b") as handle:
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())
            data = data[:end]
        for line in data.decode("utf-8").splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # cannot happen with whole-line appends; skip rather than lose the run
            row_id = entry.get("row_id")
            if not row_id:
                continue
            if entries.get(row_id, {}).get("status") == "done":
                continue
            entries[row_id] = entry
        return entries

    def add(self, entry: dict) -> None:
        row_id = entry["row_id"]
        if self.entries.get(row_id, {}).get("status") == "done":
            return  # never a second record for a finished row
        self.entries[row_id] = entry
        self._pending.append(dumps(entry) + "\n")

    def due(self) -> bool:
        return bool(self._pending) and (len(self._pending) >= self.save_freq or time.monotonic() - self._last_flush >= self.save_interval)

    def take_pending(self) -> bytes:
        data = "".join(self._pending).encode("utf-8")
        self._pending.clear()
        self._last_flush = time.monotonic()
        return data

    def write(self, data: bytes) -> None:
        """Append and fsync (safe to call from a worker thread; calls are serialised)."""
        if not data:
            return
        with self._write_lock:
            assert self._fd is not None, "checkpoint not open"
            view = memoryview(data)
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
