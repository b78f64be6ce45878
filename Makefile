# Every target creates its own virtualenv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# CrewAI pins an older pydantic and brings ~1 GB of dependencies: its adapter is tested in a
# virtualenv of its own so the rest of the suite never resolves against its pins.
CREWAI_VENV  ?= .venv-crewai
CREWAI_PY    := $(CREWAI_VENV)/bin/python
CREWAI_STAMP := $(CREWAI_VENV)/.installed
CREWAI_TESTS := tests/adapters/crewai

.PHONY: demo test test-core test-crewai bench bench-server bench-search bench-voice bench-mcp bench-console bench-capacity bench-profile screenshots serve lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# one resolution: livekit installed apart from autogen would lift protobuf past autogen's pin
	$(PY) -m pip install --quiet -e ".[postgres,server,test,test-contract,bench,langchain,langgraph,autogen,pipecat,livekit,telnyx,mcp,test-adapters]"
	touch $(STAMP)

$(CREWAI_STAMP): pyproject.toml
	$(PYTHON) -m venv $(CREWAI_VENV)
	$(CREWAI_PY) -m pip install --quiet --upgrade pip
	$(CREWAI_PY) -m pip install --quiet -e ".[postgres,server,test,crewai]"
	touch $(CREWAI_STAMP)

demo: $(STAMP)  ## two calls from one number through two server starts, on a temporary embedded database
	$(VENV)/bin/botwire demo

test: test-core test-crewai  ## the whole suite (PostgreSQL tests run when BOTWIRE_TEST_POSTGRES_URL is set)

test-core: $(STAMP)  ## everything but the CrewAI adapter
	$(PY) -m pytest --ignore=$(CREWAI_TESTS) $(PYTEST_ARGS)

test-crewai: $(CREWAI_STAMP)  ## the CrewAI adapter, in its own virtualenv
	$(CREWAI_PY) -m pytest $(CREWAI_TESTS) $(PYTEST_ARGS)

bench: $(STAMP)  ## benchmarks against diskcache and redis-py; results go to BENCHMARKS.md
	$(PY) bench/bench_core.py $(BENCH_ARGS)

bench-server: $(STAMP)  ## the server under load next to redis-benchmark; see BENCHMARKS.md
	$(PY) bench/bench_server.py $(BENCH_ARGS)

bench-search: $(STAMP)  ## search and its index cost on SQLite and PostgreSQL; see BENCHMARKS.md
	$(PY) bench/bench_search.py --output bench/SEARCH_RESULTS.md $(BENCH_ARGS)

bench-voice: $(STAMP)  ## the Vapi webhooks under load (50 in flight, 10k callers) next to a Redis baseline; see BENCHMARKS.md
	$(PY) bench/bench_voice.py $(BENCH_ARGS)

bench-mcp: $(STAMP)  ## recall_memory through /mcp next to the Vapi webhook, one server, one run; see BENCHMARKS.md
	$(PY) bench/bench_mcp.py $(BENCH_ARGS)

bench-console: $(STAMP)  ## /console's pages over a caller with 1000 calls among 100k callers; see docs/console.md
	$(PY) bench/bench_console.py $(BENCH_ARGS)

bench-capacity: $(STAMP)  ## writes per core and callers per GiB, SQLite and PostgreSQL; see docs/deploy.md
	$(PY) bench/bench_capacity.py $(BENCH_ARGS)

bench-profile: $(STAMP)  ## py-spy of botwire serve answering call starts: where each µs goes (pip install py-spy)
	$(PY) bench/profile_server.py --output bench/PROFILE_RESULTS.md $(BENCH_ARGS)

screenshots: $(STAMP)  ## the console's pictures in docs/console/, taken by its browser tests (Debian's chromium)
	BOTWIRE_SCREENSHOTS=1 BOTWIRE_TEST_REQUIRE_BROWSER=1 $(PY) -m pytest tests/console/test_browser.py -q $(PYTEST_ARGS)

serve: $(STAMP)  ## the botwire server on 127.0.0.1:8421 over the embedded SQLite file
	$(VENV)/bin/botwire serve $(SERVE_ARGS)

lint: $(STAMP)  ## ruff and mypy
	$(PY) -m pip install --quiet -e ".[dev]"
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy src

clean:
	rm -rf $(VENV) $(CREWAI_VENV) .pytest_cache .hypothesis build dist src/*.egg-info
