# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck docs bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[redis,postgres,requests,httpx,metrics,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/quickstart.py

test: $(STAMP) lint typecheck docs
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check flask_gridauth tests examples bench
	$(VENV)/bin/ruff format --check flask_gridauth

typecheck: $(STAMP)
	$(VENV)/bin/mypy

docs: $(STAMP)
	$(VENV)/bin/sphinx-build -q -W -b html docs docs/_build/html

bench: $(STAMP)
	$(PY) bench/run.py
	$(PY) bench/load.py
	$(PY) bench/scale.py
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q tests/test_fuzz.py

clean:
	rm -rf $(VENV) docs/_build .pytest_cache .mypy_cache .ruff_cache
