"""Socratic SDG: turn course PDFs into a Socratic-tutor fine-tuning dataset.

One module per pipeline stage (convert, chunk, generate, filter, export), each with a small typed
options object and a ``run(...)`` function over paths. Nothing in this package's stage modules
imports KFP: the components and pipelines live above it.
"""

__version__ = "0.1.0"
