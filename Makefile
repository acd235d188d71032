# wearflow: `make demo` installs and runs the demo study; `make test` installs and runs the tests.
PY ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION = 0.13.9
UV = .tools/bin/uv
VENV = .venv
export UV_PYTHON = $(PY)
export UV_PYTHON_DOWNLOADS = never
# Compiled bytecode: every worker process imports scikit-digital-health (7-10 s of CPU
# without it, ~2.5 s with it)
export UV_COMPILE_BYTECODE = 1

.PHONY: install install-dev demo test lint bench clean services image image-base iac-tools iac-lock \
        deploy deploy-k8s

$(UV):
	$(PY) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV)
	$(UV) sync --frozen --quiet --all-extras

install-dev: $(UV)
	$(UV) sync --frozen --quiet --all-extras --group dev

demo: install
	$(VENV)/bin/wearflow demo demo-study/

lint: install-dev
	$(VENV)/bin/ruff check src tests benchmarks deploy
	$(VENV)/bin/mypy --strict deploy/deploy.py deploy/fetch_uv.py
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The tests start their own throwaway PostgreSQL cluster (initdb + pg_ctl into a temporary
# folder, tests/conftest.py) from Debian's server binaries, and a headless Chromium
# (Debian's package, driven by Playwright) for the report pages; install them if missing.
services:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  { echo "installing Debian's postgresql server binaries for the tests"; \
	    apt-get install -y -q postgresql >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }; }
	@command -v chromium >/dev/null || \
	  { echo "installing Debian's chromium for the report tests"; \
	    apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }

# Two test processes (pytest-xdist), one test file each at a time: the suite is mostly
# CPU-bound processing and the machines it runs on have two cores or more.
test: lint services iac-tools
	$(VENV)/bin/pytest -q -n 2 --dist loadfile

# --- The image (deploy/Containerfile); not part of `make test` -----------------------------
# make image                       build wearflow:$(VERSION) with podman (CONTAINER=docker works)
# make image BASE=localhost/...    on another base (digest-pinned default in the Containerfile)
# make image-base                  where no registry is reachable: a bookworm + python3.11
#                                  base from Debian's packages (debootstrap), then
#                                  make image BASE=localhost/wearflow-base:bookworm
# CA_BUNDLE=/path/ca.crt           a CA bundle for a TLS-intercepting proxy, as a build secret
# IMAGE_BUILD_FLAGS=...            extra flags (this sandbox: --runtime runc --ulimit ...)
CONTAINER ?= podman
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
GIT_COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE ?= wearflow:$(VERSION)
BASE ?=
CA_BUNDLE ?=
IMAGE_BUILD_FLAGS ?=
comma := ,

image:
	$(CONTAINER) build -f deploy/Containerfile -t $(IMAGE) \
	  $(if $(BASE),--build-arg BASE=$(BASE)) \
	  $(if $(CA_BUNDLE),--secret id=ca$(comma)src=$(CA_BUNDLE)) \
	  --build-arg VERSION=$(VERSION) --build-arg GIT_COMMIT=$(GIT_COMMIT) \
	  --build-arg CREATED=$$(git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z) \
	  $(IMAGE_BUILD_FLAGS) .

BASE_ROOTFS = $(CURDIR)/.cache/base-rootfs

image-base:
	command -v debootstrap >/dev/null || apt-get install -y -q debootstrap
	rm -rf $(BASE_ROOTFS) && mkdir -p $(BASE_ROOTFS)
	debootstrap --variant=minbase --include=python3.11,ca-certificates \
	  bookworm $(BASE_ROOTFS) http://deb.debian.org/debian
	rm -rf $(BASE_ROOTFS)/var/cache/apt/archives/*.deb $(BASE_ROOTFS)/var/lib/apt/lists/*
	tar -C $(BASE_ROOTFS) -c . | $(CONTAINER) import --change 'CMD ["/bin/bash"]' - \
	  localhost/wearflow-base:bookworm
	rm -rf $(BASE_ROOTFS)

# --- Infrastructure as code: linters in their own venv, one command per environment ------
# checkov pins many packages of its own: its venv (.venv-iac) stays out of uv.lock, from
# deploy/requirements-iac.txt (hashes; regenerate with `make iac-lock`).
IAC_VENV = .venv-iac
ENV ?= stage

iac-tools: $(IAC_VENV)/.synced

$(IAC_VENV)/.synced: deploy/requirements-iac.txt | $(UV)
	test -x $(IAC_VENV)/bin/python || $(UV) venv --quiet $(IAC_VENV)
	$(UV) pip sync --quiet --python $(IAC_VENV)/bin/python --require-hashes deploy/requirements-iac.txt
	touch $@

iac-lock: $(UV)
	$(UV) pip compile --quiet --python-version 3.11 --generate-hashes \
	  deploy/requirements-iac.in -o deploy/requirements-iac.txt

# make deploy ENV=stage IMAGE=<registry>/wearflow@sha256:...   (DRY_RUN=1: print the command)
deploy:
	$(PY) deploy/deploy.py aws $(ENV) --image '$(IMAGE)' $(if $(DRY_RUN),--dry-run)

# make deploy-k8s ENV=stage                                      (DRY_RUN=1: print the command)
deploy-k8s:
	$(PY) deploy/deploy.py k8s $(ENV) $(if $(DRY_RUN),--dry-run)

bench: install-dev services
	$(VENV)/bin/python -m benchmarks

clean:
	rm -rf .tools $(VENV) $(IAC_VENV) demo-study .pytest_cache .mypy_cache .ruff_cache
