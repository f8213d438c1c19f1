"""Thin KFP components over the socratic_sdg library: one per pipeline stage.

Each body imports the library inside the function (it runs in the project image, where the
library is installed) and only maps artifacts and parameters onto the stage's ``run``.
"""

from .chunk_documents import chunk_documents
from .convert_documents import convert_documents
from .export_dataset import export_dataset
from .filter_conversations import filter_conversations
from .generate_conversations import generate_conversations
from .image import RUNTIME_IMAGE

__all__ = [
    "RUNTIME_IMAGE",
    "chunk_documents",
    "convert_documents",
    "export_dataset",
    "filter_conversations",
    "generate_conversations",
]
