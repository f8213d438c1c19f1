"""Helpers for tests/test_estimate.py: a chunks file, and a fake endpoint whose tutor leaks answers."""

from __future__ import annotations

import json

from .fake_openai import TUTOR, FakeOpenAI

from ..endpoint import EndpointConfig
from ..records import write_jsonl

LEAK_MARKER = "Leaky section"
# States the fake reference answer's result ((2, 4)): the filter's leakage layer rejects it.
LEAKED_REPLY = "The answer is (2, 4). Can you see why that holds?"


class LeakyFakeOpenAI(FakeOpenAI):
    """The fake endpoint, but the tutor gives the answer away for chunks whose text holds LEAK_MARKER."""

    def reply_for(self, messages: list[dict]) -> str:
        reply = super().reply_for(messages)
        return LEAKED_REPLY if reply == TUTOR and LEAK_MARKER in json.dumps(messages) else reply


def write_chunks(path, count: int, leaky: range = range(0), tokens_every: int = 1) -> list[dict]:
    """``count`` distinct chunks (those in ``leaky`` marked to leak); every ``tokens_every``-th carries num_tokens."""
    chunks = []
    for i in range(count):
        label = LEAK_MARKER if i in leaky else "Section"
        chunk = {"chunk_id": f"chunk-{i}", "doc_id": "doc", "source": "calc.pdf", "headings": ["Gradients"],
                 "text": f"{label} {i}: the gradient of f(x, y) = x^2 + y^2 is (2x, 2y). " + "More detail. " * (i % 5)}
        if i % tokens_every == 0:
            chunk["num_tokens"] = 15 + 3 * (i % 5)
        chunks.append(chunk)
    write_jsonl(path, chunks)
    return chunks


def endpoint(server: FakeOpenAI) -> EndpointConfig:
    return EndpointConfig(api_base=server.api_base, model="fake-model")
