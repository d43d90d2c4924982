# Named targets for everything a developer or CI runs. `make test` is the
# README's test command; .ci/run calls it on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install etcd promtool proto check-proto lint typecheck check test test-fast test-explore test-fault demo bench clean

$(STAMP): pyproject.toml
	@# Debian ships venv separately (python3-venv); install it only when missing.
	$(PY) -m venv $(VENV) || { rm -rf $(VENV); apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && $(PY) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) etcd promtool

# Debian's etcd-server when etcd is not on PATH (needs root, as on CI).
etcd:
	@command -v etcd >/dev/null 2>&1 || { \
	  echo "installing Debian's etcd-server"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; }
	@etcd --version | head -1

# Debian's prometheus package brings promtool (alert rule checks and unit tests).
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing Debian's prometheus (for promtool)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }
	@promtool --version 2>&1 | head -1

proto: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

check-proto: $(STAMP)
	$(BIN)/python scripts/gen_protos.py --check

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy coordinator client/failover_sidecar client/failover_client failover examples

check: check-proto lint typecheck

# Hypothesis: `ci` is derandomized (the same examples every run; a failure prints the blob
# that reproduces it); `explore` draws random seeds and more examples, to hunt for new ones.
# The gate: every tier but the fault tier (see test-fault).
test: install
	$(BIN)/pytest -q --hypothesis-profile=ci -m "not fault"

test-fast: install
	$(BIN)/pytest -q -m "not slow" --hypothesis-profile=ci

# Only the property tests matter here; the rest would just run again.
test-explore: install
	$(BIN)/pytest -q --hypothesis-profile=explore tests/unit tests/sidecar tests/security tests/framed

# The fault tier: real processes broken on purpose, invariants checked throughout,
# measured recovery printed. CI runs it after the gate, report-only until a CI run of
# the landed code shows every row green (docs/reliability.md). FAILOVER_FAULT_RESULTS=FILE
# collects the measurements as JSON lines; FAILOVER_FAULT_KEEP=1 keeps every run's logs.
# libfaketime (Debian's package) for the wall-clock row; without it that row is skipped.
FAKETIME_LIB := /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
test-fault: install
	@test -e $(FAKETIME_LIB) || apt-get install -y -qq libfaketime >/dev/null 2>&1 || \
		echo "libfaketime not installed: the wall-clock fault row will be skipped"
	$(BIN)/pytest -q -s -m fault tests/fault

demo: install
	$(BIN)/failover demo

bench: install
	$(BIN)/failover bench --help

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
