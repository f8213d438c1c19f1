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
    vlm_model: str = "",
):
    """Convert one shard of the documents below input_dir with docling.

    Args:
        input_dir: Folder with the documents (on the mounted PVC).
        converted: Folder with <name>.md + <name>.json per document, documents.jsonl, failures.jsonl, convert_metrics.json.
        shard_index: This task's shard: the inputs at positions shard_index, shard_index + num_shards, ... (0-based).
        num_shards: Tasks the stage is fanned out to, each on every num_shards-th input, merged back in input order; run-wide budgets are split among them.
        pipeline: docling pipeline: native (the PDF's text layer, no models), standard (layout, tables, OCR, formulas; models from DOCLING_ARTIFACTS_PATH, baked in the conversion image) or vlm-remote (a vision model behind LLM_API_BASE).
        do_ocr: Standard pipeline: OCR for scanned pages.
        do_table_structure: Standard pipeline: tables as Markdown tables.
        do_formula_enrichment: Standard pipeline: formulas as LaTeX (needs the formula model).
        workers: Worker processes (0 = one per core, at most one per file).
        timeout_seconds: Seconds per file before it is given up and recorded as failed (0 = no limit).
        max_pages: Files with more pages are recorded as failed (0 = no limit).
        cache_dir: Folder where conversions are cached by content and settings, shared by runs, so unchanged files are not converted again (empty: a .cache folder in the output).
        vlm_model: vlm-remote pipeline: the vision model; empty uses VLM_MODEL, then LLM_MODEL.
    """
    params = dict(locals())  # the parameters, before any other name is bound

    from socratic_sdg import convert as stage
    from socratic_sdg.options import from_params

    # The failure threshold is applied to the whole run by merge_converted_shards.
    result = stage.run(input_dir, converted.path, from_params(stage.ConvertOptions, params, max_failure_ratio=1.0), progress=print)
    print(f"shard {shard_index}/{num_shards}: " + "\n".join(result.summary_lines()))


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def merge_converted_shards(
    shards: Input[List[Dataset]],
    converted: Output[Dataset],
    max_failure_ratio: float = 1.0,
):
    """Merge the conversion shards into one folder and apply the failure threshold to the whole run.

    Args:
        shards: The converted folders of every shard.
        converted: One folder as an unsharded conversion would write it.
        max_failure_ratio: Fail the run when more than this share of the documents cannot be converted (1.0: only when none converts).
    """
    from socratic_sdg import convert as stage

    result = stage.merge([shard.path for shard in shards], converted.path, max_failure_ratio=max_failure_ratio)
    print("\n".join(result.summary_lines()))
