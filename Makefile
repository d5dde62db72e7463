# Two commands on a fresh machine:  make demo  (the lecture demos, quick, pictures in out/)
#                                   make test  (the test suite)
# Each creates .venv and installs what it needs the first time.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.graphnet-installed
PYTEST_ARGS ?=

.PHONY: demo demos test lint bench bench-gpu clean install doctor graphviz

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@$(MAKE) --no-print-directory graphviz
	touch $(STAMP)

# Graphviz's dot draws the models; where this user can install it (root with apt-get, or
# conda or brew on PATH) the set-up does, and says so; otherwise the demos write .gv sources
# and this hint stays. `make doctor` lists what the machine has.
GRAPHVIZ_HINT := Graphviz's dot is missing: drawings are written as .gv sources only; install it with apt-get install graphviz, brew install graphviz or conda install -c conda-forge graphviz
graphviz:
	@if command -v dot >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Graphviz's dot is missing: installing it (apt-get install -y graphviz)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz; } \
	    || echo "apt-get could not install Graphviz. $(GRAPHVIZ_HINT)"; \
	elif command -v conda >/dev/null 2>&1; then \
	  echo "Graphviz's dot is missing: installing it (conda install -y -c conda-forge graphviz)"; \
	  conda install -y -q -c conda-forge graphviz || echo "conda could not install Graphviz. $(GRAPHVIZ_HINT)"; \
	elif command -v brew >/dev/null 2>&1; then \
	  echo "Graphviz's dot is missing: installing it (brew install graphviz)"; \
	  brew install graphviz || echo "brew could not install Graphviz. $(GRAPHVIZ_HINT)"; \
	else echo "$(GRAPHVIZ_HINT)"; fi

doctor: $(STAMP)
	$(PY) -m graphnet.doctor

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
