# loopdash: `make run` serves the demo; `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
JS_DIR := sessions/tests/js_runners

.PHONY: run test test-sqlite venv js lint bench-ingest bench-loop bench-shards worker clean

run: $(VENV)/.installed
	@scripts/run.sh

test: $(VENV)/.installed $(JS_DIR)/node_modules/.installed
	@scripts/test.sh $(ARGS)

# The second, smaller leg: the ORM storage path on SQLite, without workers or a browser.
test-sqlite: $(VENV)/.installed
	@LOOPDASH_TEST_BACKEND=sqlite scripts/test.sh -m "not worker and not browser" --ignore=sessions/tests/test_api_fuzz.py $(ARGS)

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@python=$$(scripts/find_python.sh) || exit 1; \
	  echo "Using $$python ($$($$python --version))"; \
	  [ -x $(PY) ] || $$python -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

js: $(JS_DIR)/node_modules/.installed

$(JS_DIR)/node_modules/.installed: $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the JavaScript runners' tests (node, jest, mocha)"; exit 1; }
	npm ci --prefix $(JS_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench-ingest: $(VENV)/.installed
	$(PY) bench/ingest.py

bench-loop: $(VENV)/.installed
	$(PY) bench/loop.py

bench-shards: $(VENV)/.installed
	$(PY) bench/shards.py

clean:
	rm -rf var db.sqlite3 db.sqlite3-wal db.sqlite3-shm
