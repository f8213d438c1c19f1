from kfp import dsl
from kfp.dsl import Dataset, Input

from .image import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def validate_dataset(dataset: Input[Dataset]) -> int:
    """Check every row of a dataset folder the way the fine-tuning loader reads it; fail on a bad row.

    Args:
        dataset: Folder with train.jsonl and validation.jsonl.

    Returns:
        The number of records (train + validation).
    """
    from socratic_sdg.export.validate import validate

    report = validate(dataset.path)
    for problem in report.problems[:50]:
        print(problem)
    if not report.ok:
        raise ValueError(f"{len(report.problems)} problems in {dataset.path}; the first are printed above")
    print(f"dataset ok: {report.rows}")
    return sum(report.rows.values())
