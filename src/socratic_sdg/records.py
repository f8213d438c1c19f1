"""JSONL records on disk: streaming reads that name the file and line of a bad input, atomic writes
(of one file, or of a set of files readers take together), content-derived ids."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from .errors import SocraticSdgError

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


class JsonlError(SocraticSdgError, ValueError):
    """A line (or the whole) of a JSON/JSONL input cannot be used; the message names the file, the
    line and the fix, in one sentence."""


class InputMissingError(SocraticSdgError, FileNotFoundError):
    """An input file is not there; the message names it and says which command writes it."""


class IncompleteSetError(SocraticSdgError, ValueError):
    """A file belongs to a set of outputs whose writer was killed before the set was complete."""


_BOM = b"\xef\xbb\xbf"


def parse_json_line(text: str) -> tuple[Any, str | None]:
    """``(value, None)``, or ``(None, why the text is not one JSON value)``; never raises for bad input.

    Besides malformed JSON this catches what the json module raises other than JSONDecodeError: a
    RecursionError on arrays or objects nested thousands of levels deep, and a ValueError on
    integers longer than Python converts (4300 digits).
    """
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"{exc.msg} at column {exc.colno}"
    except RecursionError:
        return None, "nested too deeply to parse"
    except ValueError as exc:
        return None, str(exc).split(";")[0]


def require_input(path: str | os.PathLike[str], what: str, made_by: str) -> Path:
    """``path`` as a Path if it is a file; otherwise an InputMissingError naming it and its producer.

    ``what`` names the input ("export input"), ``made_by`` what writes it ("the accepted.jsonl that
    `socratic-sdg filter` writes").
    """
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise InputMissingError(f"{what} {path} is a folder, but a file is expected: pass {made_by}")
    raise InputMissingError(f"{what} {path} does not exist: it is {made_by}, so run that first or fix the path")


def iter_json_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, value)`` per non-blank line; a line that is not UTF-8 or not JSON raises
    JsonlError naming the file and line (a byte-order mark at the start of the file is skipped)."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputMissingError(f"{path} does not exist; check the path") from None
    except IsADirectoryError:
        raise InputMissingError(f"{path} is a folder, but a JSONL file is expected") from None
    with handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise JsonlError(f"{path}:{line_no}: not valid UTF-8 (byte {exc.start + 1} of the line); "
                                 "save the file as UTF-8 or remove the line") from None
            if not text.strip():
                continue
            value, problem = parse_json_line(text)
            if problem is not None:
                raise JsonlError(f"{path}:{line_no}: not valid JSON ({problem}); fix or remove the line")
            yield line_no, value


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, record)`` per non-blank line; errors name the file and line."""
    for line_no, value in iter_json_lines(path):
        if not isinstance(value, dict):
            raise JsonlError(f"{path}:{line_no}: expected a JSON object per line, got {type(value).__name__}; "
                             "fix or remove the line")
        yield line_no, value


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield one dict per non-empty line; a bad line raises JsonlError (a ValueError) naming the file and line."""
    for _, record in iter_jsonl(path):
        yield record


def dumps(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=False)


# AtomicWriter's temp files: ".<name>.<8 random characters>.tmp" beside the target (tempfile.mkstemp).
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is the name of one of this project's temp files (of any target)."""
    return _TEMP_NAME.match(name) is not None


def remove_stale_temps(folder: str | os.PathLike[str], names: Iterable[str]) -> list[Path]:
    """Remove the temp files a killed writer of ``names`` left in ``folder``; returns what was removed.

    Only this project's temp-name pattern for exactly these target names, only in ``folder`` itself
    (not below it). Call it when a stage starts, before it writes: a temp file of a running writer
    of the same outputs would go too (two runs writing one folder at once are not supported).
    """
    folder = Path(folder)
    wanted = set(names)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match and match["name"] in wanted and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed.append(Path(entry.path))
    return removed


def _create_temp(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)
    return fd, tmp


def _fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicWriter:
    """Write a file through a temp file in the same folder, renamed into place on success.

    Readers never see a half-written file; on error the temp file is removed and any previous
    version of the target is left untouched. A kill (SIGKILL, OOM) leaves the temp file behind:
    :func:`remove_stale_temps` removes it when the stage runs again.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._handle = None
        self._tmp: str | None = None

    def __enter__(self):
        fd, self._tmp = _create_temp(self.path)
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


# --- sets of files that are only valid together ----------------------------------------------------

SET_MANIFEST_PREFIX = ".socratic-sdg-set-"
_KIND = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def set_manifest_path(folder: str | os.PathLike[str], kind: str) -> Path:
    """Where the manifest of the ``kind`` set of ``folder`` is (``.socratic-sdg-set-<kind>.json``)."""
    return Path(folder) / f"{SET_MANIFEST_PREFIX}{kind}.json"


class AtomicFileSet:
    """Write several files of one folder that readers must only take together (train + validation,
    accepted + rejected + metrics), keeping their usual paths.

    Usage::

        with AtomicFileSet(out, [ACCEPTED_FILE, REJECTED_FILE], kind="filter",
                           producer="the filter (socratic-sdg filter)") as files:
            files[ACCEPTED_FILE].write(line)      # text handles, UTF-8
            ...
        # here every file is in place and the set is marked complete

    On enter, the temp files a killed earlier run left for these names are removed. Each file is
    written to a temp file beside its target. On a clean exit they are flushed to disk, then the
    manifest ``.socratic-sdg-set-<kind>.json`` is written saying the set is *incomplete* (with the
    new sizes), the temp files are renamed into place one after the other, and the manifest is
    rewritten saying it is *complete*. On an exception inside the block nothing is renamed: the
    previous files and their manifest stay as they were. A kill during the renames leaves the
    manifest saying incomplete, which :func:`check_complete` and :func:`incomplete_sets` report, so
    a reader never takes a new file and an old one for one set; the next run of the writer
    rewrites the set. Readers of folders without a manifest (hand-made inputs, older runs) are
    not affected.
    """

    def __init__(self, folder: str | os.PathLike[str], names: Iterable[str], *, kind: str, producer: str):
        self.folder = Path(folder)
        self.names = list(names)
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"a file set needs distinct file names, got {self.names}")
        if any(Path(name).name != name or name.startswith(".") for name in self.names):
            raise ValueError(f"a file set holds plain file names of one folder, got {self.names}")
        if not _KIND.match(kind):
            raise ValueError(f"a file set kind is lowercase letters, digits, - and _, got {kind!r}")
        self.kind = kind
        self.producer = producer
        self.manifest_path = set_manifest_path(self.folder, kind)
        self._temps: dict[str, tuple[str, Any]] = {}

    def path(self, name: str) -> Path:
        return self.folder / name

    def __getitem__(self, name: str):
        return self._temps[name][1]

    def __enter__(self) -> AtomicFileSet:
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.folder, [*self.names, self.manifest_path.name])
        try:
            for name in self.names:
                fd, tmp = _create_temp(self.folder / name)
                self._temps[name] = (tmp, os.fdopen(fd, "w", encoding="utf-8"))
        except BaseException:
            self._discard()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._commit()
        finally:
            self._discard()
        return False

    def _commit(self) -> None:
        sizes = {}
        for name, (_, handle) in self._temps.items():
            handle.flush()
            os.fsync(handle.fileno())
            sizes[name] = os.fstat(handle.fileno()).st_size
            handle.close()
        self._write_manifest(False, sizes)
        for name, (tmp, _) in self._temps.items():
            os.replace(tmp, self.folder / name)
        _fsync_dir(self.folder)
        self._write_manifest(True, sizes)

    def _write_manifest(self, complete: bool, sizes: dict[str, int]) -> None:
        write_json(self.manifest_path, {
            "written_by": "socratic-sdg",
            "producer": self.producer,
            "complete": complete,
            "files": {name: {"bytes": size} for name, size in sizes.items()},
        })

    def _discard(self) -> None:
        for tmp, handle in self._temps.values():
            if not handle.closed:
                handle.close()
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._temps = {}


def _set_manifests(folder: Path) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    try:
        paths = sorted(folder.glob(f"{SET_MANIFEST_PREFIX}*.json"))
    except OSError:
        return
    for path in paths:
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            manifest = None
        yield path, manifest if isinstance(manifest, dict) else None


def _incomplete_sentence(path: Path, manifest_path: Path, manifest: dict[str, Any] | None) -> str:
    if manifest is None:
        return (f"{path}: its set manifest {manifest_path} is unreadable, so whether its files belong together is "
                "unknown; rerun the stage that wrote the folder (or delete the manifest if you made the files by hand)")
    producer = str(manifest.get("producer") or "the stage that wrote it")
    names = " + ".join(sorted(manifest.get("files") or {})) or "its files"
    return (f"{path}: {producer} was interrupted while replacing {names}, so they may be from different runs; "
            f"rerun {producer} to rewrite them")


def incomplete_sets(folder: str | os.PathLike[str]) -> list[str]:
    """One sentence per set of ``folder`` whose writer was interrupted (empty when all are complete)."""
    folder = Path(folder)
    return [_incomplete_sentence(folder, path, manifest) for path, manifest in _set_manifests(folder)
            if manifest is None or manifest.get("complete") is not True]


def check_complete(path: str | os.PathLike[str]) -> None:
    """Raise IncompleteSetError if ``path`` (a file, or a folder) belongs to a set whose writer was
    interrupted. A file that no set of its folder names, and a folder without a manifest, pass."""
    path = Path(path)
    folder, name = (path, None) if path.is_dir() else (path.parent, path.name)
    for manifest_path, manifest in _set_manifests(folder):
        if manifest is not None and manifest.get("complete") is True:
            continue
        if name is None or manifest is None or name in (manifest.get("files") or {}):
            raise IncompleteSetError(_incomplete_sentence(path, manifest_path, manifest))


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
    """The JSON value in ``path``; an unusable file raises JsonlError naming it."""
    path = Path(path)
    data = path.read_bytes()
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonlError(f"{path}: not valid UTF-8 (byte {exc.start + 1}); save the file as UTF-8") from None
    value, problem = parse_json_line(text)
    if problem is not None:
        raise JsonlError(f"{path}: not valid JSON ({problem}); fix the file or rerun the stage that wrote it")
    return value
