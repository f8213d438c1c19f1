"""The file names every stage writes and the next one reads, in one place.

A stage's output folder is the next stage's input: these names are the contract between them (and
between the KFP components, which pass folders). Change a name here and every reader follows.
"""

# convert: one Markdown + DoclingDocument JSON per input, and
DOCUMENTS_FILE = "documents.jsonl"  # the listing: source path -> output names
CONVERT_FAILURES_FILE = "failures.jsonl"
CONVERT_METRICS_FILE = "convert_metrics.json"
# chunk
CHUNKS_FILE = "chunks.jsonl"
CHUNKS_DROPPED_FILE = "chunks_dropped.jsonl"
CHUNK_METRICS_FILE = "chunk_metrics.json"
# generate
CONVERSATIONS_FILE = "conversations.jsonl"
GENERATE_FAILED_FILE = "failed.jsonl"
GENERATE_METRICS_FILE = "generate_metrics.json"
ESTIMATE_FILE = "estimate.json"
# filter
ACCEPTED_FILE = "accepted.jsonl"
REJECTED_FILE = "rejected.jsonl"
FILTER_METRICS_FILE = "filter_metrics.json"
# export
TRAIN_FILE = "train.jsonl"
VALIDATION_FILE = "validation.jsonl"
EXPORT_METRICS_FILE = "export_metrics.json"
SPLIT_FILES = (TRAIN_FILE, VALIDATION_FILE)
SUMMARY_FILE = "summary.json"
# generate -> export: a conversation's best-of-k record (metadata key), from which the export makes preference pairs
TUTOR_CANDIDATES_KEY = "tutor_candidates"

# The outputs a stage writes as one set (records.AtomicFileSet): readers refuse a set left half-replaced.
GENERATE_OUTPUTS = (CONVERSATIONS_FILE, GENERATE_FAILED_FILE, GENERATE_METRICS_FILE)
FILTER_OUTPUTS = (ACCEPTED_FILE, REJECTED_FILE, FILTER_METRICS_FILE)

# What convert and chunk write into their folders: no per-document output may take these names.
CONVERT_STAGE_FILES = (DOCUMENTS_FILE, CONVERT_FAILURES_FILE, CONVERT_METRICS_FILE, ".cache", CHUNKS_FILE,
                       CHUNKS_DROPPED_FILE, CHUNK_METRICS_FILE)
