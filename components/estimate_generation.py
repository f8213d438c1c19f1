from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from .image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def estimate_generation(
    chunks: Input[Dataset],
    estimate: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[Markdown],
    target_examples: int = 0,
    probe_rows: int = 8,
    flow_id: str = "socratic-single-turn",
    flow_yaml_path: str = "",
    model: str = "",
    max_concurrency: int = 8,
    conversations_per_chunk: int = 1,
    max_chunks: int = 0,
    seed: int = 42,
    runtime_params: str = "",
    columns: str = "",
    request_timeout: float = 120.0,
    max_retry_after: float = 60.0,
    max_chunk_chars: int = 20000,
    rules_path: str = "",
    require_question: bool = True,
    language: str = "",
    check_leakage: bool = True,
):
    """Estimate requests, tokens and time for the target, from the chunks and a short probe of the endpoint.

    The endpoint comes from LLM_API_BASE / LLM_API_KEY / LLM_MODEL, injected from a Secret.

    Args:
        chunks: Output of chunk_documents.
        estimate: Folder with estimate.json and the probe's generated and filtered files.
        metrics: Rows, requests, tokens and seconds expected; the probe's acceptance rate and latency.
        report: The estimate as a table.
        target_examples: Accepted examples wanted (0 = 1000).
        probe_rows: Rows generated and filtered to measure the endpoint and the acceptance rate (0 = counts and assumptions only, no request).
        flow_id: As generate_conversations.
        flow_yaml_path: As generate_conversations.
        model: As generate_conversations.
        max_concurrency: Requests in flight in the run being estimated (all shards together).
        conversations_per_chunk: As generate_conversations.
        max_chunks: As generate_conversations.
        seed: As generate_conversations; also picks the probe's chunks.
        runtime_params: As generate_conversations.
        columns: As generate_conversations.
        request_timeout: As generate_conversations.
        max_retry_after: As generate_conversations.
        max_chunk_chars: As generate_conversations; longer chunks are not counted.
        rules_path: Quality-filter rules the acceptance is measured with (empty = packaged rules).
        require_question: As filter_conversations.
        language: As filter_conversations.
        check_leakage: As filter_conversations.
    """
    from socratic_sdg import estimate as stage
    from socratic_sdg import generate
    from socratic_sdg.endpoint import EndpointConfig
    from socratic_sdg.filter import FilterOptions

    options = stage.EstimateOptions(
        target_examples=target_examples or stage.DEFAULT_TARGET_EXAMPLES,
        probe_rows=probe_rows,
        generate_options=generate.GenerateOptions(
            flow_id=flow_id,
            flow_yaml_path=flow_yaml_path or None,
            max_concurrency=max_concurrency,
            conversations_per_chunk=conversations_per_chunk,
            max_chunks=max_chunks,
            seed=seed,
            runtime_params=generate.load_runtime_params(runtime_params) if runtime_params else None,
            columns=generate.parse_columns(columns) if columns else None,
            request_timeout=request_timeout,
            max_retry_after=max_retry_after,
            max_chunk_chars=max_chunk_chars,
        ),
        filter_options=FilterOptions(
            rules_path=rules_path or None, require_question=require_question, language=language or None, check_leakage=check_leakage, dedup=False
        ),
    )
    endpoint = EndpointConfig.from_env(model=model or None) if probe_rows else None
    result = stage.run(f"{chunks.path}/chunks.jsonl", options, endpoint, progress=print, output_dir=estimate.path)
    for name, value in result.kfp_metrics().items():
        metrics.log_metric(name, value)
    with open(report.path, "w", encoding="utf-8") as handle:
        handle.write(result.markdown())
    for line in result.summary_lines():
        print(line)
