# sedwatt: two commands for a newcomer — `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlruns.db

.PHONY: venv demo test lint server clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sedwatt demo --out $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check src analysis tests benchmarks mlflow_project

# The team server: PostgreSQL runs/models, S3 artifacts proxied by the server, basic-auth logins.
# Settings in server.env (see README); extra flags with SERVER_ARGS="--host 0.0.0.0 ...".
server: $(STAMP)
	$(PY) -m sedwatt.tracking.server $(if $(wildcard server.env),--env-file server.env) $(SERVER_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) mlruns.db mlartifacts
