from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from .image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def chunk_documents(
    converted: Input[Dataset],
    chunks: Output[Dataset],
    target_chars: int = 1500,
    min_chars: int = 200,
):
    """Cut converted documents into structure-aware chunks (chunks.jsonl in the output folder).

    Args:
        converted: Output of convert_documents.
        chunks: Folder with chunks.jsonl, chunks_dropped.jsonl and chunk_metrics.json.
        target_chars: Merge consecutive pieces of a section up to about this many characters.
        min_chars: Drop chunks shorter than this.
    """
    import os

    from socratic_sdg import chunk as stage

    os.makedirs(chunks.path, exist_ok=True)
    options = stage.ChunkOptions(target_chars=target_chars, min_chars=min_chars)
    result = stage.run(converted.path, os.path.join(chunks.path, "chunks.jsonl"), options, progress=print)
    print(f"{result.chunks} chunks, {result.dropped} dropped as noise")
