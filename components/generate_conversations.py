from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from .image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def generate_conversations(
    chunks: Input[Dataset],
    conversations: Output[Dataset],
    flow_id: str = "socratic-single-turn",
    flow_yaml_path: str = "",
    model: str = "",
    max_concurrency: int = 8,
    conversations_per_chunk: int = 1,
    max_chunks: int = 0,
):
    """Generate Socratic conversations from chunks with an sdg_hub flow.

    The endpoint comes from LLM_API_BASE / LLM_API_KEY / LLM_MODEL, injected from a Secret.

    Args:
        chunks: Output of chunk_documents.
        conversations: Folder with conversations.jsonl, failed.jsonl and generate_metrics.json.
        flow_id: Flow id (this package's or sdg_hub's registry).
        flow_yaml_path: Path to a flow YAML (e.g. mounted from a ConfigMap); wins over flow_id.
        model: Model name on the endpoint; empty uses LLM_MODEL.
        max_concurrency: Requests in flight at once.
        conversations_per_chunk: Conversations generated per chunk.
        max_chunks: Use only the first N chunks (0 = all).
    """
    import os

    from socratic_sdg import generate as stage
    from socratic_sdg.endpoint import EndpointConfig

    os.makedirs(conversations.path, exist_ok=True)
    options = stage.GenerateOptions(
        flow_id=flow_id,
        flow_yaml_path=flow_yaml_path or None,
        max_concurrency=max_concurrency,
        conversations_per_chunk=conversations_per_chunk,
        max_chunks=max_chunks,
    )
    endpoint = EndpointConfig.from_env(model=model or None)
    result = stage.run(os.path.join(chunks.path, "chunks.jsonl"), conversations.path, options, endpoint, progress=print)
    print(f"{result.output_rows} conversations, {result.failed_rows} rows failed")
