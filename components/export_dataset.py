from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

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
    report: Output[HTML],
    validation_ratio: float = 0.1,
    seed: int = 42,
    format: str = "messages",
    system_prompt: str = "",
    strip_metadata: bool = False,
    max_records: int = 0,
    license: str = "other",
    pvc_path: str = "",
) -> str:
    """Write train.jsonl and validation.jsonl, the dataset card and the run report.

    Args:
        converted: Output of the conversion (read for its metrics).
        chunks: Output of chunk_documents (read for its metrics).
        conversations: Output of generate_conversations (read for its metrics).
        filtered: Output of filter_conversations: accepted.jsonl is exported.
        dataset: Folder with train.jsonl, validation.jsonl, README.md (dataset card), report.html and summary.json.
        metrics: Counts per stage, shown in the dashboard.
        summary: The run summary as Markdown.
        report: The run report with plots (funnel, drop reasons, lengths, records per document).
        validation_ratio: Share of source chunks whose conversations go to validation.jsonl.
        seed: Seed of the grouped train/validation split.
        format: messages (chat format, for training_hub and dataset_download) or prompt_completion (TRL).
        system_prompt: A system turn prepended to every record; empty keeps user/assistant only.
        strip_metadata: Drop the hidden reference answer and the filter scores from the records.
        max_records: Keep at most this many records, balanced across source documents (0 = all).
        license: Licence id written in the dataset card.
        pvc_path: Also copy the dataset folder here (e.g. on the PVC) for a separate fine-tuning pipeline (empty = no copy; an empty dataset is never copied).
    """
    params = dict(locals())  # the parameters, before any other name is bound

    import os
    import shutil

    from socratic_sdg import artifacts
    from socratic_sdg import export as stage
    from socratic_sdg.export import summary as run_summary
    from socratic_sdg.options import from_params

    if pvc_path:
        stage.check_copy_target(pvc_path)  # refuse a folder that is not ours before building anything

    stage.run(os.path.join(filtered.path, artifacts.ACCEPTED_FILE), dataset.path, from_params(stage.ExportOptions, params), progress=print)
    collected, written = run_summary.document(dataset.path, converted_dir=converted.path, chunks_dir=chunks.path,
                                              conversations_dir=conversations.path, filtered_dir=filtered.path, license_id=license)
    for name, value in run_summary.numeric_metrics(collected).items():
        metrics.log_metric(name, value)
    shutil.copyfile(written["markdown"], summary.path)
    shutil.copyfile(written["html"], report.path)
    print(run_summary.to_text(collected))
    if pvc_path and not collected.get("accepted"):
        # An estimate-only run, or a model the filter rejects: do not replace a dataset a training pipeline reads.
        print(f"no accepted record: the dataset is not copied to {pvc_path} (what is there stays)")
    elif pvc_path:
        stage.copy_dataset(dataset.path, pvc_path)
        print(f"dataset copied to {pvc_path}")
        return pvc_path
    return dataset.uri
