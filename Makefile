# The two commands of the README:
#   make repro   set up .venv, then run the default pipeline end to end (dvc repro)
#   make test    set up .venv, then run the test suite (what CI runs)
# and, for the edit loop, make test-fast: every test not marked slow (no end-to-end pipeline, no
# multi-process or subprocess run).
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: repro test test-fast venv
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

test-fast: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" python -m pytest -q -m "not slow"
