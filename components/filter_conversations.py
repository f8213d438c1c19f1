from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from .image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def filter_conversations(
    conversations: Input[Dataset],
    filtered: Output[Dataset],
    rules_path: str = "",
    require_question: bool = True,
):
    """Keep conversations where the tutor guides and never gives the answer away.

    Args:
        conversations: Output of generate_conversations.
        filtered: Folder with accepted.jsonl, rejected.jsonl (with drop_reasons) and filter_metrics.json.
        rules_path: Rules YAML (e.g. mounted from a ConfigMap); empty uses the packaged rules.
        require_question: Reject replies whose last tutor turn does not ask a question.
    """
    import os

    from socratic_sdg import filter as stage

    options = stage.FilterOptions(rules_path=rules_path or None, require_question=require_question)
    result = stage.run(os.path.join(conversations.path, "conversations.jsonl"), filtered.path, options)
    print(f"{result.accepted} accepted, {result.rejected} rejected: {result.reasons}")
