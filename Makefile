# SFAI: two commands.
#   make run    set up .venv, prepare the demo tenant, serve the API and web console on 127.0.0.1:8000
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sfai-installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test install serve demo lint bench audit lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned to 2.13.0 (a CPU wheel); constraints.txt holds the tested version of every dependency; the stamp
# re-installs when either file changes.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -c constraints.txt -e '.[train,dev]'
	@touch $(STAMP)

# the scheduling module's compiled loops (the job-shop tabu search, the dispatching scheme), cached by numba next to
# their sources (~15 s once)
COMPILED := $(VENV)/.sfai-compiled
$(COMPILED): optimization/_tabu_core.py optimization/_dispatch_core.py $(STAMP)
	$(BIN)/python -c "from optimization.heuristics import warm; warm()"
	@touch $(COMPILED)

install: $(STAMP) $(COMPILED)

run: install
	@echo "== SFAI demo tenant: admin API key (shown once; 'sfai apikey create' makes more) =="
	@$(BIN)/sfai demo
	@echo "== serving on http://$(HOST):$(PORT)  (web console /, API docs /docs) =="
	$(BIN)/sfai serve --host $(HOST) --port $(PORT)

# the suite runs on every core (pytest-xdist, up to 4 processes), then the tests marked `serial` in one plain process
# (they cannot run in an xdist worker: see SERIAL in tests/conftest.py) and, on a machine of 2 cores or more, beside
# them in another, the browser tests and the `sfai schedule solve` runs (marked `beside`; their report follows);
# every part always runs, and any failing fails.
# PYTEST_ARGS (e.g. PYTEST_ARGS="tests/optimization -x") runs just that, in one process.
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; [ $$n -lt 2 ] && n=0; echo $$n)

test: install
ifeq ($(strip $(PYTEST_ARGS)),)
	@rc=0; \
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile -m "not serial" || rc=$$?; \
	if [ "$(TEST_JOBS)" -ge 2 ]; then \
		echo "== the serial tests (the browser and sfai schedule tests run beside them; their report follows) =="; \
		log=$$(mktemp); \
		$(BIN)/python -m pytest -m "serial and beside" -p no:cacheprovider > "$$log" 2>&1 & beside=$$!; \
		trap 'kill $$beside 2>/dev/null; rm -f "$$log"; exit 130' INT TERM; \
		$(BIN)/python -m pytest -m "serial and not beside" || rc=$$?; \
		wait $$beside || rc=$$?; \
		echo "== the browser and sfai schedule tests (run beside the serial tests) =="; \
		cat "$$log"; rm -f "$$log"; \
	else \
		echo "== the serial tests (alone) =="; \
		$(BIN)/python -m pytest -m serial || rc=$$?; \
	fi; \
	exit $$rc
else
	$(BIN)/python -m pytest $(PYTEST_ARGS)
endif

lint: install
	$(BIN)/ruff check .

# dependency and secret audit: pip's own consistency check, the repository secret scan, and pip-audit against
# PyPI's vulnerability data (it needs to reach pypi.org; offline it lists the packages it could not check)
audit: install
	$(BIN)/python -m pip check
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_deploy.py
	$(BIN)/pip-audit --progress-spinner off --skip-editable

bench: install
	$(BIN)/python benchmarks/api_overhead.py

# after a deliberate upgrade (pip install -U ... in .venv): write the installed versions back to constraints.txt,
# keeping its header; then run make test and the model benchmarks before committing it
lock: install
	{ grep '^#' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .sfai .pytest_cache build *.egg-info
