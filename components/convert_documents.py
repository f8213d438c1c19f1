from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from .image import CONVERT_IMAGE, RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def plan_shards(num_shards: int) -> list:
    """The shard indexes 0..num_shards-1 that ParallelFor fans out over.

    Args:
        num_shards: How many conversion tasks share the input folder.
    """
    return list(range(max(1, num_shards)))


@dsl.component(base_image=CONVERT_IMAGE, install_kfp_package=False)
def convert_documents(
    input_dir: str,
    converted: Output[Dataset],
    shard_index: int = 0,
    num_shards: int = 1,
    pipeline: str = "native",
    do_ocr: bool = False,
    do_table_structure: bool = True,
    do_formula_enrichment: bool = False,
    workers: int = 0,
    timeout_seconds: float = 300.0,
    max_pages: int = 0,
    cache_dir: str = "",
):
    """Convert one shard of the documents below input_dir with docling.

    Args:
        input_dir: Folder with the documents (on the mounted PVC).
        converted: Folder with <name>.md + <name>.json per document, documents.jsonl, failures.jsonl, convert_metrics.json.
        shard_index: Which shard of the sorted file list this task converts.
        num_shards: How many shards the file list is cut into.
        pipeline: docling pipeline: native, standard or vlm-remote.
        do_ocr: Standard pipeline: OCR scanned pages.
        do_table_structure: Standard pipeline: tables as Markdown tables.
        do_formula_enrichment: Standard pipeline: formulas as LaTeX.
        workers: Worker processes (0 = one per core of the pod).
        timeout_seconds: Seconds per file before it is given up (0 = none).
        max_pages: Files with more pages fail with a reason (0 = no limit).
        cache_dir: Conversion cache folder on the PVC, shared by runs (empty = none kept).
    """
    from socratic_sdg import convert as stage

    options = stage.ConvertOptions(
        pipeline=pipeline,
        do_ocr=do_ocr,
        do_table_structure=do_table_structure,
        do_formula_enrichment=do_formula_enrichment,
        workers=workers,
        timeout_seconds=timeout_seconds,
        max_pages=max_pages,
        cache_dir=cache_dir or None,
    )
    # The failure threshold is applied to the whole run by merge_converted_shards.
    result = stage.run(input_dir, converted.path, options, progress=print, shard_index=shard_index, num_shards=num_shards)
    print(f"shard {shard_index}/{num_shards}: converted {len(result.documents)} documents, {len(result.failures)} failed")


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def merge_converted_shards(
    shards: Input[List[Dataset]],
    converted: Output[Dataset],
    max_failure_ratio: float = 0.5,
):
    """Merge the conversion shards into one folder and apply the failure threshold to the whole run.

    Args:
        shards: The converted folders of every shard.
        converted: One folder as an unsharded conversion would write it.
        max_failure_ratio: Fail the run when more than this share of the documents cannot be converted.
    """
    from socratic_sdg import convert as stage

    result = stage.merge([shard.path for shard in shards], converted.path, max_failure_ratio=max_failure_ratio)
    print(f"converted {len(result.documents)} documents ({result.pages} pages), {len(result.failures)} failed")
    for failure in result.failures:
        print(f"  failed: {failure['file']}: {failure['error']}: {failure['reason']}")
