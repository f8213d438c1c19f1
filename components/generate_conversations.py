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
    tutor_candidates: int = 1,
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
    domain: str = "mathematics",
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
    rules_path, require_question, language, check_leakage and dedup are the quality-filter settings
    target_examples is counted with.

    Args:
        chunks: Output of chunk_documents.
        conversations: Folder with conversations.jsonl, failed.jsonl and generate_metrics.json.
        metrics: Requests, failures by kind, retries, tokens, wall time, requests/s.
        flow_id: sdg_hub flow id: socratic-single-turn, socratic-multi-turn, or any flow from the sdg_hub registry.
        flow_yaml_path: Path to a flow YAML (e.g. mounted from a ConfigMap); wins over flow_id.
        model: Model name on the endpoint; empty uses LLM_MODEL.
        max_concurrency: Requests in flight at once against the endpoint, for all shards together (size it to what the endpoint serves).
        conversations_per_chunk: Conversations generated per chunk.
        tutor_candidates: Tutor replies generated per tutor turn (best of k): the student side and reference answer are generated once, the conversation goes on with the reply the filter's rules like best, and the rejected ones become preference pairs.
        max_chunks: Generate from the first N chunks only (0 = all); small values make quick trial runs.
        checkpoint_pvc_path: Folder (on the PVC) for progress; a subfolder per chunks file, settings and shard, so a retried or rerun task with the same inputs resumes.
        save_freq: Fsync the checkpoint every N finished rows (and at least every second).
        seed: Seed of the student persona and request-type sampling, and of each request's sampling.
        runtime_params: sdg_hub runtime_params as JSON (or a .json/.yaml file on the command line), e.g. {"generate_tutor_reply": {"max_tokens": 300}}.
        columns: JSON object of constant values for flow columns that chunks do not provide (on the command line: --column NAME=VALUE, repeatable).
        num_retries: Retries per request (backoff with jitter, Retry-After honoured) before its row is recorded as failed.
        request_timeout: Seconds per request to the endpoint.
        max_retry_after: Longest pause, in seconds, an endpoint's Retry-After may impose on all requests (the progress log says when it asks); 0 = no pause.
        max_chunk_chars: Chunks with longer text are not sent to the endpoint; their rows are recorded as chunk_too_large (0 = no limit).
        domain: The domain column some flows require.
        shard_index: This task's shard: the inputs at positions shard_index, shard_index + num_shards, ... (0-based).
        num_shards: Tasks the stage is fanned out to, each on every num_shards-th input, merged back in input order; run-wide budgets are split among them.
        target_examples: Stop starting new rows once this many conversations pass the quality filter's rules, leakage check and dedup (0 = generate from every chunk), for all shards together; the filter stage still has the last word.
        max_requests: Hard cap on requests to the endpoint for the whole run, all shards together (0 = none).
        rules_path: Rules YAML (e.g. mounted from a ConfigMap); empty uses the packaged rules.
        require_question: Reject conversations whose last tutor turn does not ask a question.
        language: Reject tutor turns not in this language (e.g. en); empty = no language check.
        check_leakage: Reject tutor turns that state the hidden reference answer or solve the student's problem.
        dedup: Remove exact and near-duplicate student questions and conversations.
        dry_run: Send no request and write empty outputs (the pipeline's estimate-only mode).
    """
    params = dict(locals())  # the parameters, before any other name is bound

    import dataclasses
    import hashlib
    import os

    from socratic_sdg import artifacts
    from socratic_sdg import generate as stage
    from socratic_sdg.endpoint import EndpointConfig
    from socratic_sdg.filtering import FilterOptions
    from socratic_sdg.options import from_params, output_settings
    from socratic_sdg.records import content_id

    if dry_run:
        stage.write_nothing_generated(conversations.path, "estimate only: nothing generated")
        print("estimate only: nothing generated, no request sent")
        return
    chunks_file = os.path.join(chunks.path, artifacts.CHUNKS_FILE)
    options = from_params(stage.GenerateOptions, params)
    if checkpoint_pvc_path:  # a folder per chunks file, model and settings: a retried or rerun task resumes
        with open(chunks_file, "rb") as handle:
            chunks_hash = hashlib.file_digest(handle, "sha256").hexdigest()  # streamed: the file can be large
        key = content_id(chunks_hash, model, output_settings(options))
        options = dataclasses.replace(options, checkpoint_dir=os.path.join(checkpoint_pvc_path, key))
    # the filter settings the target is counted with (rules_path, require_question, language, check_leakage, dedup)
    options = dataclasses.replace(options, target_filter=from_params(FilterOptions, params)).for_shard(shard_index, num_shards)
    endpoint = EndpointConfig.from_env(model=model or None)
    result = stage.run(chunks_file, conversations.path, options, endpoint, progress=print)
    result.log(metrics)


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
    result.log(metrics)
