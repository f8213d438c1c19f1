"""Stage 2, chunk: converted documents -> ``chunks.jsonl``.

docling's HierarchicalChunker cuts a document at its structure (one piece per paragraph, list or
table, with the heading path). Text read from a PDF's own text layer gives one piece per line, far
too small to hold a problem with its explanation, so consecutive pieces under the same headings
are merged up to ``target_chars``. Pieces that are pure noise (dot leaders of a table of contents,
numbers only) are dropped with a reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .records import content_id, read_jsonl, write_json, write_jsonl


class ChunkError(RuntimeError):
    """A user-fixable problem with the chunking stage as a whole."""


@dataclass(frozen=True)
class ChunkOptions:
    target_chars: int = 1500  # merge pieces up to about this size (~375 tokens)
    max_chars: int = 3000  # never exceed this; a longer single piece is cut at line ends
    min_chars: int = 200  # smaller merged chunks are dropped as too short to teach from
    merge_across_headings: bool = False


# Why these: a table of contents is mostly dot leaders and page numbers; a page of numbers or
# symbols gives the generator nothing to ask about.
_DOT_LEADERS = re.compile(r"(?:\.\s*){6,}")
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)


def noise_reason(text: str) -> str | None:
    """Why a chunk is noise, or None when it is worth generating from."""
    stripped = text.strip()
    if not stripped:
        return "empty"
    if len(_DOT_LEADERS.findall(stripped)) >= 3:
        return "table_of_contents"
    letters = len(_LETTERS.findall(stripped))
    if letters / max(len(stripped), 1) < 0.3:
        return "mostly_numbers_or_symbols"
    return None


def estimate_tokens(text: str) -> int:
    """Rough token count (about 4 characters per token for English and LaTeX)."""
    return max(1, round(len(text) / 4))


@dataclass
class _Piece:
    text: str
    headings: list[str]
    pages: set[int]


def _pieces(document) -> Iterator[_Piece]:
    from docling_core.transforms.chunker.hierarchical_chunker import HierarchicalChunker

    for piece in HierarchicalChunker().chunk(dl_doc=document):
        pages = {prov.page_no for item in piece.meta.doc_items for prov in (item.prov or [])}
        yield _Piece(text=piece.text, headings=list(piece.meta.headings or []), pages=pages)


def _split_long(text: str, max_chars: int) -> list[str]:
    if len(text) <= max_chars:
        return [text]
    parts, current = [], ""
    for line in text.splitlines(keepends=True):
        if current and len(current) + len(line) > max_chars:
            parts.append(current)
            current = ""
        current += line
    if current:
        parts.append(current)
    # A single line longer than max_chars is cut hard: rare, and better than an oversized chunk.
    return [p[i : i + max_chars] for p in parts for i in range(0, len(p), max_chars)]


def merge_pieces(pieces: Iterator[_Piece], options: ChunkOptions) -> Iterator[_Piece]:
    current: _Piece | None = None
    for piece in pieces:
        for text in _split_long(piece.text, options.max_chars):
            same_section = current is not None and (options.merge_across_headings or current.headings == piece.headings)
            if current is not None and same_section and len(current.text) + len(text) + 1 <= options.target_chars:
                current.text += "\n" + text
                current.pages |= piece.pages
                continue
            if current is not None:
                yield current
            current = _Piece(text=text, headings=piece.headings, pages=set(piece.pages))
    if current is not None:
        yield current


def chunk_document(document, doc: dict, options: ChunkOptions) -> tuple[list[dict], list[dict]]:
    """Chunks of one DoclingDocument, and the pieces dropped as noise (with a reason)."""
    kept, dropped = [], []
    for index, piece in enumerate(merge_pieces(_pieces(document), options)):
        text = piece.text.strip()
        reason = noise_reason(text) or ("too_short" if len(text) < options.min_chars else None)
        record = {
            "chunk_id": content_id(doc["doc_id"], text),
            "doc_id": doc["doc_id"],
            "source": doc["source"],
            "index": index,
            "text": text,
            "headings": piece.headings,
            "pages": sorted(piece.pages),
            "num_tokens": estimate_tokens(text),
        }
        if reason:
            dropped.append({**record, "drop_reason": reason})
        else:
            kept.append(record)
    return kept, dropped


@dataclass
class ChunkResult:
    chunks: int
    dropped: int
    documents: int

    def metrics(self) -> dict:
        return {"chunks": self.chunks, "dropped": self.dropped, "documents": self.documents}


def run(
    input_dir: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    options: ChunkOptions = ChunkOptions(),
    progress: Callable[[str], None] | None = None,
) -> ChunkResult:
    """Chunk every document listed in ``input_dir/documents.jsonl`` (the convert stage's output).

    Writes ``output_path`` (chunks.jsonl), and beside it ``chunks_dropped.jsonl`` and
    ``chunk_metrics.json``.
    """
    from docling_core.types.doc import DoclingDocument

    in_dir = Path(input_dir)
    listing = in_dir / "documents.jsonl"
    if not listing.is_file():
        raise ChunkError(f"{listing} not found; run the convert stage first (socratic-sdg convert --output-dir {in_dir})")
    chunks: list[dict] = []
    dropped: list[dict] = []
    documents = list(read_jsonl(listing))
    seen: set[str] = set()
    for doc in documents:
        document = DoclingDocument.load_from_json(in_dir / doc["docling_json"])
        kept, noise = chunk_document(document, doc, options)
        # The same text twice (a repeated header block) would give the same chunk_id: keep one.
        for chunk in kept:
            if chunk["chunk_id"] not in seen:
                seen.add(chunk["chunk_id"])
                chunks.append(chunk)
        dropped.extend(noise)
        if progress:
            progress(f"[chunk] {doc['source']}: {len(kept)} chunks, {len(noise)} dropped")
    output = Path(output_path)
    write_jsonl(output, chunks)
    write_jsonl(output.with_name("chunks_dropped.jsonl"), dropped)
    result = ChunkResult(chunks=len(chunks), dropped=len(dropped), documents=len(documents))
    write_json(output.with_name("chunk_metrics.json"), result.metrics())
    return result
