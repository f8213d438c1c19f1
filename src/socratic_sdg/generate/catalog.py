"""The flows the generation stage can run: this package's Socratic flows and sdg_hub's registry.

This package's flows live in ``flows/<name>/flow.yaml`` (+ ``prompts/*.yaml``), each with an explicit
``metadata.id``. :func:`register_package_flows` adds them to sdg_hub's ``FlowRegistry``, so
``FlowRegistry.search_flows(tag=...)`` finds them beside the built-in flows, and the CLI's
``socratic-sdg flows [--tag T]`` / ``flows show ID`` print :func:`list_flows` / :func:`show_flow`.

A flow folder may also hold ``diversity.yaml``: axes sampled per row with a seed (student level,
tone, misconception, request type...), each becoming input columns the prompts use
(:func:`load_diversity`). Flows that need in-context examples (``icl_document``, ``icl_query_1``...)
get the bundled math example (``flows/_shared/icl_examples.yaml``) unless values are given.

Who may supply a flow. A flow YAML (``--flow-yaml``, the pipeline's ``generate_flow_yaml_path``, e.g. a
ConfigMap) is configuration with the reach of code: it decides what the task sends to the endpoint
(the course material and its prompts), which files in the task it reads as prompts, and which sdg_hub
blocks run, some of which call URLs of their own (agent and MCP blocks) or run code (sdg_hub's Python
interpreter block). :func:`load_flow` renders every prompt template in Jinja's
``SandboxedEnvironment`` (sdg_hub compiles them with a plain ``jinja2.Template``, which would let a
prompt reach Python internals and run commands in the task, where the LLM API key is in the
environment), refuses prompts that name ``_``-prefixed attributes, and checks each prompt's variables
against the columns its block passes, before any request. That closes template code execution, not
the rest: let only people who may already run workloads in the project (edit the pipeline, write
the PVC) supply flows, and keep write access to a flow's ConfigMap as narrow as to the pipeline.
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import Any

from ..endpoint import redact
from .errors import GenerateError

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm fetches a cost map at import otherwise

PACKAGE_SOURCE = "socratic-sdg"
SDG_HUB_SOURCE = "sdg_hub"
DIVERSITY_FILE = "diversity.yaml"


def package_flows_dir() -> Path:
    return Path(str(resources.files("socratic_sdg.generate") / "flows"))


def _yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def package_flows() -> dict[str, Path]:
    """This package's flows by their metadata id."""
    flows = {}
    for flow_yaml in sorted(package_flows_dir().glob("*/flow.yaml")):
        flows[_yaml(flow_yaml)["metadata"]["id"]] = flow_yaml
    return flows


_registered = False


def register_package_flows() -> None:
    """Add this package's flows to sdg_hub's FlowRegistry (idempotent)."""
    global _registered
    if _registered:
        return
    from sdg_hub import FlowRegistry

    path = str(package_flows_dir())
    already_discovered = bool(getattr(FlowRegistry, "_entries", None))
    FlowRegistry.register_search_path(path)
    if already_discovered and hasattr(FlowRegistry, "_discover_flows"):
        FlowRegistry._discover_flows(force_refresh=True)  # the registry only scans search paths once
    _registered = True


def resolve_flow(flow_id: str | None = None, flow_yaml_path: str | None = None) -> Path:
    """The flow YAML to run: a path (wins), this package's flow by id, or sdg_hub's registry by id or name."""
    if flow_yaml_path:
        path = Path(flow_yaml_path)
        if not path.is_file():
            raise GenerateError(f"flow YAML {path} not found; check --flow-yaml (or generate_flow_yaml_path)")
        return path
    ours = package_flows()
    if flow_id in ours:
        return ours[flow_id]
    register_package_flows()
    from sdg_hub import FlowRegistry

    found = FlowRegistry.get_flow_path(flow_id) if flow_id else None
    if not found:
        raise GenerateError(
            f"no flow with id {flow_id!r}; this package ships {', '.join(ours)}, "
            "and `socratic-sdg flows` lists sdg_hub's built-in ones"
        )
    return Path(found)


def loadable_flow_path(path: Path) -> Path:
    """The YAML to hand to ``Flow.from_yaml``: ``path`` itself when it has a ``metadata.id``.

    Without one, sdg_hub derives the id from the name and rewrites the user's file to add it
    (comments lost; a read-only ConfigMap mount fails). Instead, a copy with that same id and
    absolute file references is written to a temporary folder and loaded from there.
    """
    import tempfile

    import yaml

    config = _yaml(path)
    metadata = (config or {}).get("metadata") if isinstance(config, dict) else None
    if not isinstance(metadata, dict) or metadata.get("id") or not metadata.get("name"):
        return path  # has an id (or is invalid: let sdg_hub report it)
    from sdg_hub.core.utils.flow_identifier import get_flow_identifier

    metadata["id"] = get_flow_identifier(metadata["name"])
    for block in config.get("blocks") or []:
        block_config = block.get("block_config") if isinstance(block, dict) else None
        for key, value in (block_config or {}).items():
            if key.endswith("_path") and isinstance(value, str) and not os.path.isabs(value) and (path.parent / value).exists():
                block_config[key] = str((path.parent / value).resolve())
    folder = Path(tempfile.mkdtemp(prefix="socratic-sdg-flow-"))
    copy = folder / path.name
    copy.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return copy


def load_flow(path: Path):
    """sdg_hub's ``Flow`` from a flow YAML, its prompts rendered in Jinja's sandbox and checked
    (:func:`secure_prompts`): what the generation stage and the estimate run."""
    from sdg_hub import Flow

    path = Path(path)
    try:
        flow = Flow.from_yaml(str(loadable_flow_path(path)))
    except Exception as exc:
        raise GenerateError(f"cannot load the flow {path}: {' '.join(redact(exc).split())[:400]}") from None
    secure_prompts(flow, path)
    return flow


_SANDBOX = None


def _sandbox():
    """One Jinja sandbox for every flow prompt, with jinja2.Template's defaults (same rendering)."""
    global _SANDBOX
    if _SANDBOX is None:
        from jinja2.sandbox import SandboxedEnvironment

        _SANDBOX = SandboxedEnvironment()
    return _SANDBOX


def _template_names(input_cols: Any) -> list[str]:
    """The names a PromptBuilderBlock's templates see: its input columns, or the values of a column mapping."""
    if isinstance(input_cols, dict):
        return [str(v) for v in input_cols.values()]
    if isinstance(input_cols, str):
        return [input_cols]
    return [str(c) for c in input_cols or []]


def _private_names(ast) -> list[str]:
    """Attributes or keys starting with ``_`` that a template reads (``x.__class__``, ``x['_y']``)."""
    from jinja2 import nodes

    found = []
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name.startswith("_") and name not in found:
            found.append(name)
    return found


def secure_prompts(flow, flow_path: Path) -> None:
    """Render the flow's prompt templates in Jinja's sandbox, and check them before any request.

    sdg_hub's PromptBuilderBlock compiles each prompt message with ``jinja2.Template`` (compiling runs
    no template expression; rendering does). Each compiled template is replaced by the same source
    compiled in a ``SandboxedEnvironment``: the renderer sdg_hub calls then runs in the sandbox. The
    checks, each a :class:`GenerateError` naming the flow, the prompt file and the fix:

    * a template that reads an attribute or key starting with ``_`` (the way out of a template);
    * a template variable the block does not pass (a typo such as ``{{studnet_message}}``, which
      sdg_hub would refuse on every row, after the requests of the blocks before it).
    """
    import difflib

    from jinja2 import meta

    flow_id = getattr(flow.metadata, "id", None) or getattr(flow.metadata, "name", "") or str(flow_path)
    for block in flow.blocks:
        config = getattr(block, "prompt_template_config", None)
        templates = getattr(config, "message_templates", None)
        if not templates:
            continue
        prompt_path = Path(str(getattr(block, "prompt_config_path", "") or ""))
        try:
            prompt = prompt_path.resolve().relative_to(Path(flow_path).parent.resolve())
        except ValueError:
            prompt = prompt_path
        names = _template_names(block.input_cols)
        environment = _sandbox()
        for template in templates:
            source = template.original_source
            try:
                ast = environment.parse(source)
            except Exception as exc:  # sdg_hub compiled it, so this is unexpected: say where
                raise GenerateError(f"the flow {flow_id!r} prompt {prompt} does not parse as a Jinja template ({' '.join(str(exc).split())[:200]}); fix "
                                    "it") from None
            private = _private_names(ast)
            if private:
                raise GenerateError(
                    f"the flow {flow_id!r} prompt {prompt} (block {block.block_name!r}) reads {', '.join(private)}: "
                    "flow prompts render in a sandbox that refuses names starting with '_'; use only the block's columns "
                    f"({', '.join(names) or 'none'})"
                )
            unknown = sorted(meta.find_undeclared_variables(ast) - set(names))
            if unknown:
                hints = [difflib.get_close_matches(u, names, n=1) for u in unknown]
                hint = "; ".join(f"did you mean {h[0]!r} for {u!r}" for u, h in zip(unknown, hints) if h)
                raise GenerateError(
                    f"the flow {flow_id!r} prompt {prompt} (block {block.block_name!r}) uses the variable(s) "
                    f"{', '.join(unknown)}, which the block does not pass (its columns: {', '.join(names) or 'none'})"
                    + (f"; {hint}" if hint else "")
                    + "; fix the variable in the prompt or add the column to the block's input_cols"
                )
            template.content_template = environment.from_string(source)


def _source(path: Path) -> str:
    try:
        path.resolve().relative_to(package_flows_dir().resolve())
        return PACKAGE_SOURCE
    except ValueError:
        return SDG_HUB_SOURCE


def _summary(metadata: Any, path: Path) -> dict:
    requirements = metadata.dataset_requirements
    return {
        "id": metadata.id,
        "name": metadata.name,
        "tags": list(metadata.tags or []),
        "required_columns": list(getattr(requirements, "required_columns", None) or []),
        "source": _source(path),
        "path": str(path),
        "description": " ".join((metadata.description or "").split()),
    }


def list_flows(tag: str | None = None) -> list[dict]:
    """Every flow sdg_hub's registry knows (this package's included), optionally with a tag.

    Each: ``{id, name, tags, required_columns, source, path, description}``; this package's flows
    first, then by name.
    """
    register_package_flows()
    from sdg_hub import FlowRegistry

    flows = []
    for found in FlowRegistry.search_flows(tag=tag):
        metadata = FlowRegistry.get_flow_metadata(found["name"])
        path = FlowRegistry.get_flow_path(found["id"])
        if metadata is None or path is None:
            continue
        flows.append(_summary(metadata, Path(path)))
    flows.sort(key=lambda f: (f["source"] != PACKAGE_SOURCE, f["name"].lower()))
    return flows


def show_flow(flow_id: str) -> dict:
    """One flow in detail (``flow_id`` may also be a path to a flow YAML)."""
    path = Path(flow_id) if flow_id.endswith((".yaml", ".yml")) and Path(flow_id).is_file() else resolve_flow(flow_id)
    from sdg_hub.core.flow.metadata import FlowMetadata

    config = _yaml(path)
    metadata = FlowMetadata(**config["metadata"])
    info = _summary(metadata, path)
    blocks = []
    for block in config.get("blocks", []):
        block_config = block.get("block_config", {})
        blocks.append({"name": block_config.get("block_name", ""), "type": block.get("block_type", "")})
    info.update(
        version=metadata.version,
        author=metadata.author,
        license=metadata.license,
        output_columns=list(metadata.output_columns or []),
        recommended_models=metadata.recommended_models.model_dump() if metadata.recommended_models else None,
        blocks=blocks,
        llm_requests_per_row=sum(1 for b in blocks if b["type"] == "LLMChatBlock"),
        diversity={axis: len(options) for axis, options in (load_diversity(path) or {}).items()},
    )
    return info


def format_flows(flows: list[dict]) -> str:
    """A plain-text table of :func:`list_flows` for the CLI."""
    if not flows:
        return "no flows found"
    rows = [("ID", "NAME", "TAGS", "REQUIRED COLUMNS")]
    rows += [(f["id"], f["name"], ", ".join(f["tags"]), ", ".join(f["required_columns"])) for f in flows]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)).rstrip() for row in rows)


def format_flow(info: dict) -> str:
    """A plain-text description of :func:`show_flow` for the CLI."""
    lines = [
        f"id:               {info['id']}",
        f"name:             {info['name']}",
        f"version:          {info.get('version', '')}",
        f"source:           {info['source']} ({info['path']})",
        f"tags:             {', '.join(info['tags'])}",
        f"required columns: {', '.join(info['required_columns'])}",
        f"output columns:   {', '.join(info.get('output_columns', []))}",
        f"LLM requests/row: {info.get('llm_requests_per_row', '?')}",
    ]
    if info.get("diversity"):
        lines.append("diversity axes:   " + ", ".join(f"{axis} ({count} options)" for axis, count in info["diversity"].items()))
    lines.append(f"description:      {info['description']}")
    lines.append("blocks:")
    lines += [f"  {b['name']} ({b['type']})" for b in info.get("blocks", [])]
    return "\n".join(lines)


def load_diversity(flow_path: Path) -> dict[str, list] | None:
    """The diversity axes shipped beside a flow (``diversity.yaml``), or None.

    Format: ``axes: {axis: [option, ...]}``; an option is a string (the column ``axis`` gets it) or
    a mapping (each key becomes a column).
    """
    path = _diversity_path(flow_path)
    if path is None:
        return None
    data = _yaml(path) or {}
    axes = data.get("axes") if isinstance(data, dict) else None
    if not isinstance(axes, dict) or not all(isinstance(v, list) and v for v in axes.values()):
        raise GenerateError(f"{path}: expected `axes:` mapping each axis to a non-empty list of options")
    return axes


def _diversity_path(flow_path: Path) -> Path | None:
    """The file holding a flow's diversity axes, following one ``include: RELATIVE_PATH``."""
    path = Path(flow_path).parent / DIVERSITY_FILE
    if not path.is_file():
        return None
    data = _yaml(path) or {}
    if isinstance(data, dict) and "include" in data:
        included = (path.parent / str(data["include"])).resolve()
        if not included.is_file():
            raise GenerateError(f"{path}: included file {data['include']} not found")
        return included
    return path


def icl_defaults() -> dict[str, str]:
    """The bundled in-context example (a math passage with questions and answers) for flows that need one."""
    data = _yaml(package_flows_dir() / "_shared" / "icl_examples.yaml")
    return {k: str(v).strip() for k, v in data["columns"].items()}


def flow_fingerprint(flow_path: Path) -> str:
    """A hash of the flow YAML and the files it uses (prompts, diversity axes): what a checkpoint was made with."""
    flow_path = Path(flow_path)
    config = _yaml(flow_path)
    digest = hashlib.sha256(flow_path.read_bytes())
    files = set()
    for block in config.get("blocks", []):
        prompt = (block.get("block_config") or {}).get("prompt_config_path")
        if prompt:
            files.add(prompt)
    for name in sorted(files):
        path = flow_path.parent / name
        digest.update(b"\x00" + name.encode() + b"\x00")
        if path.is_file():
            digest.update(path.read_bytes())
    diversity = _diversity_path(flow_path)
    if diversity is not None:
        digest.update(b"\x00diversity\x00" + diversity.read_bytes())
    return digest.hexdigest()[:16]
