# Two commands on a fresh machine:  make demo  (the lecture demos, quick, pictures in out/)
#                                   make test  (the test suite)
# Each creates .venv and installs what it needs the first time.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.graphnet-installed
PYTEST_ARGS ?=

.PHONY: demo demos test lint bench bench-gpu clean install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m demos all --quick --out out

demos: $(STAMP)
	$(PY) -m demos all --out out

# two pytest workers fill two cores: one BLAS thread each, or their thread pools oversubscribe
# the cores and spin (a 5 ms conv became 80 ms); the tests check values, not speed
test: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -q -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m pip install -q torch==2.13.0 || echo "no torch: graphnet rows only"
	$(PY) benchmarks/bench_core.py
	$(PY) benchmarks/bench_fit.py

clean:
	rm -rf out .pytest_cache build *.egg-info
