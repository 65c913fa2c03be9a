# s3stow developer commands. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo bench mutate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,postgres,local]'
	touch $(STAMP)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -n 2

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# Mutation testing of the promise-carrying modules (scripts/mutate.py; not part of
# `make test`). Incremental: at most MUTATE_MINUTES per call, results kept in mutants/.
# Each call runs MUTATE_SAMPLE more mutants per module, drawn at random (MUTATE_SEED):
# a random sample whose score estimates the module's; MUTATE_SAMPLE= (empty) runs the
# mutants not run yet in mutmut's order (fastest first) instead. MUTATE_SAMPLE_TO=M
# (instead) completes each module's sample to the first M of its random order.
MUTMUT ?= mutmut==3.8.1
MUTATE_MINUTES ?= 30
MUTATE_SAMPLE ?= 2
MUTATE_SAMPLE_TO ?=
MUTATE_SEED ?= 28
mutate: $(STAMP)
	$(BIN)/python -m pip install -q '$(MUTMUT)'
	$(BIN)/python scripts/mutate.py --minutes $(MUTATE_MINUTES) --seed $(MUTATE_SEED) \
		$(if $(MUTATE_SAMPLE_TO),--sample-to $(MUTATE_SAMPLE_TO),$(if $(MUTATE_SAMPLE),--sample $(MUTATE_SAMPLE)))

# Both servers, SeaweedFS then moto (bench/README.md); SERVER=seaweedfs for one of them.
SERVER ?= all
bench: $(STAMP)
	bash bench/setup.sh
	$(BIN)/python bench/upload_bench.py --server $(SERVER)

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache mutants
