"""Stage 1, convert: PDFs (and Markdown, HTML, DOCX) -> one Markdown + one docling JSON per document, with docling.
"""

from .stage import (
    ConversionCache, ConvertError, ConvertOptions, ConvertResult, ENDPOINT_CHECK_SECONDS, MODELS_HINT, PIPELINES, RESERVED_NAMES, STAGE_FILES,
    SUPPORTED_SUFFIXES, UnreadableDocument, check_failures, check_vlm_endpoint, convert_one, diagnose_pdf, file_hash, find_inputs, make_converter,
    make_output_folder, merge, output_names, run, write_outputs
)

__all__ = [
    "ConversionCache", "ConvertError", "ConvertOptions", "ConvertResult", "ENDPOINT_CHECK_SECONDS", "MODELS_HINT", "PIPELINES", "RESERVED_NAMES",
    "STAGE_FILES", "SUPPORTED_SUFFIXES", "UnreadableDocument", "check_failures", "check_vlm_endpoint", "convert_one", "diagnose_pdf", "file_hash",
    "find_inputs", "make_converter", "make_output_folder", "merge", "output_names", "run", "write_outputs"
]
