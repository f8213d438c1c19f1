"""Stage 1, convert: documents (PDF, Markdown, HTML, DOCX) -> DoclingDocument JSON + Markdown.

Each input file is converted on its own: a file that cannot be read is recorded in
``failures.jsonl`` with a one-line reason and the others still convert.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .records import AtomicWriter, content_id, write_json, write_jsonl

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".pdf", ".md", ".html", ".htm", ".docx")
PIPELINES = ("native", "standard")


class ConvertError(RuntimeError):
    """A user-fixable problem with the conversion stage as a whole."""


@dataclass(frozen=True)
class ConvertOptions:
    """How documents are converted.

    ``pipeline``: ``native`` reads the PDF's own text layer with no models (works anywhere);
    ``standard`` runs docling's layout model from ``artifacts_path`` (baked into the conversion image).
    """

    pipeline: str = "native"
    artifacts_path: str | None = None
    do_ocr: bool = False
    do_table_structure: bool = False
    max_pages: int = 0  # 0 = no limit
    max_failure_ratio: float = 1.0  # fail the stage when more than this share of files fail

    def __post_init__(self):
        if self.pipeline not in PIPELINES:
            raise ConvertError(f"unknown conversion pipeline {self.pipeline!r}; choose one of {', '.join(PIPELINES)}")


@dataclass
class ConvertResult:
    documents: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    pages: int = 0
    seconds: float = 0.0

    def metrics(self) -> dict:
        return {
            "documents": len(self.documents),
            "failed": len(self.failures),
            "pages": self.pages,
            "seconds": round(self.seconds, 3),
        }


def find_inputs(input_dir: str | os.PathLike[str]) -> list[Path]:
    """Every supported file below ``input_dir`` (recursively), in a stable order."""
    root = Path(input_dir)
    if not root.is_dir():
        raise ConvertError(f"input folder {root} does not exist or is not a folder; point --input at the folder holding the PDFs")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)


def _pdf_format_option(options: ConvertOptions):
    from docling.backend.pypdfium2_backend import PyPdfiumDocumentBackend
    from docling.document_converter import PdfFormatOption

    if options.pipeline == "native":
        from docling.datamodel.pipeline_options import NativePdfPipelineOptions
        from docling.pipeline.native_pdf_pipeline import NativePdfPipeline

        # pypdfium2 reads typewriter fonts that the default backend garbles (field notes).
        return PdfFormatOption(
            pipeline_cls=NativePdfPipeline,
            pipeline_options=NativePdfPipelineOptions(),
            backend=PyPdfiumDocumentBackend,
        )

    from docling.datamodel.pipeline_options import PdfPipelineOptions

    artifacts = options.artifacts_path or os.environ.get("DOCLING_ARTIFACTS_PATH")
    if not artifacts or not Path(artifacts).is_dir() or not any(Path(artifacts).iterdir()):
        raise ConvertError(
            f"the standard pipeline needs docling's models in a local folder, and {artifacts or 'DOCLING_ARTIFACTS_PATH (unset)'} "
            "has none; run `docling-tools models download -o DIR` and set DOCLING_ARTIFACTS_PATH=DIR "
            "(the conversion image bakes them), or use --pipeline native"
        )
    return PdfFormatOption(
        pipeline_options=PdfPipelineOptions(
            artifacts_path=artifacts, do_ocr=options.do_ocr, do_table_structure=options.do_table_structure
        )
    )


def make_converter(options: ConvertOptions):
    from docling.datamodel.base_models import InputFormat
    from docling.document_converter import DocumentConverter

    return DocumentConverter(
        allowed_formats=[InputFormat.PDF, InputFormat.MD, InputFormat.HTML, InputFormat.DOCX],
        format_options={InputFormat.PDF: _pdf_format_option(options)},
    )


class UnreadableDocument(ValueError):
    """A file that cannot be converted, with the specific reason (not a PDF, encrypted, corrupt)."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


def diagnose_pdf(path: Path) -> UnreadableDocument | None:
    """Why PDFium cannot open a PDF, in words a user can act on (None when it opens)."""
    import pypdfium2

    with path.open("rb") as handle:
        head = handle.read(1024)
    if b"%PDF-" not in head:
        return UnreadableDocument("NotAPdf", f"not a PDF (the file starts with {head[:16]!r}); remove it or give it its real extension")
    try:
        pypdfium2.PdfDocument(str(path)).close()
    except pypdfium2.PdfiumError as exc:
        if "password" in str(exc).lower():
            return UnreadableDocument("EncryptedPdf", "the PDF is password-protected; decrypt it (e.g. qpdf --decrypt) and upload it again")
        return UnreadableDocument("CorruptPdf", f"the PDF is corrupt or truncated ({exc}); re-export or re-download it")
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text[:300]


def convert_file(converter, path: Path, input_root: Path, output_dir: Path, options: ConvertOptions) -> dict:
    """Convert one file and write ``<name>.md`` and ``<name>.json``; returns its document record."""
    if path.stat().st_size == 0:
        raise UnreadableDocument("EmptyFile", "the file is empty (0 bytes); upload it again")
    kwargs = {"raises_on_error": True}
    if options.max_pages:
        kwargs["max_num_pages"] = options.max_pages
    try:
        result = converter.convert(path, **kwargs)
    except Exception as exc:
        diagnosis = diagnose_pdf(path) if path.suffix.lower() == ".pdf" else None
        raise (diagnosis or exc) from exc
    document = result.document
    markdown = document.export_to_markdown(escape_html=False)
    if not markdown.strip():
        raise ValueError("no text could be extracted (scanned pages need --ocr with the standard pipeline)")
    relative = path.relative_to(input_root)
    name = "__".join(relative.with_suffix("").parts)
    doc_id = content_id(_file_hash(path))
    with AtomicWriter(output_dir / f"{name}.md") as handle:
        handle.write(markdown)
    with AtomicWriter(output_dir / f"{name}.json") as handle:
        handle.write(document.model_dump_json())
    return {
        "doc_id": doc_id,
        "source": str(relative),
        "markdown": f"{name}.md",
        "docling_json": f"{name}.json",
        "pages": len(result.pages) if result.pages else document.num_pages(),
    }


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    options: ConvertOptions = ConvertOptions(),
    progress: Callable[[str], None] | None = None,
) -> ConvertResult:
    """Convert every supported file below ``input_dir`` into ``output_dir``.

    Writes ``documents.jsonl`` (one record per converted document), ``failures.jsonl``
    (``file``, ``error``, ``reason``) and ``convert_metrics.json``. Raises ConvertError when no file
    converts or more than ``max_failure_ratio`` of them fail; the outputs are written first.
    """
    started = time.monotonic()
    input_root = Path(input_dir)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    inputs = find_inputs(input_root)
    if not inputs:
        raise ConvertError(
            f"no documents found in {input_root} (looked for {', '.join(SUPPORTED_SUFFIXES)} recursively); "
            "copy the PDFs there or point --input at another folder"
        )
    converter = make_converter(options)
    result = ConvertResult()
    for index, path in enumerate(inputs, start=1):
        try:
            if path.is_dir():
                raise UnreadableDocument("NotAFile", "a folder named like a document; rename it")
            record = convert_file(converter, path, input_root, out, options)
            result.documents.append(record)
            result.pages += record["pages"]
            status = f"{record['pages']} pages"
        except Exception as exc:  # per-file isolation: one bad file must not stop the others
            error = exc.kind if isinstance(exc, UnreadableDocument) else exc.__class__.__name__
            result.failures.append({"file": str(path.relative_to(input_root)), "error": error, "reason": _one_line(exc)})
            status = f"FAILED ({error}: {_one_line(exc)[:160]})"
        if progress:
            progress(f"[convert {index}/{len(inputs)}] {path.relative_to(input_root)}: {status}")
    result.seconds = time.monotonic() - started
    write_jsonl(out / "documents.jsonl", result.documents)
    write_jsonl(out / "failures.jsonl", result.failures)
    write_json(out / "convert_metrics.json", result.metrics())
    if not result.documents:
        raise ConvertError(
            f"none of the {len(inputs)} files in {input_root} could be converted; see {out / 'failures.jsonl'} for the reason per file"
        )
    if len(result.failures) / len(inputs) > options.max_failure_ratio:
        raise ConvertError(
            f"{len(result.failures)} of {len(inputs)} files failed to convert, more than the allowed "
            f"{options.max_failure_ratio:.0%}; see {out / 'failures.jsonl'}"
        )
    return result


