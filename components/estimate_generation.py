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
    tutor_candidates: int = 1,
    max_chunks: int = 0,
    seed: int = 42,
    runtime_params: str = "",
    columns: str = "",
    num_retries: int = 3,
    request_timeout: float = 120.0,
    max_retry_after: float = 60.0,
    max_chunk_chars: int = 20000,
    domain: str = "mathematics",
    rules_path: str = "",
    require_question: bool = True,
    language: str = "",
    check_leakage: bool = True,
):
    """Estimate requests, tokens and time for the target, from the chunks and a short probe of the endpoint.

    The endpoint comes from LLM_API_BASE / LLM_API_KEY / LLM_MODEL, injected from a Secret.
    rules_path, require_question, language and check_leakage are the quality-filter settings the
    acceptance rate is measured with.

    Args:
        chunks: Output of chunk_documents.
        estimate: Folder with estimate.json and the probe's generated and filtered files.
        metrics: Rows, requests, tokens and seconds expected; the probe's acceptance rate and latency.
        report: The estimate as a table.
        target_examples: Accepted examples wanted (0 = 1000).
        probe_rows: Rows generated and filtered to measure the endpoint and the acceptance rate, rounded up to whole chunks (0 = counts and assumptions only, no request).
        flow_id: sdg_hub flow id: socratic-single-turn, socratic-multi-turn, or any flow from the sdg_hub registry.
        flow_yaml_path: Path to a flow YAML (e.g. mounted from a ConfigMap); wins over flow_id.
        model: As generate_conversations.
        max_concurrency: Requests in flight at once against the endpoint, for all shards together (size it to what the endpoint serves).
        conversations_per_chunk: Conversations generated per chunk.
        tutor_candidates: Tutor replies generated per tutor turn (best of k): the student side and reference answer are generated once, the conversation goes on with the reply the filter's rules like best, and the rejected ones become preference pairs.
        max_chunks: Generate from the first N chunks only (0 = all); small values make quick trial runs.
        seed: Seed of the student persona and request-type sampling, and of each request's sampling.
        runtime_params: sdg_hub runtime_params as JSON (or a .json/.yaml file on the command line), e.g. {"generate_tutor_reply": {"max_tokens": 300}}.
        columns: JSON object of constant values for flow columns that chunks do not provide (on the command line: --column NAME=VALUE, repeatable).
        num_retries: Retries per request (backoff with jitter, Retry-After honoured) before its row is recorded as failed.
        request_timeout: Seconds per request to the endpoint.
        max_retry_after: Longest pause, in seconds, an endpoint's Retry-After may impose on all requests (the progress log says when it asks); 0 = no pause.
        max_chunk_chars: Chunks with longer text are not sent to the endpoint; their rows are recorded as chunk_too_large (0 = no limit).
        domain: The domain column some flows require.
        rules_path: Rules YAML (e.g. mounted from a ConfigMap); empty uses the packaged rules.
        require_question: Reject conversations whose last tutor turn does not ask a question.
        language: Reject tutor turns not in this language (e.g. en); empty = no language check.
        check_leakage: Reject tutor turns that state the hidden reference answer or solve the student's problem.
    """
    params = dict(locals())  # the parameters, before any other name is bound

    import dataclasses
    import os

    from socratic_sdg import artifacts
    from socratic_sdg.endpoint import EndpointConfig
    from socratic_sdg.filtering import FilterOptions
    from socratic_sdg.generate import GenerateOptions
    from socratic_sdg.generate import estimate as stage
    from socratic_sdg.options import from_params

    options = dataclasses.replace(
        from_params(stage.EstimateOptions, params),
        generate_options=from_params(GenerateOptions, {k: v for k, v in params.items() if k != "target_examples"}),  # that one is the estimate's
        filter_options=from_params(FilterOptions, params, dedup=False),  # the probe is too small for duplicates to say much
    )
    endpoint = EndpointConfig.from_env(model=model or None) if probe_rows else None
    result = stage.run(os.path.join(chunks.path, artifacts.CHUNKS_FILE), options, endpoint, progress=print, output_dir=estimate.path)
    with open(report.path, "w", encoding="utf-8") as handle:
        handle.write(result.markdown())
    result.log(metrics)
