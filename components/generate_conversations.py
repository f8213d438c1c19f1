from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from .image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def generate_conversations(
    chunks: Input[Dataset],
    conversations: Output[Dataset],
    metrics: Output[Metrics],
    flow_id: str = "socratic-single-turn",
    flow_yaml_path: str = "",
    model: str = "",
    max_concurrency: int = 8,
    conversations_per_chunk: int = 1,
    max_chunks: int = 0,
    checkpoint_pvc_path: str = "",
    save_freq: int = 16,
    seed: int = 42,
    runtime_params: str = "",
    columns: str = "",
    num_retries: int = 3,
    request_timeout: float = 120.0,
):
    """Generate Socratic conversations from chunks with an sdg_hub flow.

    The endpoint comes from LLM_API_BASE / LLM_API_KEY / LLM_MODEL, injected from a Secret.

    Args:
        chunks: Output of chunk_documents.
        conversations: Folder with conversations.jsonl, failed.jsonl and generate_metrics.json.
        metrics: Requests, failures by kind, retries, tokens, wall time, requests/s.
        flow_id: Flow id (this package's or sdg_hub's registry).
        flow_yaml_path: Path to a flow YAML (e.g. mounted from a ConfigMap); wins over flow_id.
        model: Model name on the endpoint; empty uses LLM_MODEL.
        max_concurrency: Requests in flight at once.
        conversations_per_chunk: Conversations generated per chunk.
        max_chunks: Use only the first N chunks (0 = all).
        checkpoint_pvc_path: Folder (on the PVC) for progress; a subfolder per chunks file and settings, so a retried or rerun task with the same inputs resumes.
        save_freq: Fsync the checkpoint every N finished rows.
        seed: Seed of the persona and request-type sampling.
        runtime_params: sdg_hub runtime_params as JSON (e.g. per-block max_tokens).
        columns: JSON object of constant values for flow columns chunks do not provide.
        num_retries: Retries per request before its row fails.
        request_timeout: Seconds per request.
    """
    import hashlib
    import os

    from socratic_sdg import generate as stage
    from socratic_sdg.endpoint import EndpointConfig
    from socratic_sdg.records import content_id

    os.makedirs(conversations.path, exist_ok=True)
    chunks_file = os.path.join(chunks.path, "chunks.jsonl")
    checkpoint_dir = None
    if checkpoint_pvc_path:
        with open(chunks_file, "rb") as handle:
            chunks_hash = hashlib.sha256(handle.read()).hexdigest()
        settings = [flow_id, flow_yaml_path, model, conversations_per_chunk, max_chunks, seed, runtime_params, columns]
        checkpoint_dir = os.path.join(checkpoint_pvc_path, content_id(chunks_hash, settings))
    options = stage.GenerateOptions(
        flow_id=flow_id,
        flow_yaml_path=flow_yaml_path or None,
        max_concurrency=max_concurrency,
        conversations_per_chunk=conversations_per_chunk,
        max_chunks=max_chunks,
        checkpoint_dir=checkpoint_dir,
        save_freq=save_freq,
        seed=seed,
        runtime_params=stage.load_runtime_params(runtime_params) if runtime_params else None,
        columns=stage.parse_columns(columns) if columns else None,
        num_retries=num_retries,
        request_timeout=request_timeout,
    )
    endpoint = EndpointConfig.from_env(model=model or None)
    result = stage.run(chunks_file, conversations.path, options, endpoint, progress=print)
    for name, value in result.kfp_metrics().items():
        metrics.log_metric(name, value)
    for line in result.summary_lines():
        print(line)
