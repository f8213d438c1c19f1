"""Stage 1, convert: documents (PDF, Markdown, HTML, DOCX) -> DoclingDocument JSON + Markdown.

Each file is converted on its own, in a pool of worker processes: a file that cannot be read,
hangs past the timeout or crashes its worker is recorded in ``failures.jsonl`` with a one-line
reason and the others still convert. Conversions are cached by content hash and options, so a
file converted once is not converted again.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import multiprocessing
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..records import content_id, read_jsonl, write_json, write_jsonl
from ..errors import SocraticSdgError
from ..options import Shard, group, option, output_settings
from ..results import PathLike, Progress, StageResult
from .. import artifacts

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".pdf", ".md", ".html", ".htm", ".docx")
PIPELINES = ("native", "standard", "vlm-remote")
MODELS_HINT = "run `docling-tools models download -o DIR` and set DOCLING_ARTIFACTS_PATH=DIR (the conversion image bakes them)"
ENDPOINT_CHECK_SECONDS = 5.0  # vlm-remote: how long the one pre-flight request may take

# What the stage writes into its output folder besides <name>.md and <name>.json (and what the
# chunk stage writes when pointed at the same folder): no document may be named over them.
STAGE_FILES = artifacts.CONVERT_STAGE_FILES
RESERVED_NAMES = frozenset(Path(f).stem.casefold() for f in STAGE_FILES if Path(f).suffix in (".md", ".json"))


class ConvertError(SocraticSdgError, RuntimeError):
    """A user-fixable problem with the conversion stage as a whole."""


class UnreadableDocument(SocraticSdgError, ValueError):
    """A file that cannot be converted, with the specific reason (not a PDF, encrypted, corrupt)."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


# The settings each pipeline reads (beside pipeline and max_pages): only those key its cache entries.
_READ_BY = {"standard": {"do_ocr", "do_table_structure", "do_formula_enrichment"}, "vlm-remote": {"vlm_model"}}


@dataclass(frozen=True)
class ConvertOptions:
    """How documents are converted.

    ``pipeline``: ``native`` reads the PDF's own text layer with no models (fast, works anywhere, no
    headings or tables); ``standard`` runs docling's layout model (+ tables, OCR, formulas) from
    ``artifacts_path``; ``vlm-remote`` sends page images to an OpenAI-compatible vision model.
    """

    pipeline: str = option(
        "native", "docling pipeline: native (the PDF's text layer, no models), standard (layout, tables, OCR, formulas; models from "
        "DOCLING_ARTIFACTS_PATH, baked in the conversion image) or vlm-remote (a vision model behind LLM_API_BASE).",
        choices=PIPELINES, pipeline_default="standard")
    do_ocr: bool = option(False, "Standard pipeline: OCR for scanned pages.", flag="--ocr")
    do_table_structure: bool = option(True, "Standard pipeline: tables as Markdown tables.", flag="--no-tables")
    do_formula_enrichment: bool = option(False, "Standard pipeline: formulas as LaTeX (needs the formula model).", flag="--formulas")
    vlm_model: str | None = option(None, "vlm-remote pipeline: the vision model; empty uses VLM_MODEL, then LLM_MODEL.")
    max_pages: int = option(0, "Files with more pages are recorded as failed (0 = no limit).")
    workers: int = option(0, "Worker processes (0 = one per core, at most one per file).", changes_output=False)
    timeout_seconds: float = option(300.0, "Seconds per file before it is given up and recorded as failed (0 = no limit).", flag="--timeout",
                                    changes_output=False)
    max_failure_ratio: float = option(
        1.0, "Fail the run when more than this share of the documents cannot be converted (1.0: only when none converts).", changes_output=False,
        pipeline_default=0.5)
    cache_dir: str | None = option(
        None, "Folder where conversions are cached by content and settings, shared by runs, so unchanged files are not converted again "
        "(empty: a .cache folder in the output).", changes_output=False,
        pipeline_default="/data/.cache/socratic-sdg/convert")
    artifacts_path: str | None = option(None, "Standard pipeline: docling models folder; empty uses DOCLING_ARTIFACTS_PATH.", kfp=False,
                                        changes_output=False)
    shard: Shard = group(Shard, "Fan-out")
    # Not parameters: the endpoint of vlm-remote comes from the environment (a Secret).
    vlm_api_base: str | None = None  # default $LLM_API_BASE
    vlm_api_key: str | None = field(default=None, repr=False)  # default $LLM_API_KEY

    def __post_init__(self):
        if self.pipeline not in PIPELINES:
            raise ConvertError(f"unknown conversion pipeline {self.pipeline!r}; choose one of {', '.join(PIPELINES)}")
        if not 0.0 <= self.max_failure_ratio <= 1.0:
            raise ConvertError(f"max_failure_ratio must be between 0 and 1, got {self.max_failure_ratio}")
        if not self.workers >= 0:  # a negative count would start no worker and wait forever
            raise ConvertError(f"workers must be 0 (one per core) or more, got {self.workers}; pass --workers 0 or a number of processes")
        if not self.timeout_seconds >= 0:  # also NaN
            raise ConvertError(
                f"timeout must be 0 (no limit) or more seconds, got {self.timeout_seconds:g}; pass --timeout 0 for no limit or a number of seconds per file"
            )
        if not self.max_pages >= 0:
            raise ConvertError(f"max_pages must be 0 (no limit) or more, got {self.max_pages}; pass --max-pages 0 for no limit or a page count")

    def resolved(self) -> "ConvertOptions":
        """The options with their environment defaults filled in, here in the parent process:
        worker processes fork from a server started earlier, with the environment of that time."""
        env = os.environ
        return replace(
            self,
            artifacts_path=self.artifacts_path or env.get("DOCLING_ARTIFACTS_PATH"),
            vlm_api_base=self.vlm_api_base or env.get("LLM_API_BASE"),
            vlm_model=self.vlm_model or env.get("VLM_MODEL") or env.get("LLM_MODEL"),
            vlm_api_key=self.vlm_api_key or env.get("LLM_API_KEY"),
        )

    def fingerprint(self) -> str:
        """What changes a conversion's result: the same file with the same fingerprint is reused.
        Only the settings the chosen pipeline reads count (not where its models or endpoint live)."""
        from importlib.metadata import version

        relevant = output_settings(self, rows=False)
        for name in set(relevant) - {"pipeline", "max_pages"} - _READ_BY.get(self.pipeline, set()):
            del relevant[name]
        return content_id(relevant, version("docling-slim"), version("docling-core"))


@dataclass
class ConvertResult(StageResult):
    documents: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    pages: int = 0
    converted_pages: int = 0  # pages converted in this run (not reused from the cache)
    reused: int = 0
    seconds: float = 0.0

    def summary_lines(self) -> list[str]:
        lines = [f"converted {len(self.documents)} documents ({self.pages} pages, {self.reused} reused), {len(self.failures)} failed"]
        return lines + [f"  failed: {failure['file']}: {failure['error']}: {failure['reason']}" for failure in self.failures]

    def metrics(self) -> dict:
        return {
            "documents": len(self.documents),
            "failed": len(self.failures),
            "pages": self.pages,
            "reused_from_cache": self.reused,
            "seconds": round(self.seconds, 3),
            "pages_per_second": round(self.converted_pages / self.seconds, 2) if self.seconds else 0.0,
            "failures_by_error": _count(f["error"] for f in self.failures),
        }


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def find_inputs(
    input_dir: str | os.PathLike[str], shard_index: int = 0, num_shards: int = 1, exclude: Iterable[str | os.PathLike[str]] = ()
) -> list[Path]:
    """Supported files below ``input_dir`` (recursively), in a stable order; one shard of them.

    Files below an ``exclude`` folder (the stage's own output and cache, when they sit inside the
    input folder) are not inputs: the Markdown a run writes is not converted again by the next.
    """
    root = Path(input_dir)
    _check_input(root, shard_index, num_shards)
    skipped = []
    for folder in exclude:
        try:
            skipped.append(Path(folder).resolve().relative_to(root.resolve()).parts)
        except ValueError:  # not inside the input folder
            continue
    paths = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in SUPPORTED_SUFFIXES and not any(p.relative_to(root).parts[: len(s)] == s for s in skipped)
    )
    return paths[shard_index::num_shards]


def _check_input(root: Path, shard_index: int, num_shards: int) -> None:
    if not root.is_dir():
        raise ConvertError(f"input folder {root} does not exist or is not a folder; point --input at the folder holding the PDFs")
    if num_shards < 1:
        raise ConvertError(f"the number of shards must be 1 or more, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ConvertError(f"shard index {shard_index} is outside 0..{num_shards - 1}")


def output_names(paths: list[Path], root: Path) -> dict[Path, str]:
    """A distinct output name per input: its relative path without suffix, '/' as '__'.

    Inputs whose names would collide with each other (x.pdf beside x.md, a/b.pdf beside a__b.pdf,
    A.pdf beside a.pdf on a case-insensitive disk), or with a file the stage writes
    (convert_metrics.pdf), all get a suffix derived from their relative path. A name depends only
    on the set of paths, never on their order: run() names the whole input list before taking its
    shard, so every shard (and the merge) agrees.
    """
    relative = {path: path.relative_to(root) for path in paths}
    base = {path: "__".join(rel.with_suffix("").parts) for path, rel in relative.items()}
    names = dict(base)
    for length in (8, 16, 64):
        groups: dict[str, list[Path]] = {}
        for path, name in names.items():
            groups.setdefault(name.casefold(), []).append(path)
        clashing = [path for key, group in groups.items() if len(group) > 1 or key in RESERVED_NAMES for path in group]
        if not clashing:
            return names
        for path in clashing:
            names[path] = f"{base[path]}-{content_id(relative[path].as_posix(), length=length)}"
    raise ConvertError(f"cannot give {len(clashing)} files distinct output names (e.g. {relative[clashing[0]]}); rename them")


# ---------------------------------------------------------------------------------------------
# docling


def _pdf_format_option(options: ConvertOptions):
    from docling.backend.pypdfium2_backend import PyPdfiumDocumentBackend
    from docling.document_converter import PdfFormatOption

    if options.pipeline == "native":
        from docling.datamodel.pipeline_options import NativePdfPipelineOptions
        from docling.pipeline.native_pdf_pipeline import NativePdfPipeline

        # pypdfium2 reads typewriter fonts that docling's default backend garbles.
        return PdfFormatOption(pipeline_cls=NativePdfPipeline, pipeline_options=NativePdfPipelineOptions(), backend=PyPdfiumDocumentBackend)

    if options.pipeline == "vlm-remote":
        return _vlm_remote_format_option(options)

    from docling.datamodel.pipeline_options import PdfPipelineOptions

    artifacts = options.artifacts_path
    if not artifacts or not Path(artifacts).is_dir() or not any(Path(artifacts).iterdir()):
        raise ConvertError(
            f"the standard pipeline needs docling's models in a local folder, and {artifacts or 'DOCLING_ARTIFACTS_PATH (unset)'} "
            f"has none; {MODELS_HINT}, or use --pipeline native"
        )
    return PdfFormatOption(
        pipeline_options=PdfPipelineOptions(
            artifacts_path=artifacts,
            do_ocr=options.do_ocr,
            do_table_structure=options.do_table_structure,
            do_formula_enrichment=options.do_formula_enrichment,
        )
    )


def _vlm_remote_format_option(options: ConvertOptions):
    from docling.datamodel.pipeline_options import VlmPipelineOptions
    from docling.datamodel.pipeline_options_vlm_model import ApiVlmOptions, ResponseFormat
    from docling.document_converter import PdfFormatOption
    from docling.pipeline.vlm_pipeline import VlmPipeline

    api_base, model, headers = _vlm_endpoint(options)
    vlm = ApiVlmOptions(
        url=f"{api_base}/chat/completions",
        params={"model": model, "max_tokens": 4096},
        headers=headers,
        prompt="Convert this page to Markdown. Write formulas as LaTeX between $ signs and tables as Markdown tables.",
        timeout=max(options.timeout_seconds, 60),
        response_format=ResponseFormat.MARKDOWN,
    )
    return PdfFormatOption(pipeline_cls=VlmPipeline, pipeline_options=VlmPipelineOptions(enable_remote_services=True, vlm_options=vlm))


def _vlm_endpoint(options: ConvertOptions) -> tuple[str, str, dict[str, str]]:
    """The vlm-remote endpoint's base URL, model and request headers (the key never in a message)."""
    api_base, model = (options.vlm_api_base or "").strip().rstrip("/"), (options.vlm_model or "").strip()
    if not api_base or not model:
        raise ConvertError("the vlm-remote pipeline needs an endpoint and a vision model: set LLM_API_BASE and VLM_MODEL (or --vlm-model)")
    if not api_base.startswith(("http://", "https://")):
        raise ConvertError(f"LLM_API_BASE={api_base!r} is not an http(s) URL; set it to the vision model server's OpenAI base URL, e.g. http://host:8000/v1")
    headers = {"Authorization": f"Bearer {options.vlm_api_key}"} if options.vlm_api_key else {}
    return api_base, model, headers


def check_vlm_endpoint(options: ConvertOptions) -> None:
    """One quick request before any file is sent: the vlm-remote endpoint answers and serves the model.

    docling retries every page against a dead endpoint and then reports the page as empty, so
    without this an unreachable server costs minutes and blames every file for having no text.
    """
    import urllib.error
    import urllib.request

    api_base, model, headers = _vlm_endpoint(options)
    fix = "start the model server, or set LLM_API_BASE to its OpenAI base URL (e.g. http://host:8000/v1)"
    request = urllib.request.Request(f"{api_base}/models", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=ENDPOINT_CHECK_SECONDS) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ConvertError(f"the vision model endpoint {api_base} refused the request (HTTP {exc.code}); set LLM_API_KEY to a key it accepts") from None
        if exc.code == 404:
            raise ConvertError(f"{api_base}/models does not exist (HTTP 404); set LLM_API_BASE to the server's OpenAI base URL, usually ending in "
                               "/v1") from None
        raise ConvertError(
            f"the vision model endpoint {api_base} answered HTTP {exc.code} to /models; wait until the model server is ready, or {fix}"
        ) from None
    except (TimeoutError, socket.timeout):
        raise ConvertError(f"the vision model endpoint {api_base} did not answer within {ENDPOINT_CHECK_SECONDS:g}s; {fix}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            raise ConvertError(f"the vision model endpoint {api_base} did not answer within {ENDPOINT_CHECK_SECONDS:g}s; {fix}") from None
        reason = getattr(exc.reason, "strerror", None) or _one_line(exc.reason if isinstance(exc.reason, BaseException) else exc)
        raise ConvertError(f"the vision model endpoint {api_base} cannot be reached ({reason}); {fix}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ConvertError(f"the vision model endpoint {api_base} cannot be reached ({_one_line(exc)}); {fix}") from None
    try:
        served = [entry["id"] for entry in json.loads(body)["data"]]
    except (ValueError, KeyError, TypeError):
        raise ConvertError(
            f"the vision model endpoint {api_base} answered /models with something that is not a model list; {fix}"
        ) from None
    if served and model not in served:
        raise ConvertError(
            f"the vision model endpoint {api_base} does not serve a model named {model!r} (it serves: {', '.join(map(str, served))}); "
            "set VLM_MODEL (or --vlm-model) to one of those"
        )


def make_converter(options: ConvertOptions):
    from docling.datamodel.base_models import InputFormat
    from docling.document_converter import DocumentConverter

    options = options.resolved()  # one place reads the environment defaults

    converter = DocumentConverter(
        allowed_formats=[InputFormat.PDF, InputFormat.MD, InputFormat.HTML, InputFormat.DOCX],
        format_options={InputFormat.PDF: _pdf_format_option(options)},
    )
    if options.pipeline == "standard":
        # Load the models now: a missing model or runtime is one error for the stage, not one per file.
        artifacts = options.artifacts_path
        try:
            converter.initialize_pipeline(InputFormat.PDF)
        except ModuleNotFoundError as exc:
            raise ConvertError(
                f"the standard pipeline needs docling's model runtime ({exc.name} is missing): use the conversion image, "
                "or pip install 'docling-slim[models-local]'; or use --pipeline native"
            ) from None
        except Exception as exc:
            raise ConvertError(f"docling's models could not be loaded from {artifacts} ({_one_line(exc)}); {MODELS_HINT}") from None
    return converter


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


def _pdf_page_count(path: Path) -> int | None:
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError:
        return None  # the conversion will fail and diagnose it
    try:
        return len(document)
    finally:
        document.close()


def convert_one(converter, path: Path, options: ConvertOptions) -> tuple[str, str, int]:
    """Convert one file: (markdown, DoclingDocument JSON, pages). Raises UnreadableDocument."""
    if path.is_dir():
        raise UnreadableDocument("NotAFile", "a folder named like a document; rename it")
    if path.stat().st_size == 0:
        raise UnreadableDocument("EmptyFile", "the file is empty (0 bytes); upload it again")
    if options.max_pages and path.suffix.lower() == ".pdf":
        pages = _pdf_page_count(path)
        if pages and pages > options.max_pages:
            raise UnreadableDocument("TooManyPages", f"{pages} pages, more than max_pages={options.max_pages}; split the PDF or raise the limit")
    try:
        result = converter.convert(path, raises_on_error=True)
    except Exception as exc:
        diagnosis = diagnose_pdf(path) if path.suffix.lower() == ".pdf" else None
        raise (diagnosis or exc) from exc
    document = result.document
    markdown = document.export_to_markdown(escape_html=False)
    if not markdown.strip():
        raise UnreadableDocument("NoText", _no_text_reason(options))
    pages = len(result.pages) if result.pages else document.num_pages()
    return markdown, document.model_dump_json(), pages


def _no_text_reason(options: ConvertOptions) -> str:
    if options.pipeline == "vlm-remote":
        return (
            "the vision model returned no text for any page (the endpoint's errors are in the log); "
            "check that VLM_MODEL names a vision model the endpoint at LLM_API_BASE serves"
        )
    if options.pipeline == "standard" and options.do_ocr:
        return "no text could be extracted, even with OCR; check that the pages show text when opened"
    return "no text could be extracted (scanned pages need the standard pipeline with OCR: --pipeline standard --ocr)"


# ---------------------------------------------------------------------------------------------
# cache: <cache_dir>/<key>/{document.md, document.json, meta.json}, key = file hash + options


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ConversionCache:
    def __init__(self, folder: Path):
        self.folder = folder

    def get(self, key: str) -> tuple[Path, Path, int] | None:
        entry = self.folder / key
        try:
            meta = json.loads((entry / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        return entry / "document.md", entry / "document.json", int(meta["pages"])

    def put(self, key: str, markdown: str, document_json: str, pages: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.folder))
        (staging / "document.md").write_text(markdown, encoding="utf-8")
        (staging / "document.json").write_text(document_json, encoding="utf-8")
        (staging / "meta.json").write_text(json.dumps({"pages": pages}))
        try:
            staging.rename(self.folder / key)  # atomic: a reader sees a whole entry or none
        except OSError:  # another worker or shard stored it first
            shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# worker processes


@dataclass(frozen=True)
class _Task:
    path: str
    key: str


def _worker_main(options: ConvertOptions, cache_folder: str, conn) -> None:
    """Convert the files sent on ``conn`` into the cache; report each outcome back on it.

    Each worker has its own pipe: a worker that dies mid-message can break only its own channel,
    never a lock the other workers share.
    """
    logging.basicConfig(level=logging.WARNING)
    try:
        converter = make_converter(options)
    except Exception as exc:  # e.g. missing models: the same for every file, fatal for the stage
        conn.send(("fatal", None, str(exc)))
        return
    cache = ConversionCache(Path(cache_folder))
    conn.send(("ready", None, None))
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent went away
            return
        if task is None:
            return
        conn.send(("started", task.path, None))
        try:
            markdown, document_json, pages = convert_one(converter, Path(task.path), options)
            cache.put(task.key, markdown, document_json, pages)
            conn.send(("done", task.path, None))
        except Exception as exc:
            kind = exc.kind if isinstance(exc, UnreadableDocument) else exc.__class__.__name__
            conn.send(("failed", task.path, (kind, _one_line(exc))))


class _Worker:
    def __init__(self, ctx, options: ConvertOptions, cache_folder: Path):
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(options, str(cache_folder), child), daemon=True)
        self.process.start()
        child.close()  # the parent keeps only its end: EOF then means the worker is gone
        self.task: _Task | None = None
        self.started_at: float | None = None

    def give(self, task: _Task) -> None:
        self.task, self.started_at = task, None
        self.conn.send(task)

    def stop(self, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(None)
            except OSError:
                pass
        else:
            self.process.kill()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=10)
        self.conn.close()


def _worker_context():
    """Worker processes fork from a forkserver that imported docling once.

    Not plain fork: the parent may run threads (the KFP executor, torch) that a forked child would
    inherit half-locked. Not spawn: every worker would pay docling's multi-second import again.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["socratic_sdg.convert.stage", "docling.document_converter", "docling.pipeline.native_pdf_pipeline"])
    return ctx


def _run_pool(tasks: list[_Task], options: ConvertOptions, cache_folder: Path, workers: int, on_outcome) -> None:
    """Run tasks on ``workers`` processes; replace a worker that dies or whose file exceeds the timeout."""
    from multiprocessing.connection import wait

    ctx = _worker_context()
    pending = list(reversed(tasks))
    pool = [_Worker(ctx, options, cache_folder) for _ in range(workers)]
    outstanding = len(tasks)
    deaths_at_start = 0

    def assign(worker: _Worker) -> None:
        worker.task = None
        if pending:
            worker.give(pending.pop())

    def give_up(worker: _Worker, failure: tuple[str, str]) -> None:
        """Record the worker's file as failed and put a fresh worker in its place."""
        nonlocal outstanding, deaths_at_start
        if worker.task is not None:
            outstanding -= 1
            on_outcome(Path(worker.task.path), failure)
        else:
            deaths_at_start += 1
            if deaths_at_start > 3 * workers:
                raise ConvertError(f"the converter processes keep dying before converting anything ({failure[1]}); run with --workers 1 -v to see why")
        worker.task = None
        worker.stop(kill=True)
        pool[pool.index(worker)] = _Worker(ctx, options, cache_folder)  # asks for work when ready

    failed = True
    try:
        while outstanding:
            for conn in wait([w.conn for w in pool], timeout=0.2):
                worker = next(w for w in pool if w.conn is conn)
                try:
                    event, path, detail = conn.recv()
                except (EOFError, OSError):
                    worker.process.join(timeout=5)
                    code = worker.process.exitcode
                    give_up(worker, ("WorkerCrashed", f"the converter process died (exit code {code}) on this file"))
                    continue
                if event == "fatal":
                    raise ConvertError(detail)
                if event == "ready":
                    assign(worker)
                elif event == "started":
                    worker.started_at = time.monotonic()
                elif event in ("done", "failed"):
                    outstanding -= 1
                    on_outcome(Path(path), detail)
                    assign(worker)
            if options.timeout_seconds:
                now = time.monotonic()
                for worker in list(pool):
                    if worker.task is not None and worker.started_at and now - worker.started_at > options.timeout_seconds:
                        give_up(worker, ("Timeout", f"conversion took longer than {options.timeout_seconds:.0f}s; raise timeout_seconds or split the file"))
        failed = False
    finally:
        for worker in pool:
            worker.stop(kill=failed)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text[:300]


# ---------------------------------------------------------------------------------------------
# the stage


def run(input_dir: PathLike, output_dir: PathLike, options: ConvertOptions = ConvertOptions(), progress: Progress | None = None) -> ConvertResult:
    """Convert every supported file below ``input_dir`` (``options.shard`` of them) into ``output_dir``.

    Writes ``<name>.md`` and ``<name>.json`` per document, ``documents.jsonl`` (one record per
    converted document), ``failures.jsonl`` (``file``, ``error``, ``reason``) and
    ``convert_metrics.json``. Raises ConvertError when no file converts or more than
    ``max_failure_ratio`` of them fail; the outputs are written first.
    """
    started = time.monotonic()
    options = options.resolved()
    shard_index, num_shards = options.shard.shard_index, options.shard.num_shards
    input_root = Path(input_dir)
    out = Path(output_dir)
    cache_folder = Path(options.cache_dir) if options.cache_dir else out / ".cache"
    _check_input(input_root, shard_index, num_shards)
    if out.resolve() == input_root.resolve():
        raise ConvertError(
            f"the output folder {out} is the input folder, so the next run would convert its own Markdown; "
            f"choose another --output-dir, e.g. {out.resolve().parent / (out.resolve().name + '-converted')}"
        )
    # Names come from the whole input list, not this shard's part of it: every shard agrees.
    every_input = find_inputs(input_root, exclude=(out, cache_folder))
    inputs = every_input[shard_index::num_shards]
    if not inputs and num_shards == 1:
        raise ConvertError(
            f"no documents found in {input_root} (looked for {', '.join(SUPPORTED_SUFFIXES)} recursively); "
            "copy the PDFs there or point --input at another folder"
        )
    names = output_names(every_input, input_root)
    make_output_folder(out)
    if cache_folder.exists() and not cache_folder.is_dir():
        raise ConvertError(f"the cache folder {cache_folder} is a file; choose another --cache-dir or move the file away")
    cache = ConversionCache(cache_folder)
    fingerprint = options.fingerprint()
    result = ConvertResult()
    failures: dict[Path, dict] = {}
    hashes: dict[Path, str] = {}
    keys: dict[Path, str] = {}
    todo: list[_Task] = []
    for path in inputs:
        if path.is_file() and path.stat().st_size:
            try:
                hashes[path] = file_hash(path)
            except OSError as exc:
                failures[path] = {"file": str(path.relative_to(input_root)), "error": "Unreadable", "reason": f"cannot read the file ({exc.strerror}); "
                                                                                                              "check its permissions"}
                continue
            keys[path] = content_id(hashes[path], fingerprint)
            if cache.get(keys[path]) is not None:
                result.reused += 1
                continue
            todo.append(_Task(str(path), keys[path]))
        else:
            try:
                convert_one(None, path, options)
            except UnreadableDocument as exc:
                failures[path] = {"file": str(path.relative_to(input_root)), "error": exc.kind, "reason": str(exc)}

    done = len(inputs) - len(todo)

    def on_outcome(path: Path, failure: tuple[str, str] | None) -> None:
        nonlocal done
        done += 1
        relative = path.relative_to(input_root)
        if failure:
            failures[path] = {"file": str(relative), "error": failure[0], "reason": failure[1]}
            status = f"FAILED ({failure[0]}: {failure[1][:160]})"
        else:
            pages = cache.get(keys[path])[2]
            result.converted_pages += pages
            status = f"{pages} pages"
        if progress:
            progress(f"[convert {done}/{len(inputs)}] {relative}: {status}")

    if result.reused and progress:
        progress(f"[convert] {result.reused} of {len(inputs)} files unchanged since their last conversion: reused")
    if todo and options.pipeline == "vlm-remote":
        check_vlm_endpoint(options)  # one quick request, not minutes of retries per page
    if todo:
        workers = options.workers or os.cpu_count() or 1
        _run_pool(todo, options, cache.folder, min(workers, len(todo)), on_outcome)

    for path in inputs:
        if path in failures:
            result.failures.append(failures[path])
            continue
        markdown, document_json, pages = cache.get(keys[path])
        name = names[path]
        shutil.copyfile(markdown, out / f"{name}.md")
        shutil.copyfile(document_json, out / f"{name}.json")
        result.documents.append(
            {
                "doc_id": content_id(hashes[path]),
                "source": str(path.relative_to(input_root)),
                "markdown": f"{name}.md",
                "docling_json": f"{name}.json",
                "pages": pages,
                "pipeline": options.pipeline,
            }
        )
        result.pages += pages
    result.seconds = time.monotonic() - started
    write_outputs(out, result)
    if num_shards == 1:  # a shard alone cannot judge: merge() checks the whole run
        check_failures(result, options.max_failure_ratio, out, input_root)
    return result


def make_output_folder(out: Path) -> None:
    """Create the output folder, or say in one sentence why it cannot be."""
    if out.exists() and not out.is_dir():
        raise ConvertError(f"the output folder {out} is a file, not a folder; choose another --output-dir or move the file away")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvertError(f"cannot create the output folder {out} ({exc.strerror or exc}); choose another --output-dir") from None


def check_failures(result: ConvertResult, max_failure_ratio: float, out: Path, input_root: Path | str) -> None:
    """Fail the stage when no file converted, or too many failed (the outputs are already written)."""
    total = len(result.documents) + len(result.failures)
    if not total:
        raise ConvertError(f"no documents found in {input_root}; copy the PDFs there or point the input at another folder")
    if not result.documents:
        raise ConvertError(
            f"none of the {total} files in {input_root} could be converted; see {out / 'failures.jsonl'} for the reason per file"
        )
    if len(result.failures) / total > max_failure_ratio:
        raise ConvertError(
            f"{len(result.failures)} of {total} files failed to convert, more than the allowed "
            f"{max_failure_ratio:.0%}; see {out / 'failures.jsonl'}"
        )


def write_outputs(out: Path, result: ConvertResult) -> None:
    write_jsonl(out / artifacts.DOCUMENTS_FILE, result.documents)
    write_jsonl(out / artifacts.CONVERT_FAILURES_FILE, result.failures)
    write_json(out / artifacts.CONVERT_METRICS_FILE, result.metrics())


def merge(shard_dirs: Iterable[str | os.PathLike[str]], output_dir: str | os.PathLike[str], max_failure_ratio: float = 1.0) -> ConvertResult:
    """Combine the outputs of convert shards into one folder, as one unsharded run would write it,
    and apply the failure threshold to the whole run."""
    out = Path(output_dir)
    shards = [Path(shard) for shard in shard_dirs]
    listings = {shard: list(read_jsonl(shard / artifacts.DOCUMENTS_FILE)) for shard in shards}
    _check_merge_names(listings)  # before anything is copied
    make_output_folder(out)
    merged = ConvertResult()
    for shard in shards:
        for document in listings[shard]:
            for key in ("markdown", "docling_json"):
                shutil.copyfile(shard / document[key], out / document[key])
            merged.documents.append(document)
            merged.pages += document["pages"]
        merged.failures.extend(read_jsonl(shard / artifacts.CONVERT_FAILURES_FILE))
        metrics = json.loads((shard / artifacts.CONVERT_METRICS_FILE).read_text())
        merged.reused += metrics.get("reused_from_cache", 0)
        merged.seconds = max(merged.seconds, metrics.get("seconds", 0.0))  # shards run side by side
    merged.documents.sort(key=lambda d: d["source"])
    merged.failures.sort(key=lambda f: f["file"])
    write_outputs(out, merged)
    check_failures(merged, max_failure_ratio, out, "the input folder")
    return merged


def _check_merge_names(listings: dict[Path, list[dict]]) -> None:
    """Two shards' documents never land on one file, nor on a file the stage writes (shards written
    by an older version, or converted from different input folders, can disagree)."""
    owners: dict[str, tuple[Path, str]] = {}
    for shard, documents in listings.items():
        for document in documents:
            for key in ("markdown", "docling_json"):
                name = document[key]
                if name.casefold() in STAGE_FILES:
                    raise ConvertError(
                        f"{name} in shard {shard} (from {document['source']}) would overwrite the stage's own file; convert the shards again with this version"
                    )
                first = owners.setdefault(name.casefold(), (shard, document["source"]))
                if first != (shard, document["source"]):
                    raise ConvertError(
                        f"{name} is in both shard {first[0]} (from {first[1]}) and shard {shard} (from {document['source']}); "
                        "convert every shard from the same input folder with this version, then merge again"
                    )
