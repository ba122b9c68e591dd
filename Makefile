# The two commands of the README: `make serve` and `make test`. Both create the virtualenv
# (.venv, or VENV=...) and install the project into it first, so a fresh machine needs only
# Python 3.11+ and make.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: serve test lint install system-deps typecheck-tree openapi client explorer screenshot bench-read bench-serve bench-large bench-import bench-freeze bench-webhooks stress fuzz clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)

## Debian packages the tests need (a real browser, PgBouncer, GDAL, stress-ng), listed in
## .ci/apt-packages; installed only when one is missing (and only where apt-get can run). A
## package counts as present when its command is (npm comes with NodeSource's nodejs, for one).
system-deps:
	@missing=$$(for p in $$(cat .ci/apt-packages); do dpkg -s $$p >/dev/null 2>&1 || command -v $$p >/dev/null || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

## The import names (secevents.server = api/, …) as a tree of links in .build/, for the tools
## that read the source tree rather than import it (mypy, import-linter). Directory links, so a
## new module needs nothing; rebuilt when the mapping in pyproject.toml changes.
TREE := .build/secevents
$(TREE): pyproject.toml $(wildcard client/*.py)
	rm -rf .build && mkdir -p $(TREE)
	for f in client/*; do ln -s ../../$$f $(TREE)/; done
	ln -s ../../api $(TREE)/server
	ln -s ../../schemas $(TREE)/schemas
	ln -s ../../migrations $(TREE)/migrations
	ln -s ../../data $(TREE)/data
typecheck-tree: $(TREE)

## Serve the API on http://127.0.0.1:8000 (embedded PostgreSQL unless DATABASE_URL is set).
serve: $(INSTALLED)
	$(BIN)/secevents serve

## Lint, type-check, then run the tests on an embedded PostgreSQL and, when
## SECEVENTS_TEST_DATABASE_URL names a server, on that server too, at the same time: the two
## runs share no database, and each spends most of its time waiting on one (one run keeps the
## two cores about half busy). The second run's output (its log: .test-server.log) follows
## the first's; the tests with servers of their own run in the first only.
SERVER_LOG := .test-server.log
test: lint system-deps
	@if [ -n "$$SECEVENTS_TEST_DATABASE_URL" ]; then \
		$(BIN)/pytest -p no:cacheprovider -m "not own_servers" > $(SERVER_LOG) 2>&1 & server=$$!; \
		trap 'kill $$server 2>/dev/null' INT TERM; \
	fi; \
	echo "env -u SECEVENTS_TEST_DATABASE_URL $(BIN)/pytest"; \
	env -u SECEVENTS_TEST_DATABASE_URL $(BIN)/pytest; embedded=$$?; \
	if [ -n "$$server" ]; then \
		wait $$server; against=$$?; \
		echo "--- the same suite against $$SECEVENTS_TEST_DATABASE_URL, run alongside (tests with servers of their own ran above only)"; \
		cat $(SERVER_LOG); \
	fi; \
	[ $$embedded -eq 0 ] && [ $${against:-0} -eq 0 ]

## The tests that race the clock (faults, a frozen database, lifecycle, serving, webhooks, the
## change feed) RUNS times in a row while stress-ng keeps both cores busy; stops at the first
## failure. The log of each run goes to .stress/ (the pass/fail line of each to stdout).
STRESS_TESTS ?= tests/test_faults.py tests/test_freeze.py tests/test_lifecycle.py tests/test_serve.py tests/test_webhooks.py tests/test_changes.py
RUNS ?= 5
stress: $(INSTALLED) system-deps
	@mkdir -p .stress; stress-ng --cpu 2 --timeout 0 --quiet & stress=$$!; trap "kill $$stress" EXIT; \
	for run in $$(seq 1 $(RUNS)); do \
		$(BIN)/pytest -q -p no:cacheprovider $(STRESS_TESTS) > .stress/run-$$run.log 2>&1; status=$$?; \
		echo "run $$run/$(RUNS) under stress-ng --cpu 2 (load $$(cut -d' ' -f1 /proc/loadavg)): $$(tail -n 1 .stress/run-$$run.log)"; \
		[ $$status -eq 0 ] || exit $$status; \
	done

## Longer fuzzing: schemathesis over every operation, many examples each, random seeds.
fuzz: $(INSTALLED)
	SECEVENTS_FUZZ_EXAMPLES=500 SECEVENTS_FUZZ_STATEFUL_EXAMPLES=200 SECEVENTS_FUZZ_RANDOM=1 SECEVENTS_FUZZ_SEEDS=1,2,3 \
		$(BIN)/pytest -p no:cacheprovider --timeout 3600 tests/test_schemathesis.py

## Regenerate the SDK's resource modules (client/_generated/) from the committed openapi/openapi.json.
client: $(INSTALLED)
	$(BIN)/python openapi/generate.py

## Regenerate the committed OpenAPI document (openapi/openapi.json) from the app.
openapi: $(INSTALLED)
	$(BIN)/python -m secevents.server.cli.openapi_dump

## Rebuild the explorer page (explorer/ → api/system/static/explorer/, committed): needs node and npm.
## Reproducible: the same sources and lockfile give the same bytes (a test checks the manifest).
explorer:
	cd explorer && npm ci --no-audit --no-fund --ignore-scripts && node scripts/build.mjs

## The README's picture of the explorer (docs/explorer.png), taken by its browser test.
screenshot: $(INSTALLED)
	SECEVENTS_SCREENSHOT=docs/explorer.png $(BIN)/pytest -q tests/test_explorer_browser.py -k screenshot

## Read benchmark: 1,000,000 incidents (embedded PostgreSQL unless DATABASE_URL is set);
## results in bench/results/read.md.
bench-read: $(INSTALLED)
	$(BIN)/python -m bench.read

## The served app on uvloop and on asyncio (granian + wrk, over bench-read's database; needs
## DATABASE_URL) → bench/results/serve.md
bench-serve: $(INSTALLED)
	$(BIN)/python -m bench.serve

## Workers × replicas throughput and the statement-cache-off cost → bench/results/scale.md
bench-scale: $(INSTALLED)
	$(BIN)/python -m bench.scale

## The largest data set: 5,000,000 generated incidents imported, then paged, filtered, counted
## and exported (on the server DATABASE_URL names; needs about 20 GB of disk).
bench-large: $(INSTALLED)
	$(BIN)/python -m bench.large --url "$${DATABASE_URL:?set DATABASE_URL to a PostgreSQL server}"

## A frozen database (SIGSTOP) under reads and writes: latency against the request timeout,
## acknowledged writes kept → bench/results/freeze.md
bench-freeze: $(INSTALLED)
	$(BIN)/python -m bench.freeze

## Import rows/s and streamed-export memory → bench/results/import_export.md
bench-import: $(INSTALLED)
	$(BIN)/python -m bench.import_export

## Webhook delivery latency, commit → receiver → bench/results/push.md (its "Webhooks" section)
bench-webhooks: $(INSTALLED)
	$(BIN)/python -m bench.webhooks

lint: $(INSTALLED) $(TREE)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PYTHONPATH=.build $(BIN)/lint-imports
	$(BIN)/python -m openapi.compat

clean:
	rm -rf $(VENV) .build .mypy_cache .ruff_cache .pytest_cache $(SERVER_LOG)
