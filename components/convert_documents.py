from kfp import dsl
from kfp.dsl import Dataset, Output

from .image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def convert_documents(
    input_dir: str,
    converted: Output[Dataset],
    pipeline: str = "native",
    max_pages: int = 0,
    max_failure_ratio: float = 0.5,
):
    """Convert every PDF (and .md/.html/.docx) below input_dir with docling.

    Args:
        input_dir: Folder with the documents (on the mounted PVC).
        converted: Folder with <name>.md + <name>.json per document, documents.jsonl, failures.jsonl, convert_metrics.json.
        pipeline: docling pipeline: native (text layer, no models) or standard (layout model).
        max_pages: Skip pages beyond this many per document (0 = no limit).
        max_failure_ratio: Fail the stage when more than this share of the files fail to convert.
    """
    from socratic_sdg import convert as stage

    options = stage.ConvertOptions(pipeline=pipeline, max_pages=max_pages, max_failure_ratio=max_failure_ratio)
    result = stage.run(input_dir, converted.path, options, progress=print)
    print(f"converted {len(result.documents)} documents, {len(result.failures)} failed")
