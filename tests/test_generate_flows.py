"""The flows: this package's Socratic flows, sdg_hub's registry, column mapping, diversity controls."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from socratic_sdg.testing.fake_openai import QUESTIONS, REFERENCE, STUDENT, STUDENT_ATTEMPT, STUDENT_FRUSTRATED, TUTOR, TUTOR_FOLLOWUP

from socratic_sdg.generate import catalog as flow_catalog
from socratic_sdg import generate
from socratic_sdg.records import read_jsonl, write_jsonl
from socratic_sdg.generate import RequestPolicy
from functools import partial
from socratic_sdg.testing.generation import fake_endpoint, gradient_chunks, write_question_flow

FAST = RequestPolicy(retry_backoff_seconds=0.02, request_timeout=5.0)






_chunks = partial(gradient_chunks, headings=["Calculus", "Gradients"])
_endpoint = fake_endpoint

def test_multi_turn_flow_builds_three_exchanges_with_a_hidden_reference(tmp_path, fake_llm):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(2))
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(flow_id="socratic-multi-turn",
        requests=FAST), _endpoint(fake_llm))
    conversations = list(read_jsonl(tmp_path / "out" / "conversations.jsonl"))
    assert result.output_rows == 2 and fake_llm.requests == 2 * 7
    expected = [STUDENT, TUTOR, STUDENT_ATTEMPT, TUTOR_FOLLOWUP, STUDENT_FRUSTRATED, TUTOR_FOLLOWUP]
    for conversation in conversations:
        assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"] * 3
        contents = [m["content"] for m in conversation["messages"]]
        assert contents[0].startswith(STUDENT) and contents[1:] == expected[1:]
        assert conversation["metadata"]["reference_answer"] == REFERENCE  # kept aside, never a message
        assert REFERENCE not in json.dumps(conversation["messages"])
        assert conversation["metadata"]["flow_id"] == "socratic-multi-turn"
    # the tutor sees the conversation so far as real chat turns; the student simulator sees a transcript
    last_tutor = [json.loads(p) for p in fake_llm.prompts if "Socratic" in p and STUDENT_FRUSTRATED in p][0]
    assert [m["role"] for m in last_tutor[-5:]] == ["user", "assistant", "user", "assistant", "user"]
    assert last_tutor[-1]["content"] == STUDENT_FRUSTRATED


def test_personas_and_request_types_are_sampled_with_the_seed(tmp_path, fake_llm):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(3))

    def run(seed, out):
        options = generate.GenerateOptions(conversations_per_chunk=4, seed=seed, requests=FAST)
        generate.run(tmp_path / "chunks.jsonl", tmp_path / out, options, _endpoint(fake_llm))
        return [c["metadata"]["diversity"] for c in read_jsonl(tmp_path / out / "conversations.jsonl")]

    first, again, other = run(7, "a"), run(7, "b"), run(8, "c")
    assert first == again and first != other
    for chunk in range(3):  # the four conversations of a chunk cover the four request types
        assert {d["request_type"] for d in first[4 * chunk : 4 * chunk + 4]} == {"just_tell_me", "wrong_attempt", "concept_question", "frustration"}
    assert len({(d["student_level"], d["tone"], d["misconception"]) for d in first}) > 6
    # the sampled persona reaches the student prompt
    student_prompts = [p for p in fake_llm.prompts if "realistic messages from math students" in p]
    assert any(first[0]["misconception"] in p and first[0]["student_level"] in p for p in student_prompts)


def test_package_flows_are_registered_with_sdg_hub_and_listed(tmp_path):
    from sdg_hub import FlowRegistry

    flow_catalog.register_package_flows()
    found = {f["id"] for f in FlowRegistry.search_flows(tag="socratic-tutoring")}
    assert {"socratic-single-turn", "socratic-multi-turn"} <= found
    assert FlowRegistry.get_flow_path("socratic-multi-turn").endswith("socratic_multi_turn/flow.yaml")

    ours = flow_catalog.list_flows(tag="socratic-tutoring")
    assert [f["id"] for f in ours] == ["socratic-multi-turn", "socratic-single-turn"]
    assert all(f["source"] == "socratic-sdg" and "document" in f["required_columns"] and "student_level" in f["required_columns"] for f in ours)
    everything = flow_catalog.list_flows()
    assert {f["source"] for f in everything} == {"socratic-sdg", "sdg_hub"} and len(everything) > 5
    table = flow_catalog.format_flows(ours)
    assert table.splitlines()[0].split() == ["ID", "NAME", "TAGS", "REQUIRED", "COLUMNS"] and "socratic-multi-turn" in table

    shown = flow_catalog.show_flow("socratic-multi-turn")
    assert shown["llm_requests_per_row"] == 7 and shown["diversity"]["request_type"] == 4
    assert "tutor_turn_3" in shown["output_columns"] and "tutor_turn_3_prompt" in [b["name"] for b in shown["blocks"]]
    assert "LLM requests/row: 7" in flow_catalog.format_flow(shown)
    with pytest.raises(generate.GenerateError, match="no flow with id 'nope'"):
        flow_catalog.show_flow("nope")


def test_every_package_flow_yaml_is_valid_for_sdg_hub():
    from sdg_hub import Flow

    for flow_id, path in generate.package_flows().items():
        flow = Flow.from_yaml(str(path))
        assert flow.metadata.id == flow_id
        assert "id:" in path.read_text()  # explicit, so sdg_hub never rewrites the file
        required = flow.metadata.dataset_requirements.required_columns
        rows = generate.chunk_rows(_chunks(1), generate.GenerateOptions(), flow_catalog.load_diversity(path), required)
        assert not set(required) - set(rows[0])


def test_an_sdg_hub_registry_flow_runs_with_chunks_mapped_onto_its_columns(tmp_path, fake_llm):
    """doc_direct_qa (sdg_hub's knowledge flow): ICL columns filled from the bundled example; each row
    expands into two questions, each answered and judged; one judged unfaithful is filtered out."""
    flow_catalog.register_package_flows()
    from sdg_hub import FlowRegistry

    flow_id = next(
        f["id"] for f in FlowRegistry.list_flows() if FlowRegistry.get_flow_path(f["id"]).endswith("enhanced_multi_summary_qa/doc_direct_qa/flow.yaml")
    )
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(3))
    fake_llm.unfaithful = QUESTIONS[1]
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(flow_id=flow_id, requests=FAST), _endpoint(fake_llm))
    conversations = list(read_jsonl(tmp_path / "out" / "conversations.jsonl"))
    assert (result.output_rows, result.failed_rows, result.flow_id) == (3, 0, flow_id)
    assert all(c["messages"][0]["content"] == QUESTIONS[0] for c in conversations)
    assert fake_llm.requests == 3 * (1 + 2 + 2)  # question list, then an answer and a verdict per question
    icl = flow_catalog.icl_defaults()
    assert icl["icl_query_1"] in fake_llm.prompts[0] and "mathematics textbook" in fake_llm.prompts[0]

    # nothing filtered: two conversations per row, with distinct stable ids
    fake_llm.unfaithful = None
    again = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out2", generate.GenerateOptions(flow_id=flow_id, requests=FAST), _endpoint(fake_llm))
    records = list(read_jsonl(tmp_path / "out2" / "conversations.jsonl"))
    assert again.output_rows == 6 and len({r["id"] for r in records}) == 6
    assert {r["id"] for r in conversations} < {r["id"] for r in records}


def _custom_flow(tmp_path, required: str) -> str:
    return write_question_flow(tmp_path / "custom", "custom-rubric", "Rubric {{rubric}}. Ask about: {{document}}", required=required,
                               input_cols="document, rubric")


def test_a_column_the_stage_cannot_fill_is_named_and_can_be_given(tmp_path, fake_llm):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(2))
    flow = _custom_flow(tmp_path, "document, rubric")
    with pytest.raises(generate.GenerateError, match=r"'custom-rubric' needs column\(s\) rubric.*--column NAME=VALUE"):
        generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(flow_yaml_path=flow, requests=FAST), _endpoint(fake_llm))
    assert fake_llm.requests == 0

    options = generate.GenerateOptions(flow_yaml_path=flow, columns={"rubric": "be kind"}, requests=FAST)
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(fake_llm))
    assert result.output_rows == 2 and all("Rubric be kind." in p for p in fake_llm.prompts)


def test_runtime_params_and_seeds_reach_the_requests(tmp_path, fake_llm):
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(2))
    options = generate.GenerateOptions(runtime_params={"generate_tutor_reply": {"max_tokens": 42, "temperature": 0.1}}, seed=5, requests=FAST)
    generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(fake_llm))
    bodies = [body for _, body in fake_llm.calls]
    tutor = [b for b in bodies if "Socratic" in json.dumps(b["messages"])]
    assert tutor and all(b["max_tokens"] == 42 and b["temperature"] == 0.1 for b in tutor)
    others = [b for b in bodies if b not in tutor]
    assert all(b["max_tokens"] != 42 for b in others)
    assert all(b["model"] == "fake-model" and isinstance(b["seed"], int) for b in bodies)
    assert len({b["seed"] for b in bodies}) == len(bodies)  # a seed per row and block

    with pytest.raises(generate.GenerateError, match=r"runtime_params name block\(s\) nope"):
        generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(runtime_params={"nope": {}}, requests=FAST), _endpoint(fake_llm))


@pytest.mark.parametrize("mode", ["inline", "thread"])
def test_a_block_that_raises_fails_only_the_row_it_raises_on(mode):
    """Rows reaching a block together are run together; when the call raises, they are re-run one by
    one so that only the guilty row fails (custom/agent blocks run in a worker thread)."""
    import asyncio

    from socratic_sdg.generate.runner import BlockFailure, Segment, Step

    calls = []

    def block(frame, **kwargs):
        calls.append(len(frame))
        if (frame["document"] == "bad").any():
            raise ValueError("cannot parse this one")
        return frame.assign(length=frame["document"].str.len())

    segment = Segment([Step(block=block, name="measure", mode=mode, kwargs={})], interval=0.05)

    async def main():
        rows = [{"row_id": f"r{i}", "document": "bad" if i == 2 else "x" * i} for i in range(5)]
        return await asyncio.gather(*(segment.submit(r["row_id"], [r]) for r in rows))

    results = asyncio.run(main())
    assert isinstance(results[2], BlockFailure) and results[2].kind == "block_error" and "cannot parse this one" in results[2].reason
    assert [r[0]["length"] for i, r in enumerate(results) if i != 2] == [0, 1, 3, 4]
    assert calls[0] == 5 and sorted(calls[1:]) == [1, 1, 1, 1, 1]  # one call for all, then one per row


def test_a_flow_yaml_without_id_is_used_as_is_and_never_rewritten(tmp_path, fake_llm):
    """sdg_hub would add an id to the file itself (comments lost; a ConfigMap mount is read-only):
    the stage loads a copy with the id sdg_hub would derive, and leaves the file alone."""
    from sdg_hub.core.utils.flow_identifier import get_flow_identifier

    flow = _custom_flow(tmp_path, "document, rubric")
    text = "# my flow, with comments\n" + open(flow).read().replace("  id: custom-rubric\n", "")
    open(flow, "w").write(text)
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(1))
    options = generate.GenerateOptions(flow_yaml_path=flow, columns={"rubric": "r"}, requests=FAST)
    result = generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(fake_llm))
    assert result.output_rows == 1 and result.flow_id == get_flow_identifier("custom-rubric (test flow)")
    assert open(flow).read() == text


# --------------------------------------------------------------------------------------------
# The tutor prompts carry the quality filter's rubric, and their worked replies obey it
# --------------------------------------------------------------------------------------------

# The hidden reference answer of each worked example, keyed by the student message that opens its
# conversation: the filter's leakage layer checks the example replies against it. A new example
# conversation needs an entry here.
LIMIT_QUESTION = ("I've been stuck for ages on the limit of (x^2 - 9)/(x - 3) as x goes to 3. Plugging in 3 gives 0/0, "
                  "so the limit doesn't exist. Please just show me how to do it.")
ICL_REFERENCES = {
    "How do I solve 3x - 5 = 16? Just tell me x.": "Add 5 to both sides to get 3x = 21, then divide both sides by 3: x = 7.",
    "I differentiated x^2 sin(x) by taking the derivative of each part and multiplying them, so I got 2x cos(x). Is that right?": (
        "No. By the product rule, the derivative of x^2 sin(x) is 2x sin(x) + x^2 cos(x)."
    ),
    LIMIT_QUESTION: (
        "Since x^2 - 9 = (x - 3)(x + 3), the quotient equals x + 3 for x != 3, so the limit as x goes to 3 is 6."
    ),
}
# What each reference reveals: none of it may appear in a worked tutor reply.
ICL_REVEALED = {
    "How do I solve 3x - 5 = 16? Just tell me x.": ["7", "21", "add 5"],
    "I differentiated x^2 sin(x) by taking the derivative of each part and multiplying them, so I got 2x cos(x). Is that right?": ["2x sin(x) +", "x^2 cos(x)"],
    LIMIT_QUESTION: [
        "6",
        "x + 3",
        "(x - 3)(x",
    ],
}
RUBRIC_PHRASES = [
    "never praise or confirm a wrong result",  # no false praise
    "if the student's work has a mistake, say where it is",  # mistake identified and located
    "do not give the corrected value, the corrected step or the final answer, not even inside a question",  # not revealing
    "never state the answer",
    "refer to the student's own numbers, expressions or steps",  # engages with their work
    "one to three short sentences",  # no lecture
    "end with exactly one question",  # one guiding question, at the end
]
FALSE_PRAISE = re.compile(
    r"\b(?:great|good|nice)\s+(?:job|work)\b|\bwell\s+done\b|\bcorrect\b|\bexactly\b|\bperfect\b|\bexcellent\b|\bthat['\u2019]?s\s+right\b|\byou['\u2019]re\s+(?:right|close)\b",
    re.IGNORECASE,
)


def _tutor_prompt_blocks() -> list[tuple[str, Path, list[str]]]:
    """(flow id, prompt file, input columns) of every PromptBuilderBlock that builds a tutor turn."""
    found = []
    for flow_id, flow_path in generate.package_flows().items():
        for block in yaml.safe_load(flow_path.read_text())["blocks"]:
            config = block["block_config"]
            if block["block_type"] == "PromptBuilderBlock" and config["block_name"].startswith("tutor_"):
                found.append((flow_id, flow_path.parent / config["prompt_config_path"], list(config["input_cols"])))
    return found


def _worked_examples(messages: list[dict]) -> list[dict]:
    """The fixed example turns of a tutor prompt: after the system turn, before the first templated turn."""
    examples = []
    for message in messages[1:]:
        if "{{" in message["content"]:
            break
        examples.append(message)
    return examples


def _example_records(examples: list[dict]) -> list[dict]:
    """One filter record per worked tutor reply: its conversation up to that reply, with the reference."""
    records, conversation, opener = [], [], None
    for message in examples:
        if message["role"] == "user" and message["content"] in ICL_REFERENCES:
            conversation, opener = [], message["content"]
        assert opener is not None, f"worked example opens with {message['content']!r}, which has no entry in ICL_REFERENCES"
        conversation.append(dict(message))
        if message["role"] == "assistant":
            records.append({"messages": list(conversation), "metadata": {"reference_answer": ICL_REFERENCES[opener], "opener": opener}})
    return records


def test_tutor_prompts_carry_the_filter_rubric_and_keep_their_variables():
    import jinja2
    from jinja2 import meta

    blocks = _tutor_prompt_blocks()
    assert sorted(p.name for _, p, _ in blocks) == ["tutor_reply.yaml", "tutor_turn_1.yaml", "tutor_turn_2.yaml", "tutor_turn_3.yaml"]
    shared = set()
    for flow_id, path, input_cols in blocks:
        messages = yaml.safe_load(path.read_text())
        environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
        used = set().union(*(meta.find_undeclared_variables(environment.parse(m["content"])) for m in messages))
        assert used == set(input_cols), f"{path.name}: the template uses {sorted(used)}, the block passes {input_cols}"
        values = {col: f"<{col}>" for col in input_cols}
        rendered = [{"role": m["role"], "content": environment.from_string(m["content"]).render(**values)} for m in messages]
        # what the flow and the fake server rely on: a Socratic system turn, then real chat turns ending on the student
        assert rendered[0]["role"] == "system" and "Socratic" in rendered[0]["content"] and "<document>" in rendered[0]["content"]
        assert rendered[-1]["role"] == "user" and rendered[-1]["content"] == f"<{input_cols[-1]}>"
        rubric = " ".join(rendered[0]["content"].lower().replace("\u2019", "'").split())
        missing = [phrase for phrase in RUBRIC_PHRASES if phrase not in rubric]
        assert not missing, f"{flow_id} {path.name}: the tutor prompt lacks the rubric {missing}"
        # the rubric and the worked examples are the same in every tutor prompt (turns 2 and 3 add one line)
        rubric_block = rendered[0]["content"].split('(not "Does that make sense?").')[0]
        shared.add((rubric_block, json.dumps(_worked_examples(messages))))
    assert len(shared) == 2  # the multi-turn conversation example and the single-turn examples
    assert len({rubric for rubric, _ in shared}) == 1


def test_every_worked_tutor_reply_passes_the_quality_filter_and_obeys_the_rubric():
    from socratic_sdg.filtering import FilterOptions
    from socratic_sdg.filtering import check_conversation
    from socratic_sdg.filtering import load_rules

    rules, options = load_rules(), FilterOptions()
    student_work = re.compile(r"\d+(?:/\d+)?|x\^2|sin\(x\)|cos\(x\)")
    checked = 0
    for _, path, _ in _tutor_prompt_blocks():
        examples = _worked_examples(yaml.safe_load(path.read_text()))
        assert [m["role"] for m in examples] == ["user", "assistant"] * (len(examples) // 2) and len(examples) >= 4
        records = _example_records(examples)
        # at least one worked reply answers a wrong attempt (the multi-turn flow plants one)
        assert any(re.search(r"\bgot\b", r["messages"][-2]["content"]) for r in records), path.name
        for record in records:
            opener = record["metadata"].pop("opener")
            reply = record["messages"][-1]["content"]
            assert check_conversation(record, rules, options) == [], f"{path.name}: the filter rejects the worked reply {reply!r}"
            # the rubric, checked directly as well (the filter's rules change; the examples must not drift)
            assert reply.endswith("?") and reply.count("?") == 1, f"{path.name}: not exactly one question at the end: {reply!r}"
            assert 1 <= len(re.findall(r"[.!?](?:\s|$)", reply)) <= 3, f"{path.name}: more than three sentences: {reply!r}"
            assert not FALSE_PRAISE.search(reply), f"{path.name}: praise or confirmation in {reply!r}"
            revealed = [v for v in ICL_REVEALED[opener] if re.search(rf"(?<![\w.]){re.escape(v)}(?![\w])", reply.lower())]
            assert not revealed, f"{path.name}: {reply!r} reveals {revealed}"
            theirs = set(student_work.findall(" ".join(m["content"] for m in record["messages"] if m["role"] == "user")))
            assert theirs & set(student_work.findall(reply)), f"{path.name}: {reply!r} does not refer to the student's work"
            checked += 1
    assert checked == 3 * 3 + 3

    # the check is not vacuous: a reply that confirms and corrects the student's value is rejected
    examples = _worked_examples(yaml.safe_load(dict((p.name, p) for _, p, _ in _tutor_prompt_blocks())["tutor_turn_2.yaml"].read_text()))
    leaky = _example_records(examples)[1]
    leaky["metadata"].pop("opener")
    leaky["messages"][-1]["content"] = "Close! Add 5 to both sides instead, so 3x = 21 and x = 7. Can you check it?"
    assert {r["code"] for r in check_conversation(leaky, rules, options)}


# --------------------------------------------------------------------------------------------
# Flow prompts: checked before the first request, rendered in Jinja's sandbox (issue 13)
# --------------------------------------------------------------------------------------------


def _copy_of_package_flows(tmp_path) -> Path:
    import shutil

    copy = tmp_path / "flows"
    shutil.copytree(flow_catalog.package_flows_dir(), copy)
    return copy


def test_a_prompt_variable_typo_is_named_before_the_first_request(tmp_path, fake_llm, monkeypatch, capsys):
    flows = _copy_of_package_flows(tmp_path)
    prompt = flows / "socratic_single_turn" / "prompts" / "reference_answer.yaml"
    prompt.write_text(prompt.read_text().replace("{{student_message}}", "{{studnet_message}}"))
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(40))
    options = generate.GenerateOptions(flow_yaml_path=str(flows / "socratic_single_turn" / "flow.yaml"), requests=FAST)
    with pytest.raises(generate.GenerateError) as error:
        generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", options, _endpoint(fake_llm))
    message = str(error.value)
    assert message.startswith(
        "the flow 'socratic-single-turn' prompt prompts/reference_answer.yaml (block 'reference_answer_prompt') uses the variable(s) studnet_message"
    )
    assert "(its columns: document, student_message)" in message and "did you mean 'student_message' for 'studnet_message'" in message
    assert fake_llm.requests == 0 and not (tmp_path / "out").exists()

    from socratic_sdg import cli

    monkeypatch.setenv("LLM_API_BASE", fake_llm.api_base)
    monkeypatch.setenv("LLM_MODEL", "fake-model")
    code = cli.main(["generate", "--input", str(tmp_path / "chunks.jsonl"), "--output-dir", str(tmp_path / "out"), "--flow-yaml", options.flow_yaml_path])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "studnet_message" in err and fake_llm.requests == 0
    # the estimate loads the flow the same way: the same sentence, no request either
    from socratic_sdg.generate import estimate

    with pytest.raises(generate.GenerateError, match="uses the variable.*studnet_message"):
        estimate.run(tmp_path / "chunks.jsonl", estimate.EstimateOptions(probe_rows=0, generate_options=options))


def _one_prompt_flow(tmp_path, content: str) -> str:
    return write_question_flow(tmp_path / "evil", "evil-flow", content)


def test_a_flow_prompt_cannot_run_code_in_the_task(tmp_path, fake_llm):
    marker = tmp_path / "pwned"
    flow = _one_prompt_flow(tmp_path, "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }} Ask about {{document}}")
    write_jsonl(tmp_path / "chunks.jsonl", _chunks(2))
    with pytest.raises(generate.GenerateError, match=r"the flow 'evil-flow' prompt prompts/p.yaml \(block 'p'\) reads __globals__, __init__: .*sandbox"):
        generate.run(tmp_path / "chunks.jsonl", tmp_path / "out", generate.GenerateOptions(flow_yaml_path=flow, requests=FAST), _endpoint(fake_llm))
    assert not marker.exists() and fake_llm.requests == 0


def test_flow_prompts_render_in_the_sandbox_and_the_package_prompts_render_as_before(tmp_path):
    import pandas as pd
    from sdg_hub import Flow

    # a way around the name check (the attribute is in a format string): the sandbox refuses it when rendering
    flow = flow_catalog.load_flow(Path(_one_prompt_flow(tmp_path, "{{ '{0.__class__.__mro__}'.format(document) }} Ask about {{document}}")))
    block = flow.blocks[0]
    assert all(t.content_template.environment.sandboxed for t in block.prompt_template_config.message_templates)
    rendered = json.dumps(block(pd.DataFrame([{"document": "x"}]))["p_prompt"].tolist())
    assert "<class" not in rendered

    # the package's prompts: the same messages from the sandbox as from sdg_hub's plain templates
    row = {
        "document": "Section 1: the gradient.",
        "document_outline": "Calculus > Gradients",
        "student_level": "first year",
        "tone": "curious",
        "misconception": "none",
        "request_instruction": "ask for a hint",
        "student_message": "How?",
        "student_turn_1": "How?",
        "tutor_turn_1": "What do you see?",
        "student_turn_2": "2x?",
        "tutor_turn_2": "Why?",
        "student_turn_3": "Just tell me.",
        "reference_answer": "(2, 4)",
        "domain": "mathematics",
    }
    for flow_path in generate.package_flows().values():
        sandboxed, plain = flow_catalog.load_flow(flow_path), Flow.from_yaml(str(flow_path))
        for ours, theirs in zip(sandboxed.blocks, plain.blocks):
            if type(ours).__name__ != "PromptBuilderBlock":
                continue
            frame = pd.DataFrame([{c: row.get(c, "x") for c in flow_catalog._template_names(ours.input_cols)}])
            assert ours(frame)[ours.output_cols[0]].tolist() == theirs(frame)[theirs.output_cols[0]].tolist()


@pytest.mark.parametrize("sdg_hub_first", [False, True])
def test_sdg_hub_s_own_discovery_finds_our_flows_after_import_socratic_sdg(sdg_hub_first):
    """The workshop's discovery code, verbatim, after one `import socratic_sdg` (before or after sdg_hub's)."""
    seed = """
from sdg_hub import Flow, FlowRegistry
FlowRegistry.discover_flows()
path = FlowRegistry.get_flow_path("socratic-single-turn")
found = [f["id"] if isinstance(f, dict) else f for f in FlowRegistry.search_flows(tag="socratic-tutoring")]
flow = Flow.from_yaml(path)
print("RESULT", sorted(found), flow.metadata.id)
"""
    code = ("import sdg_hub.core.flow.registry\nimport socratic_sdg\n" if sdg_hub_first else "import socratic_sdg\n") + seed
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))
    assert result == "RESULT ['socratic-multi-turn', 'socratic-single-turn'] socratic-single-turn"
