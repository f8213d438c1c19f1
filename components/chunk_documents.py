from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from .image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def chunk_documents(
    converted: Input[Dataset],
    chunks: Output[Dataset],
    method: str = "structure",
    max_tokens: int = 512,
    min_tokens: int = 64,
    merge_small_sections: bool = True,
):
    """Cut converted documents into chunks (chunks.jsonl in the output folder).

    Args:
        converted: Output of the conversion.
        chunks: Folder with chunks.jsonl, chunks_dropped.jsonl and chunk_metrics.json.
        method: structure (keeps a problem with its solution), hybrid (docling HybridChunker) or hierarchical (one chunk per paragraph).
        max_tokens: Largest chunk, in tokens.
        min_tokens: Sections smaller than this merge into a neighbour; smaller leftovers are dropped.
        merge_small_sections: Merge sections below min_tokens into their neighbours.
    """
    import os

    from socratic_sdg import artifacts
    from socratic_sdg import chunk as stage

    os.makedirs(chunks.path, exist_ok=True)
    from socratic_sdg.options import from_params

    options = from_params(stage.ChunkOptions, dict(method=method, max_tokens=max_tokens, min_tokens=min_tokens,
                                                   merge_small_sections=merge_small_sections))
    result = stage.run(converted.path, os.path.join(chunks.path, artifacts.CHUNKS_FILE), options, progress=print)
    print("\n".join(result.summary_lines()))
