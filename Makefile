# The two set-up commands: `make dev` runs everything, `make test` runs the tests.
# Both install from requirements.lock (exact versions, dev tools included); `make lock`
# refreshes it from pyproject.toml's ranges.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock

.PHONY: dev test faults lint typecheck check lock bench clean

# A changed lock or pyproject.toml reinstalls: pip-sync also removes what the lock dropped.
$(BIN)/pacekeeper: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r $(LOCK)
	$(BIN)/pip-sync -q $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

dev: $(BIN)/pacekeeper
	$(BIN)/pacekeeper dev

# The tests run on TEST_WORKERS processes (pytest-xdist), a file per process at a time: most
# of the suite waits on real processes and real time. TEST_WORKERS=0 runs them in this one.
TEST_WORKERS ?= 2
test: $(BIN)/pacekeeper
	bash scripts/services.sh
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The fault battery (marker `fault`, left out of `make test`): `make faults N=1000`, or N=100
# (CI size, run by .ci/run after `make test`).
N ?= 1000
faults: $(BIN)/pacekeeper
	bash scripts/services.sh
	PACEKEEPER_FAULTS_N=$(N) $(BIN)/python -m pytest -m fault -p no:randomly -p no:xdist $(PYTEST_ARGS) tests/faults

lint: $(BIN)/pacekeeper
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/pacekeeper
	$(BIN)/mypy

check: lint typecheck test

# Every benchmark in bench/ with its defaults, one after the other (each is bounded and
# prints its figures; they need the services of `make test`). BENCH=burst runs one.
BENCHES ?= $(filter-out harness,$(basename $(notdir $(wildcard bench/*.py))))
bench: $(BIN)/pacekeeper
	bash scripts/services.sh
	set -e; for b in $(or $(BENCH),$(BENCHES)); do echo "== bench/$$b.py"; \
		$(BIN)/python bench/$$b.py; done

# Re-resolve the lock after a change to pyproject.toml's dependencies, keeping every pin that
# still fits; `make lock UPGRADE=1` moves every pin to the newest version the ranges allow.
# An unchanged result leaves the file (and so the installed .venv) alone.
lock: $(BIN)/pacekeeper
	cp $(LOCK) $(LOCK).new
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile -q $(if $(UPGRADE),--upgrade) \
		--extra dev --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
		--output-file $(LOCK).new pyproject.toml
	if cmp -s $(LOCK).new $(LOCK); then rm $(LOCK).new; else mv $(LOCK).new $(LOCK); fi

clean:
	rm -rf $(VENV) var/*.db var/*.db-* .pytest_cache .mypy_cache .ruff_cache
