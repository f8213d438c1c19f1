from typing import List

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
    max_retry_after: float = 60.0,
    max_chunk_chars: int = 20000,
    shard_index: int = 0,
    num_shards: int = 1,
    target_examples: int = 0,
    max_requests: int = 0,
    rules_path: str = "",
    require_question: bool = True,
    language: str = "",
    check_leakage: bool = True,
    dedup: bool = True,
    dry_run: bool = False,
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
        max_concurrency: Requests in flight at once against the endpoint, for all shards together.
        conversations_per_chunk: Conversations generated per chunk.
        max_chunks: Use only the first N chunks (0 = all).
        checkpoint_pvc_path: Folder (on the PVC) for progress; a subfolder per chunks file, settings and shard, so a retried or rerun task with the same inputs resumes.
        save_freq: Fsync the checkpoint every N finished rows.
        seed: Seed of the persona and request-type sampling.
        runtime_params: sdg_hub runtime_params as JSON (e.g. per-block max_tokens).
        columns: JSON object of constant values for flow columns chunks do not provide.
        num_retries: Retries per request before its row fails.
        request_timeout: Seconds per request.
        max_retry_after: Longest pause, in seconds, a server's Retry-After may impose on all requests (0 = no pause).
        max_chunk_chars: Chunks with longer text are not sent; their rows are recorded in failed.jsonl as chunk_too_large (0 = no limit).
        shard_index: This task's shard (chunks at positions shard_index + k * num_shards).
        num_shards: Generation tasks in the run; max_concurrency, target_examples and max_requests are shared among them.
        target_examples: Stop starting rows once this many conversations pass the quality filter's deterministic layers (0 = all rows), for all shards together.
        max_requests: Hard cap on requests to the endpoint, for all shards together (0 = none).
        rules_path: Quality-filter rules the target is counted with (empty = packaged rules).
        require_question: As the filter: the last tutor turn must ask a question.
        language: As the filter: tutor turns in this language (empty = no check).
        check_leakage: As the filter: reject tutor turns that state the answer.
        dedup: As the filter: duplicates do not count towards the target.
        dry_run: Send no request and write empty outputs (the pipeline's estimate-only mode).
    """
    import hashlib
    import os

    from socratic_sdg import artifacts
    from socratic_sdg import generate as stage
    from socratic_sdg.endpoint import EndpointConfig
    from socratic_sdg.filter import FilterOptions
    from socratic_sdg.records import content_id

    if dry_run:
        stage.write_nothing_generated(conversations.path, "estimate only: nothing generated")
        print("estimate only: nothing generated, no request sent")
        return
    chunks_file = os.path.join(chunks.path, artifacts.CHUNKS_FILE)
    checkpoint_dir = None
    if checkpoint_pvc_path:
        with open(chunks_file, "rb") as handle:
            chunks_hash = hashlib.file_digest(handle, "sha256").hexdigest()  # streamed: the file can be large
        settings = [flow_id, flow_yaml_path, model, conversations_per_chunk, max_chunks, seed, runtime_params, columns, shard_index, num_shards]
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
        max_retry_after=max_retry_after,
        max_chunk_chars=max_chunk_chars,
        target_examples=target_examples,
        max_requests=max_requests,
        target_filter=FilterOptions(
            rules_path=rules_path or None, require_question=require_question, language=language or None,
            check_leakage=check_leakage, dedup=dedup,
        ),
    ).for_shard(shard_index, num_shards)
    endpoint = EndpointConfig.from_env(model=model or None)
    result = stage.run(chunks_file, conversations.path, options, endpoint, progress=print)
    for name, value in result.kfp_metrics().items():
        metrics.log_metric(name, value)
    for line in result.summary_lines():
        print(line)


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def merge_generated_shards(
    shards: Input[List[Dataset]],
    chunks: Input[Dataset],
    conversations: Output[Dataset],
    metrics: Output[Metrics],
):
    """Merge the generation shards into one folder, in chunk order: the same ids and order as one task.

    Args:
        shards: The conversations folders of every generation shard.
        chunks: Output of chunk_documents (gives the order).
        conversations: One folder as an unsharded generation would write it.
        metrics: The shards' requests, tokens and failures added up.
    """
    import os

    from socratic_sdg import artifacts
    from socratic_sdg import generate as stage

    result = stage.merge([shard.path for shard in shards], conversations.path, os.path.join(chunks.path, artifacts.CHUNKS_FILE))
    for name, value in result.kfp_metrics().items():
        metrics.log_metric(name, value)
    for line in result.summary_lines():
        print(line)
