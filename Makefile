# Every target creates its own virtualenv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench bench-server serve lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[postgres,server,test,bench]"
	touch $(STAMP)

demo: $(STAMP)  ## two calls from one number, in two processes, on the embedded default
	$(VENV)/bin/botwire demo

test: $(STAMP)  ## the whole suite (PostgreSQL tests run when BOTWIRE_TEST_POSTGRES_URL is set)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)  ## benchmarks against diskcache and redis-py; results go to BENCHMARKS.md
	$(PY) bench/bench_core.py $(BENCH_ARGS)

bench-server: $(STAMP)  ## the server under load next to redis-benchmark; see BENCHMARKS.md
	$(PY) bench/bench_server.py $(BENCH_ARGS)

serve: $(STAMP)  ## the botwire server on 127.0.0.1:8421 over the embedded SQLite file
	$(VENV)/bin/botwire serve $(SERVE_ARGS)

lint: $(STAMP)  ## ruff and mypy
	$(PY) -m pip install --quiet -e ".[dev]"
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy src

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build dist src/*.egg-info
