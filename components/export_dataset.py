from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from .image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def export_dataset(
    converted: Input[Dataset],
    chunks: Input[Dataset],
    conversations: Input[Dataset],
    filtered: Input[Dataset],
    dataset: Output[Dataset],
    metrics: Output[Metrics],
    summary: Output[Markdown],
    validation_ratio: float = 0.1,
    seed: int = 42,
):
    """Write train.jsonl and validation.jsonl (chat messages format) and the run summary.

    Args:
        converted: Output of convert_documents (read for its metrics).
        chunks: Output of chunk_documents (read for its metrics).
        conversations: Output of generate_conversations (read for its metrics).
        filtered: Output of filter_conversations: accepted.jsonl is exported.
        dataset: Folder with train.jsonl, validation.jsonl and summary.json, for the fine-tuning pipeline.
        metrics: Counts per stage, shown in the dashboard.
        summary: The run summary as Markdown.
        validation_ratio: Share of source chunks whose conversations go to validation.jsonl.
        seed: Seed of the grouped train/validation split.
    """
    import os

    from socratic_sdg import export as stage
    from socratic_sdg import summary as run_summary

    options = stage.ExportOptions(validation_ratio=validation_ratio, seed=seed)
    stage.run(os.path.join(filtered.path, "accepted.jsonl"), dataset.path, options, progress=print)
    report = run_summary.collect(converted.path, chunks.path, conversations.path, filtered.path, dataset.path)
    run_summary.write(report, dataset.path)
    for name, value in run_summary.numeric_metrics(report).items():
        metrics.log_metric(name, value)
    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(run_summary.to_markdown(report))
    print(run_summary.to_text(report))
