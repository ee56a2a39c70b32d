# The two commands of the README:
#   make repro   set up .venv, then run the default pipeline end to end (dvc repro)
#   make test    set up .venv, then run the test suite and tools/rederive.py (what CI runs)
# and, for the edit loop, make test-fast: every test not marked slow (no end-to-end pipeline, no
# multi-process or subprocess run).
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: repro test test-fast rederive venv
venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

repro: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" dvc repro
	@echo "The results table is in results/table.md (and results/table.csv)."

test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" python -m pytest -q
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" python tools/rederive.py

# The committed results' roots, re-derived from the last commit's code (a few minutes; docs/numerics.md).
rederive: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" python tools/rederive.py

test-fast: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" python -m pytest -q -m "not slow"
