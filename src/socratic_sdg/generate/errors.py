"""Errors of the generation stage (a module of its own so the flow catalog and the engine share them)."""

from __future__ import annotations
from ..errors import SocraticSdgError


class GenerateError(SocraticSdgError, RuntimeError):
    """A user-fixable problem with the generation stage as a whole; the message says what and how to fix it."""


class EndpointUnavailable(GenerateError):
    """The endpoint failed so many requests in a row that the run stopped (its progress is checkpointed)."""


class NothingGenerated(GenerateError):
    """Rows failed and none produced a conversation; the outputs (failed.jsonl, metrics) were written
    first, and ``result`` is what they hold."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result
