"""Example: the SDG pipeline nested in a platform team's bigger pipeline.

The SDG pipeline is used like a component: its output dataset (a folder with train.jsonl and
validation.jsonl) flows into the next step. Here that step is `validate_dataset`, standing in for
the fine-tuning job (training_hub, a PyTorchJob launcher, ...), which would take the same input.
The SDG pipeline's parameters carry dashboard names (phase_01_convert_man_input_dir...);
`arguments` takes them by their short names. Compiled next to this file as example_training_pipeline.yaml.
"""

from pathlib import Path

from kfp import dsl

from socratic_sdg.components import validate_dataset

from .socratic_sdg_pipeline import MINUTE, arguments, set_limits, socratic_sdg_pipeline

COMPILED_PATH = Path(__file__).with_name("example_training_pipeline.yaml")


@dsl.pipeline(name="socratic-sdg-then-train", description="Generate a Socratic tutor dataset, then hand it to the training step.")
def sdg_then_train(
    pvc_name: str = "socratic-sdg-data",
    llm_secret_name: str = "llm-endpoint",
    convert_input_dir: str = "/data/pdfs",
    convert_pipeline: str = "standard",
    generate_max_chunks: int = 0,
    filter_dedup: bool = True,
) -> int:
    """Socratic SDG, then the training step.

    Args:
        pvc_name: PersistentVolumeClaim holding the input documents, mounted at /data.
        llm_secret_name: Secret with LLM_API_BASE, LLM_API_KEY and optionally LLM_MODEL.
        convert_input_dir: Folder with the PDFs on the PVC.
        convert_pipeline: docling pipeline: standard, native or vlm-remote.
        generate_max_chunks: Generate from the first N chunks only (0 = all).
        filter_dedup: Remove duplicate questions and conversations.
    """
    sdg = socratic_sdg_pipeline(**arguments(pvc_name=pvc_name, llm_secret_name=llm_secret_name, convert_input_dir=convert_input_dir,
                                            convert_pipeline=convert_pipeline, generate_max_chunks=generate_max_chunks, filter_dedup=filter_dedup))
    training = validate_dataset(dataset=sdg.output)
    set_limits(training, cpu=("250m", "1"), memory=("512Mi", "1Gi"), timeout_seconds=MINUTE * 30)
    return training.output


def compile_pipeline(output_path: str | Path = COMPILED_PATH) -> Path:
    from kfp import compiler

    compiler.Compiler().compile(sdg_then_train, package_path=str(output_path))
    return Path(output_path)
