"""JSONL records on disk: streaming reads, atomic writes, content-derived ids."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# mkstemp creates files 0600; outputs are meant to be read by other users of the volume.
_UMASK = os.umask(0)
os.umask(_UMASK)


def content_id(*parts: Any, length: int = 16) -> str:
    """A stable id derived from content (never from time or randomness)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:length]


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield one dict per non-empty line; a bad line raises ValueError naming the file and line."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({exc.msg}); fix or remove the line") from exc
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{line_no}: expected a JSON object per line, got {type(record).__name__}")
            yield record


def dumps(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=False)


class AtomicWriter:
    """Write a file through a temp file in the same folder, renamed into place on success.

    Readers never see a half-written file; on error the temp file is removed and any previous
    version of the target is left untouched.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._handle = None
        self._tmp: str | None = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.fchmod(fd, 0o666 & ~_UMASK)
        self._handle = os.fdopen(fd, "w", encoding="utf-8")
        return self._handle

    def __exit__(self, exc_type, exc, tb):
        assert self._handle is not None and self._tmp is not None
        try:
            if exc_type is None:
                self._handle.flush()
                os.fsync(self._handle.fileno())
            self._handle.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)
        return False


def write_jsonl(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> int:
    """Atomically write records as JSONL; returns the number written."""
    count = 0
    with AtomicWriter(path) as handle:
        for record in records:
            handle.write(dumps(record) + "\n")
            count += 1
    return count


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    with AtomicWriter(path) as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2, sort_keys=True)
        handle.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    with Path(path).open(encoding="utf-8") as handle:
        return json.load(handle)
