# sedwatt: two commands for a newcomer — `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo
UI_PORT ?= 5000
DASHBOARD_PORT ?= 8080
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlruns.db

.PHONY: venv venv-cpu demo test test-fast lint server clean ui dashboard

# The venv's install, shared by `venv` and `venv-cpu`: TORCH_FIRST (empty for `venv`) runs before sedwatt's
# own install, so pip keeps the torch it put there.
TORCH_FIRST :=
define install-venv
test -x $(PY) || $(PYTHON) -m venv $(VENV)
$(PY) -m pip install --quiet --upgrade pip
$(TORCH_FIRST)
$(PY) -m pip install --quiet -e ".[dev]"
touch $(STAMP)
endef

$(STAMP): pyproject.toml
	$(install-venv)

venv: $(STAMP)

# The same venv with PyTorch's CPU-only build (no CUDA libraries: a far smaller download and .venv), for
# machines without an NVIDIA GPU. Run it instead of `make venv`, before `make demo` / `make test`.
TORCH_VERSION ?= 2.11.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
venv-cpu: TORCH_FIRST = $(PY) -m pip install --quiet torch==$(TORCH_VERSION) torchaudio==$(TORCH_VERSION) --index-url $(TORCH_CPU_INDEX)
venv-cpu:
	$(install-venv)

# The paper's point in small (src/sedwatt/cli/demo.py): batch sizes 16, 48 and 32, 20 epochs each.
# The short version: make demo DEMO_ARGS="--quick" (10 epochs, batch 16 and 48); or DEMO_ARGS="--epochs N --trials K".
DEMO_ARGS ?=
demo: $(STAMP)
	$(VENV)/bin/sedwatt demo --out $(DEMO_DIR) $(DEMO_ARGS)

# Look at what the demo made (the venv's own tools: nothing needs an activated venv). Ctrl-C stops them.
# The MLflow UI on the tracking store `make demo` writes to: http://127.0.0.1:$(UI_PORT)
ui:
	@case '$(MLFLOW_TRACKING_URI)' in http*) echo "make ui: MLFLOW_TRACKING_URI is a tracking server; open its address in a browser" >&2; exit 2;; esac
	@test -x $(VENV)/bin/mlflow || $(MAKE) venv
	$(VENV)/bin/mlflow ui --backend-store-uri '$(MLFLOW_TRACKING_URI)' --host 127.0.0.1 --port $(UI_PORT)

# The Optuna dashboard on the demo's study: http://127.0.0.1:$(DASHBOARD_PORT)/dashboard/
dashboard:
	@test -f '$(DEMO_DIR)/optuna.db' || { echo "make dashboard: no $(DEMO_DIR)/optuna.db; run make demo first" >&2; exit 2; }
	@test -x $(VENV)/bin/optuna-dashboard || $(MAKE) venv
	$(VENV)/bin/optuna-dashboard 'sqlite:///$(DEMO_DIR)/optuna.db' --host 127.0.0.1 --port $(DASHBOARD_PORT)

test: $(STAMP)
	$(PY) -m pytest -q tests

# The same without the tests marked slow (they train a model for several epochs).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

lint: $(STAMP)
	$(VENV)/bin/ruff check src analysis tests benchmarks mlflow_project

# The team server: PostgreSQL runs/models, S3 artifacts proxied by the server, basic-auth logins.
# Settings in server.env (see README); extra flags with SERVER_ARGS="--host 0.0.0.0 ...".
server: $(STAMP)
	$(PY) -m sedwatt.tracking.server $(if $(wildcard server.env),--env-file server.env) $(SERVER_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) mlruns.db mlartifacts
