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
    export_dataset,
    filter_conversations,
    generate_conversations,
)

PIPELINE_NAME = "socratic-sdg"
COMPILED_PATH = Path(__file__).with_name("socratic_sdg_pipeline.yaml")
DATA_MOUNT_PATH = "/data"  # where the PVC named by pvc_name is mounted in every task
# Keys of the Secret named by llm_secret_name, injected as environment variables of the same names.
LLM_SECRET_KEYS = ("LLM_API_BASE", "LLM_API_KEY")
LLM_SECRET_OPTIONAL_KEYS = ("LLM_MODEL",)


@dsl.pipeline(name=PIPELINE_NAME, description="Turn course PDFs into a Socratic math tutor fine-tuning dataset.")
def socratic_sdg_pipeline(
    pvc_name: str = "socratic-sdg-data",
    llm_secret_name: str = "llm-endpoint",
    convert_input_dir: str = "/data/pdfs",
    convert_pipeline: str = "native",
    convert_max_pages: int = 0,
    convert_max_failure_ratio: float = 0.5,
    chunk_target_chars: int = 1500,
    chunk_min_chars: int = 200,
    generate_flow_id: str = "socratic-single-turn",
    generate_flow_yaml_path: str = "",
    generate_model: str = "",
    generate_max_concurrency: int = 8,
    generate_conversations_per_chunk: int = 1,
    generate_max_chunks: int = 0,
    filter_rules_path: str = "",
    filter_require_question: bool = True,
    export_validation_ratio: float = 0.1,
    export_seed: int = 42,
) -> Dataset:
    """Socratic SDG: PDFs -> docling -> chunks -> sdg_hub -> quality filter -> chat JSONL.

    Args:
        pvc_name: PersistentVolumeClaim holding the input documents, mounted at /data in every task.
        llm_secret_name: Secret with LLM_API_BASE and LLM_API_KEY (and optionally LLM_MODEL) for the model endpoint.
        convert_input_dir: Folder with the PDFs (and .md/.html/.docx), usually under /data.
        convert_pipeline: docling pipeline: native (PDF text layer, no models) or standard (layout model baked in the image).
        convert_max_pages: Convert at most this many pages per document (0 = all).
        convert_max_failure_ratio: Fail the run when more than this share of the documents cannot be converted.
        chunk_target_chars: Merge consecutive pieces of a section into chunks of about this many characters.
        chunk_min_chars: Drop chunks shorter than this many characters.
        generate_flow_id: sdg_hub flow id: socratic-single-turn, or any flow from the sdg_hub registry.
        generate_flow_yaml_path: Path to a flow YAML (e.g. mounted from a ConfigMap); wins over generate_flow_id.
        generate_model: Model name served by the endpoint; empty uses LLM_MODEL from the Secret.
        generate_max_concurrency: Requests in flight at once against the endpoint.
        generate_conversations_per_chunk: Conversations generated per chunk.
        generate_max_chunks: Generate from the first N chunks only (0 = all); small values make quick trial runs.
        filter_rules_path: Quality-filter rules YAML (e.g. mounted from a ConfigMap); empty uses the packaged rules.
        filter_require_question: Reject conversations whose last tutor turn does not ask a question.
        export_validation_ratio: Share of source chunks whose conversations go to validation.jsonl.
        export_seed: Seed of the grouped train/validation split.
    """
    convert_task = convert_documents(
        input_dir=convert_input_dir,
        pipeline=convert_pipeline,
        max_pages=convert_max_pages,
        max_failure_ratio=convert_max_failure_ratio,
    )
    kubernetes.mount_pvc(convert_task, pvc_name=pvc_name, mount_path=DATA_MOUNT_PATH)
    convert_task.set_cpu_request("1").set_cpu_limit("4").set_memory_request("2Gi").set_memory_limit("8Gi")

    chunk_task = chunk_documents(
        converted=convert_task.outputs["converted"], target_chars=chunk_target_chars, min_chars=chunk_min_chars
    )
    chunk_task.set_cpu_request("500m").set_cpu_limit("2").set_memory_request("1Gi").set_memory_limit("4Gi")

    generate_task = generate_conversations(
        chunks=chunk_task.outputs["chunks"],
        flow_id=generate_flow_id,
        flow_yaml_path=generate_flow_yaml_path,
        model=generate_model,
        max_concurrency=generate_max_concurrency,
        conversations_per_chunk=generate_conversations_per_chunk,
        max_chunks=generate_max_chunks,
    )
    kubernetes.use_secret_as_env(
        generate_task, secret_name=llm_secret_name, secret_key_to_env={k: k for k in LLM_SECRET_KEYS}
    )
    kubernetes.use_secret_as_env(
        generate_task,
        secret_name=llm_secret_name,
        secret_key_to_env={k: k for k in LLM_SECRET_OPTIONAL_KEYS},
        optional=True,
    )
    # A flow YAML mounted from a ConfigMap may live on the PVC as well.
    kubernetes.mount_pvc(generate_task, pvc_name=pvc_name, mount_path=DATA_MOUNT_PATH)
    generate_task.set_cpu_request("1").set_cpu_limit("2").set_memory_request("2Gi").set_memory_limit("4Gi")
    generate_task.set_env_variable("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network call at import
    generate_task.set_retry(num_retries=2, backoff_duration="60s")

    filter_task = filter_conversations(
        conversations=generate_task.outputs["conversations"],
        rules_path=filter_rules_path,
        require_question=filter_require_question,
    )
    kubernetes.mount_pvc(filter_task, pvc_name=pvc_name, mount_path=DATA_MOUNT_PATH)
    filter_task.set_cpu_request("500m").set_cpu_limit("1").set_memory_request("1Gi").set_memory_limit("2Gi")

    export_task = export_dataset(
        converted=convert_task.outputs["converted"],
        chunks=chunk_task.outputs["chunks"],
        conversations=generate_task.outputs["conversations"],
        filtered=filter_task.outputs["filtered"],
        validation_ratio=export_validation_ratio,
        seed=export_seed,
    )
    export_task.set_cpu_request("250m").set_cpu_limit("1").set_memory_request("512Mi").set_memory_limit("2Gi")
    return export_task.outputs["dataset"]


def compile_pipeline(output_path: str | Path = COMPILED_PATH) -> Path:
    from kfp import compiler

    compiler.Compiler().compile(socratic_sdg_pipeline, package_path=str(output_path))
    return Path(output_path)
