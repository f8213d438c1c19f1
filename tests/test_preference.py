"""Best of k tutor replies (generate.candidates) and the preference pairs made of the rejected ones
(export.preference), read by TRL's own DPO code."""

from __future__ import annotations

import copy
import json

import pytest

from socratic_sdg import export, filtering
from socratic_sdg.export.preference import near_duplicate, preference_pairs
from socratic_sdg.export.validate import check_pair, validate
from socratic_sdg.generate import GenerateOptions, run
from socratic_sdg.generate.candidates import tutor_steps
from socratic_sdg.generate.errors import GenerateError
from socratic_sdg.generate.gateway import RequestPolicy
from socratic_sdg.records import read_jsonl, write_jsonl
from socratic_sdg.testing.fake_openai import TUTOR, TUTOR_LEAK, FakeOpenAI
from socratic_sdg.testing.generation import fake_endpoint, gradient_chunks, read_outputs, write_question_flow

LEAK_RATE = 0.4


@pytest.fixture
def leaky_server():
    server = FakeOpenAI(leak_rate=LEAK_RATE).start()
    yield server
    server.stop()


def _generate(server, tmp_path, candidates: int, chunks: int = 20, **options):
    write_jsonl(tmp_path / "chunks.jsonl", gradient_chunks(chunks))
    out = tmp_path / f"gen-{candidates}"
    run(tmp_path / "chunks.jsonl", out, GenerateOptions(tutor_candidates=candidates, **options), endpoint=fake_endpoint(server))
    return read_outputs(out)


def _steps(flow_id: str):
    from socratic_sdg.generate.catalog import load_flow, resolve_flow
    from socratic_sdg.generate.runner import build_steps

    return build_steps(load_flow(resolve_flow(flow_id, None)), None)


def test_the_tutor_blocks_of_both_flows_are_found_and_no_other():
    assert tutor_steps(_steps("socratic-single-turn")) == {"generate_tutor_reply"}
    assert tutor_steps(_steps("socratic-multi-turn")) == {f"generate_tutor_turn_{n}" for n in (1, 2, 3)}


def test_a_flow_without_a_tutor_turn_refuses_candidates(tmp_path):
    flow = write_question_flow(tmp_path / "flow", "question-only", "Ask one question about {{document}}")
    with open(flow, encoding="utf-8") as handle:  # no block copies the question into a tutor column: a student side only
        text = handle.read().split("  - block_type: DuplicateColumnsBlock")[0]
    with open(flow, "w", encoding="utf-8") as handle:
        handle.write(text)
    write_jsonl(tmp_path / "chunks.jsonl", gradient_chunks(2))
    server = FakeOpenAI().start()
    try:
        with pytest.raises(GenerateError, match="tutor_candidates=2 needs a tutor turn"):
            run(tmp_path / "chunks.jsonl", tmp_path / "out", GenerateOptions(flow_yaml_path=flow, tutor_candidates=2), endpoint=fake_endpoint(server))
    finally:
        server.stop()


@pytest.mark.parametrize("value", [0, 9])
def test_tutor_candidates_out_of_range_is_refused(value):
    with pytest.raises(GenerateError, match="tutor_candidates must be between 1 and 8"):
        GenerateOptions(tutor_candidates=value)


def test_one_candidate_changes_nothing(leaky_server, tmp_path):
    conversations, failed, metrics = _generate(leaky_server, tmp_path, 1)
    assert len(conversations) == 20 and not failed
    assert all("tutor_candidates" not in c["metadata"] for c in conversations)
    assert "tutor_candidates" not in metrics
    assert metrics["requests"] == 20 * 3  # student, reference, tutor
    leaked = sum(c["messages"][-1]["content"] == TUTOR_LEAK for c in conversations)
    assert 0 < leaked < 20  # the simulated endpoint leaks in some replies, and those rows are lost to the filter


def test_best_of_three_keeps_a_guiding_reply_and_records_the_leaks(leaky_server, tmp_path):
    conversations, failed, metrics = _generate(leaky_server, tmp_path, 3)
    assert len(conversations) == 20 and not failed
    # One request per tutor turn asks for n=3 (the fake endpoint answers n, as vLLM does).
    assert metrics["requests"] == 20 * 3
    assert metrics["tutor_candidates"]["n_supported"] is True
    assert metrics["tutor_candidates"]["candidates"] == 60 and metrics["tutor_candidates"]["turns"] == 20
    kept_leaks = [c for c in conversations if c["messages"][-1]["content"] == TUTOR_LEAK]
    # A leak is kept only when all three candidates leaked (0.4^3 = 6%); at k=1 it is 40%.
    assert len(kept_leaks) <= 3
    for conversation in conversations:
        (turn,) = conversation["metadata"]["tutor_candidates"]
        assert turn["message_index"] == 1 and turn["candidates"] == 3
        assert turn["accepted"] == (conversation["messages"][-1]["content"] == TUTOR)
        for rejected in turn["rejected"]:
            assert rejected["content"] == TUTOR_LEAK
            codes = {reason["code"] for reason in rejected["reasons"]}
            assert "leaks_answer_value" in codes and "no_guiding_question" in codes
    with_pair = sum(bool(c["metadata"]["tutor_candidates"][0]["rejected"]) and c["metadata"]["tutor_candidates"][0]["accepted"] for c in conversations)
    assert with_pair == metrics["tutor_candidates"]["turns_with_pair"] > 0


def test_an_endpoint_without_n_gets_one_request_per_candidate(tmp_path):
    server = FakeOpenAI(leak_rate=LEAK_RATE, answers_n=False).start()
    try:
        conversations, failed, metrics = _generate(server, tmp_path, 3, requests=RequestPolicy(max_concurrency=1))
    finally:
        server.stop()
    assert len(conversations) == 20 and not failed
    assert metrics["tutor_candidates"]["n_supported"] is False
    assert metrics["tutor_candidates"]["candidates"] == 60  # all three candidates still came
    # One at a time: the first row learns that n is not answered (1 + 2 requests), every later row asks 3 times.
    assert metrics["requests"] == 20 * 2 + 3 + 19 * 3
    seeds = [body.get("seed") for _, body in server.calls if body.get("n") == 1 and "Socratic" in json.dumps(body["messages"])]
    assert len(seeds) == len(set(seeds))  # each candidate with a seed of its own, so they differ


def test_an_endpoint_refusing_n_gets_one_request_per_candidate(tmp_path):
    server = FakeOpenAI(leak_rate=LEAK_RATE, refuses_n=True).start()
    try:
        conversations, failed, metrics = _generate(server, tmp_path, 2, chunks=6, requests=RequestPolicy(max_concurrency=1))
    finally:
        server.stop()
    assert len(conversations) == 6 and not failed  # a 400 for n fails no row
    assert metrics["tutor_candidates"]["n_supported"] is False and metrics["tutor_candidates"]["candidates"] == 12
    assert metrics["requests"] == 6 * 2 + 1 + 6 * 2  # the refused n request once, then two requests per tutor turn


def test_multi_turn_chooses_at_every_tutor_turn(leaky_server, tmp_path):
    conversations, failed, metrics = _generate(leaky_server, tmp_path, 2, chunks=10, flow_id="socratic-multi-turn")
    assert len(conversations) == 10 and not failed
    for conversation in conversations:
        turns = conversation["metadata"]["tutor_candidates"]
        assert [t["message_index"] for t in turns] == [1, 3, 5]
        for turn in turns:  # the kept reply is the conversation's tutor message at that index
            reply = conversation["messages"][turn["message_index"]]
            assert reply["role"] == "assistant" and turn["candidates"] == 2
            if turn["accepted"]:  # what was rejected is another reply
                assert all(r["content"] != reply["content"] for r in turn["rejected"])
    assert metrics["tutor_candidates"]["turns"] == 30


def _accepted(record_id: str, reply: str, rejected: list[tuple[str, list[str]]], chunk_id: str = "c1", accepted: bool = True) -> dict:
    return {
        "id": record_id,
        "messages": [{"role": "user", "content": "What is the slope of y = 3x + 2?"}, {"role": "assistant", "content": reply}],
        "metadata": {"chunk_id": chunk_id, "doc_id": "d", "source": "s.pdf", "tutor_candidates": [
            {"message_index": 1, "candidates": 1 + len(rejected), "accepted": accepted,
             "rejected": [{"content": text, "reasons": [{"code": code, "layer": "rules", "detail": code} for code in codes]}
                          for text, codes in rejected]}]},
    }


def test_pairs_skip_near_duplicates_and_turns_whose_kept_reply_was_rejected():
    guiding = "Look at the equation y = 3x + 2. Which number multiplies x there?"
    record = _accepted("a", guiding, [("Look at the equation y = 3x + 2. Which number multiplies x here?", ["low_green_score"]),
                                      ("The slope is 3.", ["leaks_answer_value", "no_guiding_question"])])
    pairs, near = preference_pairs(record, system_prompt="You are a Socratic tutor.")
    assert near == 0 and len(pairs) == 1  # one pair per turn: the first rejected reply that is not a near-duplicate
    (pair,) = pairs
    assert pair["prompt"] == [{"role": "system", "content": "You are a Socratic tutor."}, record["messages"][0]]
    assert pair["chosen"] == [{"role": "assistant", "content": guiding}]
    assert pair["rejected"] == [{"role": "assistant", "content": "The slope is 3."}]
    assert pair["metadata"]["rejected_reasons"] == ["leaks_answer_value", "no_guiding_question"] and pair["metadata"]["chunk_id"] == "c1"
    assert not check_pair(pair)

    only_near = _accepted("b", guiding, [(guiding.replace("there", "here"), ["low_green_score"])])
    assert preference_pairs(only_near) == ([], 1)
    assert preference_pairs(_accepted("c", guiding, [("The slope is 3.", ["leaks_answer_value"])], accepted=False)) == ([], 0)
    assert near_duplicate("What is 3 + 4?", "what is 3 + 4 ?") and not near_duplicate("What is 3 + 4?", "The answer is 7.")


def test_export_writes_pairs_on_the_conversations_side_of_the_split_and_validate_checks_them(leaky_server, tmp_path):
    _generate(leaky_server, tmp_path, 3, chunks=30)
    filtering.run(tmp_path / "gen-3" / "conversations.jsonl", tmp_path / "filtered")
    result = export.run(tmp_path / "filtered" / "accepted.jsonl", tmp_path / "dataset", export.ExportOptions(validation_ratio=0.3))
    dataset = tmp_path / "dataset"
    assert result.preference["train"] > 0 and result.preference["validation"] > 0
    assert result.metrics()["preference"] == result.preference
    chunks = {split: {r["metadata"]["chunk_id"] for r in read_jsonl(dataset / f"{split}.jsonl")} for split in ("train", "validation")}
    for split in ("train", "validation"):
        pairs = list(read_jsonl(dataset / "preference" / f"{split}.jsonl"))
        assert len(pairs) == result.preference[split]
        assert {p["metadata"]["chunk_id"] for p in pairs} <= chunks[split]  # a chunk's pairs never cross the split
        assert all(p["rejected"][0]["content"] == TUTOR_LEAK and p["chosen"][0]["content"] == TUTOR for p in pairs)
    # The SFT records do not carry the rejected candidates.
    assert all("tutor_candidates" not in r["metadata"] for r in read_jsonl(dataset / "train.jsonl"))
    report = validate(dataset)
    assert report.ok, report.problems
    assert report.rows["preference/train.jsonl"] == result.preference["train"]

    # The card and the report count the pairs; the card declares them as a second config.
    from socratic_sdg.export import summary

    collected, _ = summary.document(dataset, conversations_dir=tmp_path / "gen-3", filtered_dir=tmp_path / "filtered")
    assert (collected["tutor_candidates"], collected["preference_train"]) == (3, result.preference["train"])
    card = (dataset / "README.md").read_text()
    assert "config_name: preference" in card and "path: preference/train.jsonl" in card
    assert f"| preference pairs | {result.preference['train']} train + {result.preference['validation']} validation (best of 3" in card
    assert "preference pairs (train + validation)" in (dataset / "report.html").read_text()
    assert validate(dataset).ok

    # A pair moved across the split, and a broken pair, are reported by file and line.
    pairs = list(read_jsonl(dataset / "preference" / "validation.jsonl"))
    crossing = copy.deepcopy(pairs[0])
    broken = {**copy.deepcopy(pairs[0]), "rejected": pairs[0]["chosen"]}
    write_jsonl(dataset / "preference" / "train.jsonl", [crossing, broken])
    problems = validate(dataset).problems
    assert any("train.jsonl:1: chunk" in p and "other split" in p for p in problems)
    assert any("train.jsonl:2: chosen and rejected are the same reply" in p for p in problems)


def test_a_new_export_without_candidates_replaces_stale_pairs(leaky_server, tmp_path):
    _generate(leaky_server, tmp_path, 3, chunks=10)
    filtering.run(tmp_path / "gen-3" / "conversations.jsonl", tmp_path / "filtered")
    export.run(tmp_path / "filtered" / "accepted.jsonl", tmp_path / "dataset")
    assert list(read_jsonl(tmp_path / "dataset" / "preference" / "train.jsonl"))
    _generate(leaky_server, tmp_path, 1, chunks=10)
    filtering.run(tmp_path / "gen-1" / "conversations.jsonl", tmp_path / "filtered-1")
    result = export.run(tmp_path / "filtered-1" / "accepted.jsonl", tmp_path / "dataset")
    assert result.preference == {"train": 0, "validation": 0, "near_duplicates": 0}
    assert not list(read_jsonl(tmp_path / "dataset" / "preference" / "train.jsonl"))


def test_trl_dpo_trainer_reads_and_trains_on_the_pairs(leaky_server, tmp_path):
    """The downstream consumer itself: TRL's data utilities and its DPOTrainer, two steps of a tiny model."""
    pytest.importorskip("trl")
    import datasets
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import DPOConfig, DPOTrainer
    from trl.data_utils import is_conversational, maybe_apply_chat_template, maybe_extract_prompt

    _generate(leaky_server, tmp_path, 3, chunks=30)
    filtering.run(tmp_path / "gen-3" / "conversations.jsonl", tmp_path / "filtered")
    export.run(tmp_path / "filtered" / "accepted.jsonl", tmp_path / "dataset", export.ExportOptions(validation_ratio=0.3))
    from socratic_sdg.export import summary

    summary.document(tmp_path / "dataset", conversations_dir=tmp_path / "gen-3", filtered_dir=tmp_path / "filtered")
    # As a consumer loads it: the dataset folder, by the card's "preference" config.
    pairs = datasets.load_dataset(str(tmp_path / "dataset"), "preference")
    assert set(pairs) == {"train", "validation"}
    sft = datasets.load_dataset(str(tmp_path / "dataset"))  # the default config is still the SFT records
    assert "messages" in sft["train"].column_names
    assert pairs["train"].num_rows > 0 and is_conversational(pairs["train"][0])

    # A word-level tokenizer with a chat template, built here: no model hub.
    words = {w for split in pairs.values() for row in split for key in ("prompt", "chosen", "rejected") for m in row[key] for w in m["content"].split()}
    specials = ["<unk>", "<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"]
    vocab = {w: i for i, w in enumerate(specials + sorted(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|> {% endif %}")
    text = maybe_apply_chat_template(maybe_extract_prompt(pairs["train"][0]), tokenizer)
    assert text["prompt"].startswith("<|user|>") and TUTOR in text["chosen"] and TUTOR_LEAK in text["rejected"]

    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256))
    config = DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=2, per_device_train_batch_size=2, report_to=[], use_cpu=True,
                       logging_steps=1, save_strategy="no")
    trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(model), args=config, train_dataset=pairs["train"],
                         eval_dataset=pairs["validation"], processing_class=tokenizer)
    outcome = trainer.train()
    assert outcome.global_step == 2 and outcome.training_loss > 0
