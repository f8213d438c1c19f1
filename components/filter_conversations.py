from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from .image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def filter_conversations(
    conversations: Input[Dataset],
    chunks: Input[Dataset],
    filtered: Output[Dataset],
    rules_path: str = "",
    require_question: bool = True,
    language: str = "",
    check_leakage: bool = True,
    dedup: bool = True,
    dedup_threshold: float = 0.8,
    judge: bool = False,
    judge_endpoint: str = "",
    judge_model: str = "",
    judge_max_concurrency: int = 8,
    judge_min_score: int = 3,
    judge_min_mistake_identification: int = 3,
):
    """Keep conversations where the tutor guides and never gives the answer away.

    The judge's endpoint defaults to LLM_API_BASE / LLM_API_KEY / LLM_MODEL from the Secret.

    Args:
        conversations: Output of generate_conversations.
        chunks: Output of chunk_documents: the source passages, for grounding and leakage checks.
        filtered: Folder with accepted.jsonl, rejected.jsonl (with drop_reasons) and filter_metrics.json.
        rules_path: Rules YAML (e.g. mounted from a ConfigMap); empty uses the packaged rules.
        require_question: Reject replies whose last tutor turn does not ask a question.
        language: Reject turns not in this language (e.g. en); empty = no check.
        check_leakage: Compare tutor turns with the hidden reference answer and the problem.
        dedup: Remove exact and near-duplicate questions and conversations.
        dedup_threshold: Near-duplicate similarity (0-1) for questions and conversations.
        judge: Score accepted conversations with an LLM judge.
        judge_endpoint: Judge base URL; empty uses LLM_API_BASE.
        judge_model: Judge model; empty uses LLM_MODEL.
        judge_max_concurrency: Judge requests in flight.
        judge_min_score: Lowest accepted judge score (1-5) for guidance, actionability, grounding and tone.
        judge_min_mistake_identification: Lowest accepted judge score (1-5) for noticing the student's mistake (3 = to some extent; 0 = off). Not scored when the student made none.
    """
    import os

    from socratic_sdg import artifacts
    from socratic_sdg import filtering as stage

    options = stage.FilterOptions(
        rules_path=rules_path or None,
        require_question=require_question,
        language=language or None,
        check_leakage=check_leakage,
        dedup=dedup,
        dedup_question_threshold=dedup_threshold,
        dedup_conversation_threshold=dedup_threshold,
        judge=judge,
        judge_endpoint=judge_endpoint or None,
        judge_model=judge_model or None,
        judge_max_concurrency=judge_max_concurrency,
        judge_min_guidance=judge_min_score,
        judge_min_actionability=judge_min_score,
        judge_min_grounding=judge_min_score,
        judge_min_tone=judge_min_score,
        judge_min_mistake_identification=judge_min_mistake_identification,
        chunks_path=os.path.join(chunks.path, artifacts.CHUNKS_FILE),
    )
    result = stage.run(os.path.join(conversations.path, artifacts.CONVERSATIONS_FILE), filtered.path, options)
    print(f"{result.accepted} accepted, {result.rejected} rejected: {result.reasons}")
