"""Thin KFP components over the socratic_sdg library: one per pipeline stage.

Each body imports the library inside the function (it runs in the project image, where the
library is installed) and only maps artifacts and parameters onto the stage's ``run``.
"""

from .chunk_documents import chunk_documents
from .convert_documents import convert_documents, merge_converted_shards, plan_shards
from .estimate_generation import estimate_generation
from .export_dataset import export_dataset
from .filter_conversations import filter_conversations
from .generate_conversations import generate_conversations, merge_generated_shards
from .image import CONVERT_IMAGE, RUNTIME_IMAGE
from .validate_dataset import validate_dataset

__all__ = [
    "CONVERT_IMAGE",
    "RUNTIME_IMAGE",
    "chunk_documents",
    "convert_documents",
    "estimate_generation",
    "export_dataset",
    "filter_conversations",
    "generate_conversations",
    "merge_converted_shards",
    "merge_generated_shards",
    "plan_shards",
    "validate_dataset",
]
