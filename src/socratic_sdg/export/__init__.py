"""Stage 5, export: accepted.jsonl -> train/validation JSONL in the fine-tuning format, the run summary,
the dataset card and the HTML report (``dataset``, ``summary``, ``report``), and the check of a
dataset's shape (``validate``).
"""

from .dataset import (
    DATASET_FILES, DATASET_MARKER, ExportError, ExportOptions, ExportResult, FORMATS, HIDDEN_METADATA, INPUT_MADE_BY, METRICS_FILE, PRODUCER, SET_FILES,
    TRAIN_FILE, VALIDATION_FILE, assign_splits, check_copy_target, check_conversation, copy_dataset, group_of, run, split_key, to_training_record
)

__all__ = [
    "DATASET_FILES", "DATASET_MARKER", "ExportError", "ExportOptions", "ExportResult", "FORMATS", "HIDDEN_METADATA", "INPUT_MADE_BY", "METRICS_FILE",
    "PRODUCER", "SET_FILES", "TRAIN_FILE", "VALIDATION_FILE", "assign_splits", "check_copy_target", "check_conversation", "copy_dataset", "group_of", "run",
    "split_key", "to_training_record"
]
