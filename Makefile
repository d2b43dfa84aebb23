# The two set-up commands: `make dev` runs everything, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: dev test faults lint typecheck check bench clean

$(BIN)/pacekeeper: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

dev: $(BIN)/pacekeeper
	$(BIN)/pacekeeper dev

test: $(BIN)/pacekeeper
	bash scripts/services.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fault battery alone, at full size: `make faults N=1000` (CI runs it with the suite, N=100).
N ?= 1000
faults: $(BIN)/pacekeeper
	bash scripts/services.sh
	PACEKEEPER_FAULTS_N=$(N) $(BIN)/python -m pytest -m fault -p no:randomly $(PYTEST_ARGS) tests/faults

lint: $(BIN)/pacekeeper
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/pacekeeper
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) var/*.db var/*.db-* .pytest_cache .mypy_cache .ruff_cache
