"""The whole SDG pipeline: PDFs on a PVC -> train/validation JSONL for the fine-tuning pipeline.

Compiled IR YAML sits next to this file (socratic_sdg_pipeline.yaml); `socratic-sdg compile`
regenerates it and a test fails when it is stale.
"""

from pathlib import Path

from kfp import dsl, kubernetes
from kfp.dsl import Dataset

from socratic_sdg.components import (
    chunk_documents,
    convert_documents,
    estimate_generation,
    export_dataset,
    filter_conversations,
    generate_conversations,
    merge_converted_shards,
    merge_generated_shards,
    plan_shards,
)

PIPELINE_NAME = "socratic-sdg"
COMPILED_PATH = Path(__file__).with_name("socratic_sdg_pipeline.yaml")
DATA_MOUNT_PATH = "/data"  # where the PVC named by pvc_name is mounted in every task
# Keys of the Secret named by llm_secret_name, injected as environment variables of the same names.
LLM_SECRET_KEYS = ("LLM_API_BASE", "LLM_API_KEY")
LLM_SECRET_OPTIONAL_KEYS = ("LLM_MODEL",)
MINUTE, HOUR = 60, 3600


def set_limits(task, cpu: tuple[str, str], memory: tuple[str, str], timeout_seconds: int):
    """Requests and limits (request, limit) and a deadline for a task's pod."""
    task.set_cpu_request(cpu[0]).set_cpu_limit(cpu[1]).set_memory_request(memory[0]).set_memory_limit(memory[1])
    kubernetes.set_timeout(task, timeout_seconds)
    return task


def wire(task, *, cpu: tuple[str, str], memory: tuple[str, str], timeout_seconds: int, pvc_name=None,
         secret_name=None, secret: str = "optional", no_litellm_network: bool = False):
    """Everything a task's pod needs besides its inputs: the data PVC at DATA_MOUNT_PATH (when
    ``pvc_name``), the endpoint Secret as environment variables (when ``secret_name``; "required":
    LLM_API_BASE and LLM_API_KEY must exist, LLM_MODEL may), requests, limits and a deadline."""
    if secret_name is not None:
        if secret == "required":
            kubernetes.use_secret_as_env(task, secret_name=secret_name, secret_key_to_env={k: k for k in LLM_SECRET_KEYS})
            optional_keys = LLM_SECRET_OPTIONAL_KEYS
        else:
            optional_keys = LLM_SECRET_KEYS + LLM_SECRET_OPTIONAL_KEYS
        kubernetes.use_secret_as_env(task, secret_name=secret_name, secret_key_to_env={k: k for k in optional_keys}, optional=True)
    if pvc_name is not None:
        kubernetes.mount_pvc(task, pvc_name=pvc_name, mount_path=DATA_MOUNT_PATH)
    if no_litellm_network:
        task.set_env_variable("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm fetches a cost map at import otherwise
    return set_limits(task, cpu=cpu, memory=memory, timeout_seconds=timeout_seconds)


@dsl.pipeline(name=PIPELINE_NAME, description="Turn course PDFs into a Socratic math tutor fine-tuning dataset.")
def socratic_sdg_pipeline(
    pvc_name: str = "socratic-sdg-data",
    llm_secret_name: str = "llm-endpoint",
    convert_input_dir: str = "/data/pdfs",
    convert_pipeline: str = "standard",
    convert_num_shards: int = 1,
    convert_workers: int = 0,
    convert_timeout_seconds: float = 300.0,
    convert_max_pages: int = 0,
    convert_max_failure_ratio: float = 0.5,
    convert_do_ocr: bool = False,
    convert_do_table_structure: bool = True,
    convert_do_formula_enrichment: bool = False,
    convert_cache_dir: str = "/data/.cache/socratic-sdg/convert",
    chunk_method: str = "structure",
    chunk_max_tokens: int = 512,
    chunk_min_tokens: int = 64,
    chunk_merge_small_sections: bool = True,
    generate_flow_id: str = "socratic-single-turn",
    generate_flow_yaml_path: str = "",
    generate_model: str = "",
    generate_max_concurrency: int = 8,
    generate_num_shards: int = 1,
    generate_target_examples: int = 0,
    generate_max_requests: int = 0,
    generate_estimate_probe_rows: int = 8,
    generate_estimate_only: bool = False,
    generate_conversations_per_chunk: int = 1,
    generate_max_chunks: int = 0,
    generate_checkpoint_dir: str = "/data/checkpoints/generate",
    generate_save_freq: int = 16,
    generate_seed: int = 42,
    generate_runtime_params: str = "",
    generate_columns: str = "",
    generate_num_retries: int = 3,
    generate_request_timeout: float = 120.0,
    generate_max_retry_after: float = 60.0,
    generate_max_chunk_chars: int = 20000,
    generate_domain: str = "mathematics",
    filter_rules_path: str = "",
    filter_require_question: bool = True,
    filter_language: str = "",
    filter_check_leakage: bool = True,
    filter_dedup: bool = True,
    filter_dedup_threshold: float = 0.8,
    filter_judge: bool = False,
    filter_judge_endpoint: str = "",
    filter_judge_model: str = "",
    filter_judge_max_concurrency: int = 8,
    filter_judge_min_score: int = 3,
    filter_judge_min_mistake_identification: int = 3,
    export_validation_ratio: float = 0.1,
    export_seed: int = 42,
    export_format: str = "messages",
    export_system_prompt: str = "",
    export_strip_metadata: bool = False,
    export_max_records: int = 0,
    export_license: str = "other",
    export_pvc_path: str = "",
) -> Dataset:
    """Socratic SDG: PDFs -> docling -> chunks -> sdg_hub -> quality filter -> chat JSONL.

    Args:
        pvc_name: PersistentVolumeClaim holding the input documents, mounted at /data in every task.
        llm_secret_name: Secret with LLM_API_BASE and LLM_API_KEY (and optionally LLM_MODEL) for the model endpoint.
        convert_input_dir: Folder with the PDFs (and .md/.html/.docx), searched recursively, usually under /data.
        convert_pipeline: docling pipeline: native (the PDF's text layer, no models), standard (layout, tables, OCR, formulas; models from DOCLING_ARTIFACTS_PATH, baked in the conversion image) or vlm-remote (a vision model behind LLM_API_BASE).
        convert_num_shards: Tasks the stage is fanned out to, each on every num_shards-th input, merged back in input order; run-wide budgets are split among them.
        convert_workers: Worker processes (0 = one per core, at most one per file).
        convert_timeout_seconds: Seconds per file before it is given up and recorded as failed (0 = no limit).
        convert_max_pages: Files with more pages are recorded as failed (0 = no limit).
        convert_max_failure_ratio: Fail the run when more than this share of the documents cannot be converted (1.0: only when none converts).
        convert_do_ocr: Standard pipeline: OCR for scanned pages.
        convert_do_table_structure: Standard pipeline: tables as Markdown tables.
        convert_do_formula_enrichment: Standard pipeline: formulas as LaTeX (needs the formula model).
        convert_cache_dir: Folder where conversions are cached by content and settings, shared by runs, so unchanged files are not converted again (empty: a .cache folder in the output).
        chunk_method: structure (keeps a problem with its solution), hybrid (docling HybridChunker) or hierarchical (one chunk per paragraph).
        chunk_max_tokens: Largest chunk, in tokens.
        chunk_min_tokens: Sections smaller than this merge into a neighbour; smaller leftovers are dropped.
        chunk_merge_small_sections: Merge sections below min_tokens into their neighbours.
        generate_flow_id: sdg_hub flow id: socratic-single-turn, socratic-multi-turn, or any flow from the sdg_hub registry.
        generate_flow_yaml_path: Path to a flow YAML (e.g. mounted from a ConfigMap); wins over flow_id.
        generate_model: Model name served by the endpoint; empty uses LLM_MODEL from the Secret.
        generate_max_concurrency: Requests in flight at once against the endpoint, for all shards together (size it to what the endpoint serves).
        generate_num_shards: Tasks the stage is fanned out to, each on every num_shards-th input, merged back in input order; run-wide budgets are split among them.
        generate_target_examples: Stop starting new rows once this many conversations pass the quality filter's rules, leakage check and dedup (0 = generate from every chunk), for all shards together; the filter stage still has the last word.
        generate_max_requests: Hard cap on requests to the endpoint for the whole run, all shards together (0 = none).
        generate_estimate_probe_rows: Before generating, estimate requests, tokens and time for generate_target_examples (or 1000) from the chunks and this many probe rows generated and filtered (0 = counts and assumptions only, no request).
        generate_estimate_only: Dry run: stop after the estimate (generation sends no request; filter and export see no record).
        generate_conversations_per_chunk: Conversations generated per chunk.
        generate_max_chunks: Generate from the first N chunks only (0 = all); small values make quick trial runs.
        generate_checkpoint_dir: Folder on the PVC where generation appends its progress, in a subfolder per chunks file and settings: a retried task or a rerun with the same inputs resumes instead of starting over (empty = no checkpoint kept).
        generate_save_freq: Fsync the checkpoint every N finished rows (and at least every second).
        generate_seed: Seed of the student persona and request-type sampling, and of each request's sampling.
        generate_runtime_params: sdg_hub runtime_params as JSON (or a .json/.yaml file on the command line), e.g. {"generate_tutor_reply": {"max_tokens": 300}}.
        generate_columns: JSON object of constant values for flow columns that chunks do not provide (on the command line: --column NAME=VALUE, repeatable).
        generate_num_retries: Retries per request (backoff with jitter, Retry-After honoured) before its row is recorded as failed.
        generate_request_timeout: Seconds per request to the endpoint.
        generate_max_retry_after: Longest pause, in seconds, an endpoint's Retry-After may impose on all requests (the progress log says when it asks); 0 = no pause.
        generate_max_chunk_chars: Chunks with longer text are not sent to the endpoint; their rows are recorded as chunk_too_large (0 = no limit).
        generate_domain: The domain column some flows require.
        filter_rules_path: Rules YAML (e.g. mounted from a ConfigMap); empty uses the packaged rules.
        filter_require_question: Reject conversations whose last tutor turn does not ask a question.
        filter_language: Reject tutor turns not in this language (e.g. en); empty = no language check.
        filter_check_leakage: Reject tutor turns that state the hidden reference answer or solve the student's problem.
        filter_dedup: Remove exact and near-duplicate student questions and conversations.
        filter_dedup_threshold: Near-duplicate similarity (0-1) above which a question or conversation is a duplicate.
        filter_judge: Also score the conversations the other layers accept with an LLM judge (more requests to the endpoint).
        filter_judge_endpoint: Judge base URL; empty uses LLM_API_BASE from the Secret. Setting it switches the judge on.
        filter_judge_model: Judge model; empty uses LLM_MODEL from the Secret (else the endpoint's first model).
        filter_judge_max_concurrency: Judge requests in flight at once.
        filter_judge_min_score: Lowest judge score (1-5) accepted for guidance, actionability, grounding and tone.
        filter_judge_min_mistake_identification: Lowest judge score (1-5) accepted for noticing the student's mistake (3 = to some extent; 0 = off). Not scored when the student made none.
        export_validation_ratio: Share of source chunks whose conversations go to validation.jsonl.
        export_seed: Seed of the grouped train/validation split.
        export_format: messages (chat format, for training_hub and dataset_download) or prompt_completion (TRL).
        export_system_prompt: A system turn prepended to every record; empty keeps user/assistant only.
        export_strip_metadata: Drop the hidden reference answer and the filter scores from the records.
        export_max_records: Keep at most this many records, balanced across source documents (0 = all).
        export_license: Licence id written in the dataset card (the source documents' licence).
        export_pvc_path: Also copy the dataset folder to this path on the PVC (e.g. /data/datasets/run-1) for a separate fine-tuning pipeline; empty = no copy. A run with no accepted record leaves what is there.
    """
    shards_task = plan_shards(num_shards=convert_num_shards)
    set_limits(shards_task, cpu=("100m", "500m"), memory=("256Mi", "512Mi"), timeout_seconds=MINUTE * 5)
    with dsl.ParallelFor(shards_task.output) as shard_index:
        convert_task = convert_documents(
            input_dir=convert_input_dir,
            shard_index=shard_index,
            num_shards=convert_num_shards,
            pipeline=convert_pipeline,
            do_ocr=convert_do_ocr,
            do_table_structure=convert_do_table_structure,
            do_formula_enrichment=convert_do_formula_enrichment,
            workers=convert_workers,
            timeout_seconds=convert_timeout_seconds,
            max_pages=convert_max_pages,
            cache_dir=convert_cache_dir,
        )
        # vlm-remote reads the endpoint from the same Secret as generation.
        wire(convert_task, pvc_name=pvc_name, secret_name=llm_secret_name, cpu=("2", "4"), memory=("4Gi", "8Gi"),
             timeout_seconds=HOUR * 6)

    merge_task = merge_converted_shards(
        shards=dsl.Collected(convert_task.outputs["converted"]), max_failure_ratio=convert_max_failure_ratio
    )
    set_limits(merge_task, cpu=("250m", "1"), memory=("512Mi", "2Gi"), timeout_seconds=MINUTE * 30)
    converted = merge_task.outputs["converted"]

    chunk_task = chunk_documents(
        converted=converted,
        method=chunk_method,
        max_tokens=chunk_max_tokens,
        min_tokens=chunk_min_tokens,
        merge_small_sections=chunk_merge_small_sections,
    )
    set_limits(chunk_task, cpu=("500m", "2"), memory=("1Gi", "4Gi"), timeout_seconds=HOUR)

    # The generation run and the filter acceptance is counted with: the estimate predicts this very run.
    generation = dict(
        chunks=chunk_task.outputs["chunks"],
        target_examples=generate_target_examples,
        flow_id=generate_flow_id,
        flow_yaml_path=generate_flow_yaml_path,
        model=generate_model,
        max_concurrency=generate_max_concurrency,
        conversations_per_chunk=generate_conversations_per_chunk,
        max_chunks=generate_max_chunks,
        seed=generate_seed,
        runtime_params=generate_runtime_params,
        columns=generate_columns,
        num_retries=generate_num_retries,
        request_timeout=generate_request_timeout,
        max_retry_after=generate_max_retry_after,
        max_chunk_chars=generate_max_chunk_chars,
        domain=generate_domain,
        rules_path=filter_rules_path,
        require_question=filter_require_question,
        language=filter_language,
        check_leakage=filter_check_leakage,
    )
    estimate_task = estimate_generation(probe_rows=generate_estimate_probe_rows, **generation)
    # The PVC: a flow YAML may live there.
    wire(estimate_task, pvc_name=pvc_name, secret_name=llm_secret_name, cpu=("500m", "2"), memory=("1Gi", "4Gi"),
         timeout_seconds=HOUR, no_litellm_network=True)

    generate_shards_task = plan_shards(num_shards=generate_num_shards)
    set_limits(generate_shards_task, cpu=("100m", "500m"), memory=("256Mi", "512Mi"), timeout_seconds=MINUTE * 5)
    with dsl.ParallelFor(generate_shards_task.output) as generate_shard_index:
        generate_task = generate_conversations(
            **generation,
            checkpoint_pvc_path=generate_checkpoint_dir,
            save_freq=generate_save_freq,
            shard_index=generate_shard_index,
            num_shards=generate_num_shards,
            max_requests=generate_max_requests,
            dedup=filter_dedup,
            dry_run=generate_estimate_only,
        )
        generate_task.after(estimate_task)  # the estimate is on the dashboard before the first request
        # The checkpoint (and a flow YAML mounted from a ConfigMap) live on the PVC.
        wire(generate_task, pvc_name=pvc_name, secret_name=llm_secret_name, secret="required", cpu=("1", "2"),
             memory=("2Gi", "4Gi"), timeout_seconds=HOUR * 24, no_litellm_network=True)
        generate_task.set_retry(num_retries=2, backoff_duration="60s")  # resumes from the checkpoint

    merge_generated_task = merge_generated_shards(
        shards=dsl.Collected(generate_task.outputs["conversations"]), chunks=chunk_task.outputs["chunks"]
    )
    set_limits(merge_generated_task, cpu=("250m", "1"), memory=("512Mi", "2Gi"), timeout_seconds=HOUR)
    conversations = merge_generated_task.outputs["conversations"]

    filter_task = filter_conversations(
        conversations=conversations,
        chunks=chunk_task.outputs["chunks"],
        rules_path=filter_rules_path,
        require_question=filter_require_question,
        language=filter_language,
        check_leakage=filter_check_leakage,
        dedup=filter_dedup,
        dedup_question_threshold=filter_dedup_threshold,
        dedup_conversation_threshold=filter_dedup_threshold,
        judge=filter_judge,
        judge_endpoint=filter_judge_endpoint,
        judge_model=filter_judge_model,
        judge_max_concurrency=filter_judge_max_concurrency,
        judge_min_guidance=filter_judge_min_score,
        judge_min_actionability=filter_judge_min_score,
        judge_min_grounding=filter_judge_min_score,
        judge_min_tone=filter_judge_min_score,
        judge_min_mistake_identification=filter_judge_min_mistake_identification,
    )
    # The optional LLM judge reads the same endpoint Secret as generation.
    wire(filter_task, pvc_name=pvc_name, secret_name=llm_secret_name, cpu=("500m", "1"), memory=("1Gi", "2Gi"),
         timeout_seconds=HOUR * 2)

    export_task = export_dataset(
        converted=converted,
        chunks=chunk_task.outputs["chunks"],
        conversations=conversations,
        filtered=filter_task.outputs["filtered"],
        validation_ratio=export_validation_ratio,
        seed=export_seed,
        format=export_format,
        system_prompt=export_system_prompt,
        strip_metadata=export_strip_metadata,
        max_records=export_max_records,
        license=export_license,
        pvc_path=export_pvc_path,
    )
    wire(export_task, pvc_name=pvc_name, cpu=("250m", "1"), memory=("512Mi", "2Gi"), timeout_seconds=HOUR)
    return export_task.outputs["dataset"]


def compile_pipeline(output_path: str | Path = COMPILED_PATH) -> Path:
    from kfp import compiler

    compiler.Compiler().compile(socratic_sdg_pipeline, package_path=str(output_path))
    return Path(output_path)
