"""The whole SDG pipeline: PDFs on a PVC -> train/validation JSONL for the fine-tuning pipeline.

Compiled IR YAML sits next to this file (socratic_sdg_pipeline.yaml); `socratic-sdg compile`
regenerates it and a test fails when it is stale.
"""

from pathlib import Path
from typing import Any

from kfp import dsl, kubernetes
from kfp.dsl import Dataset

from socratic_sdg.chunk import ChunkOptions
from socratic_sdg.convert import ConvertOptions
from socratic_sdg.export import ExportOptions
from socratic_sdg.filtering import FilterOptions
from socratic_sdg.generate import GenerateOptions
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

from .form import arguments as form_arguments, given, options, parameter, pipeline_of_form

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


# The dashboard's run form, in order: stage settings come from the stages' options (default and
# description), the rest is declared here. The dashboard sorts the form by dashboard name
# (form.FormField.dashboard_name: phase, then must-set before options, then the setting's name), so
# within a stage's must-set fields and within its options the fields are declared by name.
FORM = [
    parameter("llm_secret_name", "llm-endpoint", "Secret with LLM_API_BASE and LLM_API_KEY (and optionally LLM_MODEL) for the model endpoint.",
              must_set=True),
    parameter("pvc_name", "socratic-sdg-data", "PersistentVolumeClaim holding the input documents, mounted at /data in every task.", must_set=True),
    parameter("convert_input_dir", "/data/pdfs", "Folder with the PDFs (and .md/.html/.docx), searched recursively, usually under /data.",
              must_set=True),
    *options("convert_", ConvertOptions, "cache_dir", "do_formula_enrichment", "do_ocr", "do_table_structure", "max_failure_ratio", "max_pages",
             "num_shards", "pipeline", "timeout_seconds", "workers"),
    *options("chunk_", ChunkOptions, "max_tokens", "merge_small_sections", "method", "min_tokens"),
    # How much to ask of the endpoint and how big a dataset to make: no default fits every cluster.
    *options("generate_", GenerateOptions, "max_concurrency", "target_examples", must_set=True),
    parameter("generate_checkpoint_dir", "/data/checkpoints/generate",
              "Folder on the PVC where generation appends its progress, in a subfolder per chunks file and settings: a "
              "retried task or a rerun with the same inputs resumes instead of starting over (empty = no checkpoint kept)."),
    *options("generate_", GenerateOptions, "columns", "conversations_per_chunk", "domain"),
    parameter("generate_estimate_only", False, "Dry run: stop after the estimate (generation sends no request; filter and export see no record)."),
    parameter("generate_estimate_probe_rows", 8,
              "Before generating, estimate requests, tokens and time for target_examples (or 1000) from the chunks "
              "and this many probe rows generated and filtered (0 = counts and assumptions only, no request)."),
    *options("generate_", GenerateOptions, "flow_id", "flow_yaml_path", "max_chunk_chars", "max_chunks", "max_requests", "max_retry_after"),
    parameter("generate_model", "", "Model name served by the endpoint; empty uses LLM_MODEL from the Secret."),
    *options("generate_", GenerateOptions, "num_retries", "num_shards", "request_timeout", "runtime_params", "save_freq", "seed", "tutor_candidates"),
    *options("filter_", FilterOptions, "check_leakage", "dedup"),
    parameter("filter_dedup_threshold", 0.8, "Near-duplicate similarity (0-1) above which a question or conversation is a duplicate."),
    *options("filter_", FilterOptions, "judge", "judge_endpoint", "judge_max_concurrency", "judge_min_mistake_identification"),
    parameter("filter_judge_min_score", 3, "Lowest judge score (1-5) accepted for guidance, actionability, grounding and tone."),
    *options("filter_", FilterOptions, "judge_model", "language", "require_question", "rules_path"),
    # What the dataset may be used for and where the fine-tuning pipeline finds it.
    parameter("export_license", "other", "Licence id written in the dataset card (the source documents' licence).", must_set=True),
    parameter("export_pvc_path", "",
              "Also copy the dataset folder to this path on the PVC (e.g. /data/datasets/run-1) for a separate fine-tuning "
              "pipeline; empty = no copy. A run with no accepted record leaves what is there.", must_set=True),
    *options("export_", ExportOptions, "format", "max_records", "seed", "strip_metadata", "system_prompt", "validation_ratio"),
]


def arguments(**values: Any) -> dict[str, Any]:
    """The pipeline's arguments by short name, keyed as it takes them (dashboard names), to call it from code:
    ``socratic_sdg_pipeline(**arguments(pvc_name="my-pvc", generate_max_chunks=20))``."""
    return form_arguments(FORM, values)


@dsl.pipeline(name=PIPELINE_NAME, description="Turn course PDFs into a Socratic math tutor fine-tuning dataset.")
@pipeline_of_form(FORM, "Socratic SDG: PDFs -> docling -> chunks -> sdg_hub -> quality filter -> chat JSONL.", returns=Dataset)
def socratic_sdg_pipeline(p):
    shards_task = plan_shards(num_shards=p.convert_num_shards)
    set_limits(shards_task, cpu=("100m", "500m"), memory=("256Mi", "512Mi"), timeout_seconds=MINUTE * 5)
    with dsl.ParallelFor(shards_task.output) as shard_index:
        convert_task = convert_documents(shard_index=shard_index, **given(p, convert_documents, "convert_"))
        # vlm-remote reads the endpoint from the same Secret as generation.
        wire(convert_task, pvc_name=p.pvc_name, secret_name=p.llm_secret_name, cpu=("2", "4"), memory=("4Gi", "8Gi"),
             timeout_seconds=HOUR * 6)

    merge_task = merge_converted_shards(shards=dsl.Collected(convert_task.outputs["converted"]), **given(p, merge_converted_shards, "convert_"))
    set_limits(merge_task, cpu=("250m", "1"), memory=("512Mi", "2Gi"), timeout_seconds=MINUTE * 30)
    converted = merge_task.outputs["converted"]

    chunk_task = chunk_documents(converted=converted, **given(p, chunk_documents, "chunk_"))
    set_limits(chunk_task, cpu=("500m", "2"), memory=("1Gi", "4Gi"), timeout_seconds=HOUR)
    chunks = chunk_task.outputs["chunks"]

    # The estimate predicts this very run: the same generation settings and the filter acceptance is counted with.
    estimate_task = estimate_generation(chunks=chunks, probe_rows=p.generate_estimate_probe_rows,
                                        **given(p, estimate_generation, "generate_", "filter_"))
    # The PVC: a flow YAML may live there.
    wire(estimate_task, pvc_name=p.pvc_name, secret_name=p.llm_secret_name, cpu=("500m", "2"), memory=("1Gi", "4Gi"),
         timeout_seconds=HOUR, no_litellm_network=True)

    generate_shards_task = plan_shards(num_shards=p.generate_num_shards)
    set_limits(generate_shards_task, cpu=("100m", "500m"), memory=("256Mi", "512Mi"), timeout_seconds=MINUTE * 5)
    with dsl.ParallelFor(generate_shards_task.output) as generate_shard_index:
        generate_task = generate_conversations(chunks=chunks, checkpoint_pvc_path=p.generate_checkpoint_dir, shard_index=generate_shard_index,
                                               dry_run=p.generate_estimate_only, **given(p, generate_conversations, "generate_", "filter_"))
        generate_task.after(estimate_task)  # the estimate is on the dashboard before the first request
        # The checkpoint (and a flow YAML mounted from a ConfigMap) live on the PVC.
        wire(generate_task, pvc_name=p.pvc_name, secret_name=p.llm_secret_name, secret="required", cpu=("1", "2"),
             memory=("2Gi", "4Gi"), timeout_seconds=HOUR * 24, no_litellm_network=True)
        generate_task.set_retry(num_retries=2, backoff_duration="60s")  # resumes from the checkpoint

    merge_generated_task = merge_generated_shards(shards=dsl.Collected(generate_task.outputs["conversations"]), chunks=chunks)
    set_limits(merge_generated_task, cpu=("250m", "1"), memory=("512Mi", "2Gi"), timeout_seconds=HOUR)
    conversations = merge_generated_task.outputs["conversations"]

    # The dashboard has one near-duplicate threshold and one lowest judge score; the filter has one per kind.
    thresholds = dict(dedup_question_threshold=p.filter_dedup_threshold, dedup_conversation_threshold=p.filter_dedup_threshold)
    scores = {f"judge_min_{score}": p.filter_judge_min_score for score in ("guidance", "actionability", "grounding", "tone")}
    filter_task = filter_conversations(conversations=conversations, chunks=chunks, **thresholds, **scores, **given(p, filter_conversations, "filter_"))
    # The optional LLM judge reads the same endpoint Secret as generation.
    wire(filter_task, pvc_name=p.pvc_name, secret_name=p.llm_secret_name, cpu=("500m", "1"), memory=("1Gi", "2Gi"),
         timeout_seconds=HOUR * 2)

    export_task = export_dataset(converted=converted, chunks=chunks, conversations=conversations, filtered=filter_task.outputs["filtered"],
                                 **given(p, export_dataset, "export_"))
    wire(export_task, pvc_name=p.pvc_name, cpu=("250m", "1"), memory=("512Mi", "2Gi"), timeout_seconds=HOUR)
    return export_task.outputs["dataset"]


def compile_pipeline(output_path: str | Path = COMPILED_PATH) -> Path:
    from kfp import compiler

    compiler.Compiler().compile(socratic_sdg_pipeline, package_path=str(output_path))
    return Path(output_path)
