"""Put docling's models for the standard PDF pipeline into the conversion image (a build step).

    python docling_models.py TARGET --source FOLDER    TARGET holds what COPY brought from FOLDER
    python docling_models.py --list                     the model folders the standard pipeline needs

1. TARGET holds model folders (copied from a folder in the build context, the build arg
   DOCLING_MODELS_DIR): they are used as they are; if a needed one is missing or empty the build
   stops and names it (no silent mix of local and downloaded models).
2. TARGET holds none (the default folder has only a README): the models are downloaded from
   Hugging Face (or HF_ENDPOINT) with `docling-tools models download layout tableformer code_formula`.
3. Neither works: the build stops with one sentence that says so and what to do.

Files the runtime user (any UID, group 0) could not read get group read access; only those are
touched, so models copied in are not duplicated into another layer.
"""

import argparse
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

# What the conversion component's standard pipeline uses: layout always, tables by default,
# formulas with convert_do_formula_enrichment.
MODELS = ("layout", "tableformer", "code_formula")
# The default (empty) folder in the repository holds these; they are not models.
PLACEHOLDERS = ("README.md", ".gitignore")


class ModelsError(Exception):
    pass


def required_folders() -> dict[str, str]:
    """{model: folder name} as `docling-tools models download -o DIR` writes them and the standard
    pipeline reads them under DOCLING_ARTIFACTS_PATH, from the installed docling."""
    from docling.datamodel.pipeline_options import LayoutObjectDetectionOptions
    from docling.models.stages.code_formula.code_formula_model import CodeFormulaModel
    from docling.models.stages.table_structure.table_structure_model import TableStructureModel

    return {
        "layout": LayoutObjectDetectionOptions().model_spec.repo_id.replace("/", "--"),
        "tableformer": TableStructureModel._model_repo_folder,
        "code_formula": CodeFormulaModel._model_repo_folder,
    }


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


def _missing(target: Path, folders: dict[str, str]) -> list[str]:
    return [name for name in folders.values() if not _has_files(target / name)]


def _download(target: Path) -> None:
    tool = shutil.which("docling-tools")
    if tool is None:
        raise ModelsError("docling-tools is not installed (docling-slim[cli])")
    env = {**os.environ, "HF_HUB_OFFLINE": "0"}
    result = subprocess.run([tool, "models", "download", *MODELS, "-o", str(target)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stdout + "\n" + result.stderr).splitlines() if line.strip()]
        for line in lines[-8:]:  # the end of its log and traceback, for the build log
            print(f"  docling-tools: {line}", file=sys.stderr)
        # The exception line (e.g. `...LocalEntryNotFoundError: Got: ConnectError: ...`), else the last line.
        errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b.*:", line)]
        raise ModelsError((errors or lines or [f"docling-tools exited with {result.returncode}"])[-1])


def _group_readable(target: Path) -> None:
    for path in [target, *target.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        want = stat.S_IRGRP | (stat.S_IXGRP if stat.S_ISDIR(mode) else 0)
        if mode & want != want:
            path.chmod(mode | want)
        if path.lstat().st_gid != 0 and os.geteuid() == 0:
            os.chown(path, -1, 0)


def place(target: Path, source: str) -> str:
    folders = required_folders()
    for name in PLACEHOLDERS:
        (target / name).unlink(missing_ok=True)
    target.mkdir(parents=True, exist_ok=True)
    local = [p for p in target.iterdir() if p.is_dir()]
    if local:
        missing = _missing(target, folders)
        if missing:
            raise ModelsError(
                f"the local models folder {source} (build arg DOCLING_MODELS_DIR) lacks {', '.join(missing)}: "
                f"fill it with `docling-tools models download {' '.join(MODELS)} -o {source}` on a machine that reaches "
                f"Hugging Face, or leave it empty to download at build time"
            )
        how = f"from the local folder {source}"
    else:
        try:
            _download(target)
        except ModelsError as exc:
            raise ModelsError(
                f"no docling models: the local folder {source} (build arg DOCLING_MODELS_DIR) holds none and the download "
                f"from Hugging Face ({os.environ.get('HF_ENDPOINT') or 'https://huggingface.co'}) failed ({exc}); "
                f"put the models in a folder inside the build context (`docling-tools models download {' '.join(MODELS)} -o FOLDER` "
                f"where Hugging Face is reachable) and build with DOCLING_MODELS_DIR=FOLDER, or let the build reach Hugging Face "
                f"(build arg HF_ENDPOINT for a mirror)"
            ) from None
        missing = _missing(target, folders)
        if missing:
            raise ModelsError(f"docling-tools downloaded the models but {', '.join(missing)} is missing from {target}: check the docling version")
        how = "downloaded from Hugging Face"
    _group_readable(target)
    return f"docling models in {target}, {how}: {', '.join(sorted(folders.values()))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", type=Path)
    parser.add_argument("--source", default="DOCLING_MODELS_DIR", help="the build-context folder TARGET was copied from (for messages)")
    parser.add_argument("--list", action="store_true", help="print the model folders the standard pipeline needs")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(required_folders().values()))
        return 0
    if args.target is None:
        parser.error("TARGET is required")
    try:
        print(place(args.target, args.source))
    except ModelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
