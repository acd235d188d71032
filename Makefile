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

.PHONY: install install-dev demo test lint bench clean services

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
	$(VENV)/bin/ruff check src tests benchmarks
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
test: lint services
	$(VENV)/bin/pytest -q -n 2 --dist loadfile

bench: install-dev services
	$(VENV)/bin/python -m benchmarks

clean:
	rm -rf .tools $(VENV) demo-study .pytest_cache .mypy_cache .ruff_cache
