# The two set-up commands (see README.md): each installs into .venv when needed, then runs.
PY := .venv/bin/python

.PHONY: quickstart test test-fast setup
setup:
	@bash scripts/setup_env.sh

quickstart: setup
	$(PY) -m egmf.cli.main quickstart

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"
