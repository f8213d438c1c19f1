"""Helpers the convert tests run inside worker processes (importable by spawned children)."""

import os

from ..convert import stage as convert


def crash_on_crash_me(options, cache_folder, conn):
    """A worker that dies (as a segfaulting PDF library would) on files named *crash-me*."""

    class CrashingConnection:
        def recv(self):
            task = conn.recv()
            if task is not None and "crash-me" in task.path:
                conn.send(("started", task.path, None))
                os._exit(3)
            return task

        def send(self, message):
            conn.send(message)

    convert._worker_main(options, cache_folder, CrashingConnection())


def long_pdf(source: str, target: str, copies: int) -> None:
    """A long, valid PDF: the pages of ``source`` repeated ``copies`` times."""
    import pypdfium2

    original = pypdfium2.PdfDocument(source)
    merged = pypdfium2.PdfDocument.new()
    for _ in range(copies):
        merged.import_pages(original)
    merged.save(target)
