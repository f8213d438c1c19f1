"""Shared inputs of the generation tests: chunks about gradients, the fake endpoint's configuration,
and the three outputs of a run."""

from __future__ import annotations

import json
from pathlib import Path

from ..endpoint import EndpointConfig
from ..records import read_jsonl
from .fake_openai import FakeOpenAI


def gradient_chunks(n: int, start: int = 0, **fields) -> list[dict]:
    """``n`` chunks (ids ``chunk-<start>``...) in the chunk stage's shape; ``fields`` are added to each."""
    return [
        {"chunk_id": f"chunk-{i}", "doc_id": "doc", "source": "calc.pdf",
         "text": f"Section {i}: the gradient of f(x, y) = x^2 + y^2 is (2x, 2y).", "headings": ["Gradients"], **fields}
        for i in range(start, start + n)
    ]


def fake_endpoint(server: FakeOpenAI, api_key: str = "EMPTY") -> EndpointConfig:
    return EndpointConfig(api_base=server.api_base, model="fake-model", api_key=api_key)


def read_outputs(out: str | Path) -> tuple[list[dict], list[dict], dict]:
    """conversations.jsonl, failed.jsonl and generate_metrics.json of a run."""
    out = Path(out)
    return list(read_jsonl(out / "conversations.jsonl")), list(read_jsonl(out / "failed.jsonl")), json.loads((out / "generate_metrics.json").read_text())


def write_question_flow(folder: str | Path, flow_id: str, prompt: str, *, required: str = "document", input_cols: str = "document",
                        before_response: str = "") -> str:
    """A one-request sdg_hub flow in ``folder``: the prompt (a Jinja template) asks the model a question,
    which becomes both the question and the response column; ``before_response`` is YAML for blocks
    (e.g. a filter) between the two. Returns the flow.yaml path."""
    import yaml

    folder = Path(folder)
    (folder / "prompts").mkdir(parents=True, exist_ok=True)
    (folder / "prompts" / "p.yaml").write_text(yaml.safe_dump([{"role": "user", "content": prompt}]))
    (folder / "flow.yaml").write_text(f"""
metadata:
  id: {flow_id}
  name: {flow_id} (test flow)
  dataset_requirements: {{required_columns: [{required}]}}
blocks:
  - block_type: PromptBuilderBlock
    block_config: {{block_name: p, input_cols: [{input_cols}], output_cols: p_prompt, prompt_config_path: prompts/p.yaml, format_as_messages: true}}
  - block_type: LLMChatBlock
    block_config: {{block_name: gen_question, input_cols: p_prompt, output_cols: raw, max_tokens: 40, async_mode: true}}
  - block_type: LLMResponseExtractorBlock
    block_config: {{block_name: ex, input_cols: raw, extract_content: true, field_prefix: q_}}
  - block_type: RenameColumnsBlock
    block_config: {{block_name: rn, input_cols: {{q_content: question}}}}
{before_response}  - block_type: DuplicateColumnsBlock
    block_config: {{block_name: dup, input_cols: {{question: response}}}}
""")
    return str(folder / "flow.yaml")


def conversation(record_id: str, question: str, reply: str, **metadata) -> dict:
    """A one-exchange conversation record (student question, tutor reply) as generation writes it."""
    return {"id": record_id, "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": reply}], "metadata": metadata}
