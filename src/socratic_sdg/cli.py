"""socratic-sdg: the command line. Thin: parse arguments, call the library, print progress and a summary."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

from . import artifacts
from .errors import SocraticSdgError
from .options import add_arguments, from_args, parameters

# Errors a user can cause and fix: printed as one line, no traceback. Every stage's own error is a
# SocraticSdgError; options objects reject bad values with ValueError, a missing file is FileNotFoundError.
USER_ERRORS: tuple[type[BaseException], ...] = (SocraticSdgError, FileNotFoundError, ValueError)


def os_error_sentence(exc: OSError) -> str:
    """One sentence for an OSError: what happened, to which path, and what to do."""
    import errno

    path = exc.filename or "a file"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the device writing {path}; free space (or point --output-dir elsewhere) and "
                "rerun: outputs already written are kept, and generation resumes from its checkpoint")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path} ({exc.strerror}); choose a folder you can write to"
    if exc.errno == errno.EISDIR:
        return f"{path} is a folder, but a file is expected there"
    if exc.errno == errno.ENOTDIR or exc.errno == errno.EEXIST:
        return f"{path} is in the way ({exc.strerror}): a file stands where a folder is expected, or the other way round"
    return f"{exc.strerror or exc} ({path})"


def _say(message: str) -> None:
    print(message, flush=True)


def _add(sub, name: str, help_text: str, examples: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog="examples:\n" + textwrap.indent(textwrap.dedent(examples).strip(), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _summary(result, output=None) -> None:
    """What a stage's result says of itself, then where its outputs are."""
    for line in result.summary_lines():
        _say(line)
    if output is not None:
        _say(f"-> {output}")


def cmd_convert(args) -> int:
    from . import convert

    options = from_args(convert.ConvertOptions, args)
    _summary(convert.run(args.input, args.output_dir, options, progress=_say), args.output_dir)
    return 0


def cmd_chunk(args) -> int:
    from . import chunk

    options = from_args(chunk.ChunkOptions, args)
    _summary(chunk.run(args.input, args.output, options, progress=_say), args.output)
    return 0


# The estimate predicts one whole run: the run's own budget, checkpoint and shard are not its settings
# (its --target-examples is the estimate's own).
_NOT_ESTIMATE_SETTINGS = ("target_examples", "checkpoint_dir", "save_freq", "max_requests", "shard_index", "num_shards")


def _generate_options(args, skip: tuple[str, ...] = ()):
    from .generate import GenerateOptions

    values = argparse.Namespace(**{name: value for name, value in vars(args).items() if name not in skip})
    return replace(from_args(GenerateOptions, values), target_filter=_target_filter(args))


# The filter settings a generation's target (and an estimate's acceptance) is counted with, as the components take them.
TARGET_FILTER_SETTINGS = ("rules_path", "require_question", "language", "check_leakage", "dedup")


def _target_filter(args):
    from .filtering import FilterOptions

    return from_args(FilterOptions, args)


def cmd_generate(args) -> int:
    from . import generate
    from .endpoint import EndpointConfig

    endpoint = EndpointConfig.from_env(api_base=args.api_base, model=args.model)
    try:
        result = generate.run(args.input, args.output_dir, _generate_options(args), endpoint, progress=_say)
    except generate.NothingGenerated as nothing:  # the outputs are written: show them, then fail (exit 2)
        if nothing.result:
            _summary(nothing.result)
        raise
    _summary(result, args.output_dir)
    return 0


def cmd_estimate(args) -> int:
    from .generate import estimate
    from .endpoint import EndpointConfig

    options = replace(from_args(estimate.EstimateOptions, args), generate_options=_generate_options(args, skip=_NOT_ESTIMATE_SETTINGS),
                      filter_options=_target_filter(args))
    endpoint = EndpointConfig.from_env(api_base=args.api_base, model=args.model) if args.probe_rows else None
    _summary(estimate.run(args.input, options, endpoint, progress=_say, output_dir=args.output_dir))
    return 0


def cmd_flows(args) -> int:
    from .generate import catalog as flow_catalog

    if args.action == "show":
        if not args.flow_id:
            raise ValueError("`socratic-sdg flows show` needs a flow id; `socratic-sdg flows` lists them")
        _say(flow_catalog.format_flow(flow_catalog.show_flow(args.flow_id)))
    else:
        _say(flow_catalog.format_flows(flow_catalog.list_flows(tag=args.tag)))
    return 0


def _filter_options(args, **overrides):
    from .filtering import FilterOptions

    return from_args(FilterOptions, args, **overrides)


def cmd_filter(args) -> int:
    from . import filtering

    options = _filter_options(args)
    _summary(filtering.run(args.input, args.output_dir, options), args.output_dir)
    return 0


def cmd_evaluate(args) -> int:
    from . import evaluate

    # Many replies answer one dialogue by design: dedup would keep only the first of each.
    options = _filter_options(args)
    judge = None
    if options.judge is not None:  # evaluate scores the judge on its own, beside the deterministic layers
        from .filtering.judge import Judge

        judge = Judge(options.judge)
        options = replace(options, judge=None)
    try:
        result = evaluate.evaluate(args.input, args.output_dir, options, judge=judge, examples=args.examples,
                                   sample=args.sample, progress=_say)
    finally:
        if judge is not None:
            judge.close()
    _say(Path(result.markdown_path).read_text(encoding="utf-8").split("\n## ")[0].rstrip())
    if "judge" in result.report:
        judge_part = Path(result.markdown_path).read_text(encoding="utf-8").split("## Judge agreement")[1]
        _say("\njudge agreement" + judge_part.rstrip())
    _say(f"\nreport: {result.markdown_path} (and {Path(result.json_path).name})")
    return 0


def cmd_export(args) -> int:
    from . import export

    from .export import summary as run_summary

    options = from_args(export.ExportOptions, args)
    _summary(export.run(args.input, args.output_dir, options, progress=_say))
    # The card and the report, from the stage folders that are known: the filter's is the input's folder.
    chunks = Path(args.chunks).parent if args.chunks and Path(args.chunks).is_file() else args.chunks
    _, written = run_summary.document(args.output_dir, converted_dir=args.converted, chunks_dir=chunks, conversations_dir=args.conversations,
                                      filtered_dir=Path(args.input).parent, license_id=args.license)
    _say(f"card: {written['card']}\nreport: {written['html']}")
    return 0


def cmd_validate(args) -> int:
    from .export.validate import validate

    report = validate(args.dataset)
    for problem in report.problems[: args.max_problems]:
        _say(problem)
    if len(report.problems) > args.max_problems:
        _say(f"... and {len(report.problems) - args.max_problems} more")
    rows = ", ".join(f"{split}: {count} rows" for split, count in report.rows.items())
    _say(f"{'ok' if report.ok else f'{len(report.problems)} problems'} ({rows})")
    return 0 if report.ok else 1


def _parse_params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--param {pair!r} is not KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def cmd_run(args) -> int:
    from .deploy.local_run import LocalRunOptions, run_locally

    from .export import summary as run_summary

    parameters = _parse_params(args.param)
    shortcuts = (("max_chunks", "generate_max_chunks"), ("max_concurrency", "generate_max_concurrency"),
                 ("flow_id", "generate_flow_id"), ("model", "generate_model"))
    for flag, name in shortcuts:
        value = getattr(args, flag)
        if value is not None:
            parameters[name] = value
    result = run_locally(LocalRunOptions(input_dir=args.input, output_dir=args.output_dir, parameters=parameters, local_model_path=args.local_model,
                                         verbose=args.verbose))
    _say("\n" + run_summary.to_text(result.summary))
    _say(f"\nfinished in {result.seconds:.0f}s (the runner's log: {result.log_path})")
    _say(f"dataset: {result.dataset_dir}")
    _say(f"  train:      {result.dataset_dir / 'train.jsonl'}")
    _say(f"  validation: {result.dataset_dir / 'validation.jsonl'}")
    _say(f"  card:       {result.dataset_dir / 'README.md'}")
    _say(f"  report:     {result.dataset_dir / 'report.html'}")
    _say(f"  (also at {Path(args.output_dir) / 'latest'})")
    if not result.summary.get("accepted"):  # said last, where it is seen
        reasons = ", ".join(f"{reason} {count}" for reason, count in list(result.summary.get("rejected_by_reason", {}).items())[:3])
        _say(f"\nno conversation passed the filter ({result.summary.get('generated', 0)} generated; rejected: {reasons or 'none'}): "
             f"the dataset is empty. The reasons, with the rejected text, are in {result.dataset_dir / 'report.html'}; a bigger model "
             "(LLM_API_BASE, LLM_MODEL) or more chunks (--max-chunks) gives accepted ones.")
        return 1
    return 0


def cmd_compile(args) -> int:
    from socratic_sdg.pipelines import compile_all
    from socratic_sdg.pipelines.socratic_sdg_pipeline import compile_pipeline

    if args.output:
        _say(f"pipeline compiled to {compile_pipeline(args.output)}")
        return 0
    for path in compile_all():
        _say(f"compiled {path}")
    return 0


def cmd_submit(args) -> int:
    from .deploy import submit

    options = from_args(submit.SubmitOptions, args)
    result = submit.submit(options, progress=_say)
    if result.run_id:
        _say(f"run: {result.run_url}")
    return 0


def cmd_serve_local(args) -> int:
    from . import local_llm

    local_llm.check_port(args.port)
    _say(f"serving {local_llm.find_model(args.model)} as model {local_llm.MODEL_NAME!r} at http://127.0.0.1:{args.port}/v1 (Ctrl-C stops)")
    local_llm.main(["--port", str(args.port)] + (["--model", args.model] if args.model else []))
    return 0


def _add_generation_arguments(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """The arguments of a generation run, shared by generate and estimate (which predicts one)."""
    from .generate import GenerateOptions

    p.add_argument("--api-base", help="endpoint base URL (default: $LLM_API_BASE)")
    p.add_argument("--model", help="model name on the endpoint (default: $LLM_MODEL)")
    add_arguments(p, GenerateOptions, skip=skip)
    from .filtering import FilterOptions

    target = p.add_argument_group("quality filter the acceptance is counted with (as `socratic-sdg filter`)")
    add_arguments(target, FilterOptions, skip=[name for name in parameters(FilterOptions) if name not in TARGET_FILTER_SETTINGS])


def _add_filter_arguments(p: argparse.ArgumentParser, **defaults) -> None:
    """The filter's options, shared by `filter` and `evaluate` (graded_turns last, no dedup: see cmd_evaluate)."""
    from .filtering import FilterOptions

    skip = [name for name in parameters(FilterOptions) if name.startswith("dedup")] if defaults.get("dedup") is False else []
    add_arguments(p, FilterOptions, skip=skip, defaults=defaults)
    p.set_defaults(**defaults)  # the skipped ones too


def _convert_command(sub) -> None:
    p = _add(sub, "convert", "Convert PDFs (and .md/.html/.docx) to Markdown + DoclingDocument JSON with docling.", """
        socratic-sdg convert --input samples/pdfs --output-dir work/converted
        socratic-sdg convert --input /data/pdfs --output-dir work/converted --pipeline standard --ocr --formulas
        socratic-sdg convert --input /data/pdfs --output-dir work/shard-0 --shard-index 0 --num-shards 4""")
    p.add_argument("--input", required=True, help="folder with the documents (searched recursively)")
    p.add_argument("--output-dir", required=True, help="where <name>.md, <name>.json, documents.jsonl, failures.jsonl and convert_metrics.json go")
    from .convert import ConvertOptions

    add_arguments(p, ConvertOptions)
    p.set_defaults(func=cmd_convert)


def _chunk_command(sub) -> None:
    p = _add(sub, "chunk", "Cut converted documents into chunks (chunks.jsonl).", """
        socratic-sdg chunk --input work/converted --output work/chunks.jsonl
        socratic-sdg chunk --input work/converted --output work/chunks.jsonl --method hybrid --max-tokens 800""")
    p.add_argument("--input", required=True, help="the convert stage's output folder")
    p.add_argument("--output", required=True, help="chunks.jsonl to write (chunks_dropped.jsonl and chunk_metrics.json go beside it)")
    from .chunk import ChunkOptions

    add_arguments(p.add_argument_group("chunk options"), ChunkOptions)
    p.set_defaults(func=cmd_chunk)


def _generate_command(sub) -> None:
    p = _add(sub, "generate", "Generate Socratic conversations from chunks with an sdg_hub flow.", """
        export LLM_API_BASE=http://localhost:8000/v1 LLM_MODEL=my-model LLM_API_KEY=...
        socratic-sdg generate --input work/chunks.jsonl --output-dir work/generated --max-chunks 10
        socratic-sdg generate --input work/chunks.jsonl --output-dir work/generated --flow-yaml my_flow/flow.yaml
        socratic-sdg generate --input work/chunks.jsonl --output-dir work/generated --flow-id socratic-multi-turn \\
            --conversations-per-chunk 4 --checkpoint-dir work/checkpoint     # rerun the same command to resume""")
    p.add_argument("--input", required=True, help=f"{artifacts.CHUNKS_FILE} from socratic-sdg chunk")
    p.add_argument("--output-dir", required=True, help="where conversations.jsonl, failed.jsonl and generate_metrics.json go")
    _add_generation_arguments(p)
    p.set_defaults(func=cmd_generate)


def _estimate_command(sub) -> None:
    p = _add(sub, "estimate", "Estimate requests, tokens and time for a target number of accepted examples.", """
        socratic-sdg estimate --input work/chunks.jsonl --target-examples 1000            # probes the endpoint with 8 rows
        socratic-sdg estimate --input work/chunks.jsonl --target-examples 1000 --probe-rows 0   # no network: counts and assumptions
        socratic-sdg estimate --input work/chunks.jsonl --target-examples 5000 --max-concurrency 64 --output-dir work/estimate""")
    p.add_argument("--input", required=True, help=f"{artifacts.CHUNKS_FILE} from socratic-sdg chunk")
    p.add_argument("--output-dir", help="write estimate.json and the probe's files here")
    from .generate.estimate import EstimateOptions

    add_arguments(p, EstimateOptions)
    _add_generation_arguments(p, skip=_NOT_ESTIMATE_SETTINGS)
    p.set_defaults(func=cmd_estimate)


def _preview_command(sub) -> None:
    p = _add(sub, "preview", "Generate and filter a few conversations and show them, with the filter's reasons, before a run.", """
        socratic-sdg preview --input work/chunks.jsonl                      # 3 conversations; the embedded model without LLM_API_BASE
        socratic-sdg preview --input work/chunks.jsonl --rows 5 --flow-id socratic-multi-turn""")
    p.add_argument("--input", required=True, help=f"{artifacts.CHUNKS_FILE} from socratic-sdg chunk")
    p.add_argument("--rows", type=int, default=3, help="conversations to generate, from chunks spread over the file (default 3)")
    p.add_argument("--local-model", help="GGUF for the embedded server when LLM_API_BASE is unset")
    _add_generation_arguments(p, skip=_NOT_ESTIMATE_SETTINGS + ("max_chunks", "conversations_per_chunk"))
    p.set_defaults(func=cmd_preview)


def cmd_preview(args) -> int:
    from .endpoint import EndpointConfig
    from .preview import preview

    endpoint = EndpointConfig.from_env(api_base=args.api_base, model=args.model) if (args.api_base or os.environ.get("LLM_API_BASE")) else None
    options = _generate_options(args, skip=_NOT_ESTIMATE_SETTINGS)
    _summary(preview(args.input, args.rows, options, options.target_filter, endpoint=endpoint, progress=_say, model_path=args.local_model))
    return 0


def _flows_command(sub) -> None:
    p = _add(sub, "flows", "List the sdg_hub flows (this package's and sdg_hub's registry) or show one.", """
        socratic-sdg flows
        socratic-sdg flows --tag socratic-tutoring
        socratic-sdg flows show socratic-multi-turn""")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("flow_id", nargs="?", help="with show: the flow id")
    p.add_argument("--tag", help="only flows with this tag")
    p.set_defaults(func=cmd_flows)


def _filter_command(sub) -> None:
    p = _add(sub, "filter", "Keep conversations where the tutor guides and never gives the answer away.", """
        socratic-sdg filter --input work/generated/conversations.jsonl --output-dir work/filtered
        socratic-sdg filter --input dialogues.jsonl --output-dir work/filtered --rules my_rules.yaml
        socratic-sdg filter --input work/generated/conversations.jsonl --output-dir work/filtered --chunks work/chunks.jsonl --judge""")
    p.add_argument("--input", required=True, help="JSONL with one {messages, metadata} record per line")
    p.add_argument("--output-dir", required=True, help="where accepted.jsonl, rejected.jsonl and filter_metrics.json go")
    _add_filter_arguments(p)
    p.set_defaults(func=cmd_filter)


def _evaluate_command(sub) -> None:
    p = _add(sub, "evaluate", "Measure the filter (and the judge) against human-labelled tutor replies.", """
        socratic-sdg evaluate --input samples/tutor-eval/mrbench-dev.json --output-dir output/evaluate
        socratic-sdg evaluate --input my_labelled.jsonl --output-dir output/evaluate --no-leakage
        LLM_API_BASE=http://my-vllm:8000/v1 socratic-sdg evaluate --input samples/tutor-eval/mrbench-dev.json --output-dir output/evaluate --judge""")
    p.add_argument("--input", required=True,
                   help="labelled replies: MRBench JSON, or JSONL of {messages, metadata, labels, tutor} (see docs/evaluate.md)")
    p.add_argument("--output-dir", required=True, help="where evaluation.json and evaluation.md go")
    p.add_argument("--examples", type=int, default=20, help="misjudged replies listed per kind in evaluation.json (default 20)")
    p.add_argument("--sample", type=int, default=0,
                   help="evaluate N replies spread over the set (a quick judge check; default 0 = all)")
    # Many replies answer one dialogue by design: dedup would keep only the first of each.
    _add_filter_arguments(p, graded_turns="last", dedup=False)
    p.set_defaults(func=cmd_evaluate)


def _export_command(sub) -> None:
    p = _add(sub, "export", "Write train.jsonl and validation.jsonl (chat messages format).", """
        socratic-sdg export --input work/filtered/accepted.jsonl --output-dir work/dataset
        socratic-sdg export --input work/filtered/accepted.jsonl --output-dir work/dataset --validation-ratio 0.2 --seed 7""")
    p.add_argument("--input", required=True, help="accepted.jsonl from the filter stage (its folder's filter_metrics.json goes into the report)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--converted", help="the convert stage's folder, for the report's document counts")
    p.add_argument("--chunks", help="chunks.jsonl (or its folder), for the report's chunk counts")
    p.add_argument("--conversations", help="the generate stage's folder, for the report's generation counts")
    p.add_argument("--license", default="other", help="licence id written in the dataset card (the source documents' licence; default other)")
    from .export import ExportOptions

    add_arguments(p.add_argument_group("export options"), ExportOptions)
    p.set_defaults(func=cmd_export)


def _validate_command(sub) -> None:
    p = _add(sub, "validate", "Check every row of a dataset folder the way the fine-tuning loader reads it.", """
        socratic-sdg validate output/latest
        socratic-sdg validate /data/datasets/run-1 --max-problems 100""")
    p.add_argument("dataset", help="folder with train.jsonl and validation.jsonl")
    p.add_argument("--max-problems", type=int, default=20, help="print at most this many problems (default 20)")
    p.set_defaults(func=cmd_validate)


def _run_command(sub) -> None:
    p = _add(sub, "run", "Run the whole pipeline locally with the KFP local runner.", """
        socratic-sdg run --input samples/pdfs --max-chunks 8
        LLM_API_BASE=http://localhost:8000/v1 LLM_MODEL=my-model socratic-sdg run --input ~/pdfs
        socratic-sdg run --input samples/pdfs --param generate_conversations_per_chunk=2""")
    p.add_argument("--input", default="samples/pdfs", help="folder with the PDFs (default: samples/pdfs)")
    p.add_argument("--output-dir", default="output", help="where runs go; OUTPUT/latest points at the last dataset (default: output)")
    p.add_argument("--max-chunks", type=int, help="generate from the first N chunks only (pipeline: generate_max_chunks)")
    p.add_argument("--max-concurrency", type=int, help="requests in flight (pipeline: generate_max_concurrency)")
    p.add_argument("--flow-id", help="pipeline: generate_flow_id")
    p.add_argument("--model", help="pipeline: generate_model (default: $LLM_MODEL)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any pipeline parameter, by short or dashboard name (repeatable; docs/parameters.md)")
    p.add_argument("--local-model", help="GGUF for the embedded server when LLM_API_BASE is unset")
    p.set_defaults(func=cmd_run)


def _compile_command(sub) -> None:
    p = _add(sub, "compile", "Compile the pipelines and component specs to KFP IR YAML (import them in the OpenShift AI dashboard).", """
        socratic-sdg compile          # pipelines/*.yaml and components/specs/*.yaml, as committed
        SOCRATIC_SDG_IMAGE=quay.io/me/socratic-sdg@sha256:... socratic-sdg compile --output my-pipeline.yaml""")
    p.add_argument("--output", help="compile only the SDG pipeline, to this file")
    p.set_defaults(func=cmd_compile)


def _submit_command(sub) -> None:
    p = _add(sub, "submit", "Upload the compiled pipeline to a pipeline server (OpenShift AI or Kubeflow Pipelines) and start a run.", """
        oc login --token=... --server=https://api.CLUSTER:6443 && oc project my-project
        socratic-sdg submit --dry-run --param generate_max_chunks=20          # check login, server, parameters; change nothing
        socratic-sdg submit --param generate_max_chunks=20                    # the pipeline server of the current project
        socratic-sdg submit --params-file run.yaml --isvc granite             # + point the llm-endpoint Secret at an InferenceService
        socratic-sdg submit --compile --param convert_pipeline=native         # compile now (SOCRATIC_SDG_IMAGE=... to use your image)
        kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80 &          # standalone KFP (kind): no login needed
        socratic-sdg submit --host http://localhost:8080 --param generate_max_chunks=8""")
    from .deploy.submit import SubmitOptions

    add_arguments(p, SubmitOptions)
    p.set_defaults(func=cmd_submit)


def _serve_local_command(sub) -> None:
    p = _add(sub, "serve-local", "Serve the small local model with an OpenAI-compatible API (llama.cpp).", """
        socratic-sdg serve-local --port 8000
        # then: LLM_API_BASE=http://127.0.0.1:8000/v1 LLM_MODEL=smollm2 socratic-sdg generate ...""")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", help="GGUF file (default: $SOCRATIC_SDG_LOCAL_MODEL or .cache/models)")
    p.set_defaults(func=cmd_serve_local)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="socratic-sdg",
        description="Turn course PDFs into a Socratic math tutor fine-tuning dataset (docling -> sdg_hub -> quality filter -> JSONL).",
        epilog=(
            "The model endpoint comes from LLM_API_BASE, LLM_API_KEY and LLM_MODEL.\nRun `socratic-sdg COMMAND --help` for the options and examples of "
            "each command."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # in the order `--help` lists them: the stages, then the tools
    for add_command in (_convert_command, _chunk_command, _generate_command, _estimate_command, _preview_command, _flows_command, _filter_command,
                        _evaluate_command, _export_command, _validate_command, _run_command, _compile_command, _submit_command, _serve_local_command):
        add_command(sub)
    return parser

def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # one line per HTTP request drowns the progress lines
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"socratic-sdg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine, not the code: a full disk, a read-only folder, a path that is a file
        print(f"socratic-sdg {args.command}: error: {os_error_sentence(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
