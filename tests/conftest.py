import os
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from socratic_sdg.testing.fake_openai import FakeOpenAI  # noqa: E402  (after the environment above)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "pdfs"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def converted_samples(tmp_path_factory) -> Path:
    """The sample PDFs converted once for the whole session (docling, native pipeline)."""
    from socratic_sdg import convert

    out = tmp_path_factory.mktemp("converted")
    convert.run(SAMPLES, out)
    return out


@pytest.fixture(scope="session")
def sample_chunks(converted_samples, tmp_path_factory) -> Path:
    from socratic_sdg import chunk

    out = tmp_path_factory.mktemp("chunks") / "chunks.jsonl"
    chunk.run(converted_samples, out)
    return out


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        yield server
