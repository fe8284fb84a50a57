# The two commands of the README (`make demo`, `make test`) and the developer ones.
# Every target brings .venv up to date first, so a fresh clone needs only Python 3.11+ and make.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench chaos fuzz venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/whistleloop up --simulate $(if $(DEMO_SECONDS),--duration $(DEMO_SECONDS),)

test: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/whistleloop bench $(BENCH_ARGS)

# The long chaos run of docs/RELIABILITY.md (make test runs two six-fault ones): every fault, on
# PostgreSQL and a 3-node NATS cluster. CHAOS_ARGS= (empty) for SQLite and one nats-server.
CHAOS_PG   ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
CHAOS_ARGS ?= --cluster --postgres $(CHAOS_PG)
chaos: $(STAMP)
	$(BIN)/whistleloop chaos --kills 50 --seconds 900 $(CHAOS_ARGS)

# Schemathesis with many examples per operation (make test runs 25 each).
FUZZ_EXAMPLES ?= 1000
fuzz: $(STAMP)
	WL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/integration/gateway/test_openapi_fuzz.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis
