from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from .image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def filter_conversations(
    conversations: Input[Dataset],
    chunks: Input[Dataset],
    filtered: Output[Dataset],
    rules_path: str = "",
    graded_turns: str = "all",
    check_format: bool = True,
    min_turn_chars: int = 10,
    max_turn_chars: int = 2000,
    max_message_chars: int = 100000,
    language: str = "",
    check_rules: bool = True,
    require_question: bool = True,
    min_green_score: int = 0,
    check_leakage: bool = True,
    leakage_use_problem: bool = True,
    judge: bool = False,
    judge_endpoint: str = "",
    judge_model: str = "",
    judge_prompt_path: str = "",
    judge_max_concurrency: int = 8,
    judge_max_retries: int = 3,
    judge_timeout_seconds: float = 60.0,
    judge_min_mistake_identification: int = 3,
    judge_min_guidance: int = 3,
    judge_min_actionability: int = 3,
    judge_min_grounding: int = 3,
    judge_min_tone: int = 3,
    judge_reject_wrong_answer: bool = True,
    judge_on_error: str = "reject",
    dedup: bool = True,
    dedup_questions: bool = True,
    dedup_conversations: bool = True,
    dedup_near: bool = True,
    dedup_question_threshold: float = 0.8,
    dedup_conversation_threshold: float = 0.8,
    dedup_numbers_must_match: bool = True,
):
    """Keep conversations where the tutor guides and never gives the answer away.

    The judge's endpoint defaults to LLM_API_BASE / LLM_API_KEY / LLM_MODEL from the Secret.

    Args:
        conversations: Output of generate_conversations.
        chunks: Output of chunk_documents: the source passages, for grounding and leakage checks.
        filtered: Folder with accepted.jsonl, rejected.jsonl (with drop_reasons) and filter_metrics.json.
        rules_path: Rules YAML (e.g. mounted from a ConfigMap); empty uses the packaged rules.
        graded_turns: Tutor turns graded: all (each is a training target) or last (earlier turns are context, as in a labelled set of human replies).
        check_format: Pattern checks and length bounds of the format layer (the dialogue structure is always checked).
        min_turn_chars: Shortest tutor turn, in characters.
        max_turn_chars: Longest tutor turn, in characters.
        max_message_chars: Any longer message (student turns too) rejects its conversation before the checks run (0 = no limit).
        language: Reject tutor turns not in this language (e.g. en); empty = no language check.
        check_rules: The red/green phrase rules.
        require_question: Reject conversations whose last tutor turn does not ask a question.
        min_green_score: Guiding moves (green flags) the last tutor turn needs, on top of the question.
        check_leakage: Reject tutor turns that state the hidden reference answer or solve the student's problem.
        leakage_use_problem: Without a reference answer, solve the student's own equation to find the answer a turn may leak.
        judge: Also score the conversations the other layers accept with an LLM judge (more requests to the endpoint).
        judge_endpoint: Judge base URL; empty uses LLM_API_BASE from the Secret. Setting it switches the judge on.
        judge_model: Judge model; empty uses LLM_MODEL from the Secret (else the endpoint's first model).
        judge_prompt_path: Rubric prompt YAML; empty uses the packaged one.
        judge_max_concurrency: Judge requests in flight at once.
        judge_max_retries: Retries per judge request.
        judge_timeout_seconds: Seconds per judge request.
        judge_min_mistake_identification: Lowest judge score (1-5) accepted for noticing the student's mistake (3 = to some extent; 0 = off). Not scored when the student made none.
        judge_min_guidance: Lowest judge score (1-5) accepted for guiding the student toward the solution.
        judge_min_actionability: Lowest judge score (1-5) accepted for a clear next step for the student.
        judge_min_grounding: Lowest judge score (1-5) accepted for staying with the source passage.
        judge_min_tone: Lowest judge score (1-5) accepted for an encouraging tone.
        judge_reject_wrong_answer: Reject replies the judge says reveal a wrong answer.
        judge_on_error: What a conversation the judge could not score becomes: reject or accept.
        dedup: Remove exact and near-duplicate student questions and conversations.
        dedup_questions: Deduplicate student questions.
        dedup_conversations: Deduplicate whole conversations.
        dedup_near: Near-duplicates (MinHash) as well as exact ones.
        dedup_question_threshold: Near-duplicate similarity (0-1) above which a student question is a duplicate.
        dedup_conversation_threshold: Near-duplicate similarity (0-1) above which a conversation is a duplicate.
        dedup_numbers_must_match: Near-duplicates must have the same numbers (the same exercise with other values is a new one).
    """
    params = dict(locals())  # the parameters, before any other name is bound

    import os

    from socratic_sdg import artifacts
    from socratic_sdg import filtering as stage
    from socratic_sdg.options import from_params

    options = from_params(stage.FilterOptions, params, chunks_path=os.path.join(chunks.path, artifacts.CHUNKS_FILE))
    result = stage.run(os.path.join(conversations.path, artifacts.CONVERSATIONS_FILE), filtered.path, options)
    print("\n".join(result.summary_lines()))
