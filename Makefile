# Multimodal Learning, from Beginner to Advanced — the two commands are `make lab` and `make test`.
# Both create the environment (.venv) first when it is missing or older than its requirements.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Ignore machine-wide pip settings (local wheel folders, extra indexes, caps): the course pins its own
# torch/torchvision/torchaudio triple from the package index so that torchaudio imports on CPU.
PIP_ENV := PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL= PIP_CONSTRAINT= PIP_NO_INPUT=1
# Offline and quiet for every test run: hub libraries never reach the network.
TEST_ENV := COURSE_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
            PYTHONHASHSEED=0 COURSE_STRICT_CHECKS=1 COURSE_SEED=
LAB_FLAGS ?=
# Jupyter refuses to run as root (containers, some cloud machines) unless told it may.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.DEFAULT_GOAL := help
.PHONY: help setup lab test test-unit lint execute exercises models speech sweep progress clean

help:  ## List the targets
	@echo "Multimodal Learning, from Beginner to Advanced"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_ENV) $(BIN)/python -m pip install --quiet pip==26.3
	$(PIP_ENV) $(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PIP_ENV) $(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt -c constraints.txt
	$(PIP_ENV) $(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
	mkdir -p $(VENV)/share/jupyter/lab/settings/overrides.d $(VENV)/etc/jupyter
	cp tools/lab/overrides.json5 $(VENV)/share/jupyter/lab/settings/overrides.d/multimodal-course.json5
	cp tools/lab/jupyter_server_config.json $(VENV)/etc/jupyter/jupyter_server_config.json
	$(BIN)/python -c "import utils; utils.check_environment(strict=True)"
	@touch $@

setup: $(STAMP)  ## Create or update the environment (.venv); a no-op when it is current

lab: $(STAMP)  ## Open JupyterLab on the exercise notebooks
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG) $(LAB_FLAGS)

test: $(STAMP)  ## Run every test: lint, unit, drift, solutions (nbval + budgets), unsolved exercises, lab smoke
	$(BIN)/ruff check .
	$(TEST_ENV) $(BIN)/python -m pytest tests solutions --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  --nbval-cell-timeout=180 -p tests.budgets -q -rs $(PYTEST_ARGS)

test-unit: $(STAMP)  ## Only the unit tests (fast)
	$(TEST_ENV) $(BIN)/python -m pytest tests -q -m "not slow" $(PYTEST_ARGS)

# Course-wide lab settings (tools/lab/) are part of the environment: editing them reinstalls.
$(STAMP): $(wildcard tools/lab/*.json tools/lab/*.json5)

.PHONY: test-browser
test-browser: $(STAMP)  ## Real-browser test: Run All on Phase 0 in headless Chromium (apt: chromium chromium-driver)
	@missing=""; command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome \
	  >/dev/null || missing="$$missing chromium"; command -v chromedriver >/dev/null || missing="$$missing chromedriver"; \
	if [ -n "$$missing" ]; then echo "make test-browser: not found on PATH:$$missing. Install the two OS packages:"; \
	  echo "  sudo apt-get install chromium chromium-driver   (Debian; Ubuntu: the chromium snap, or Google Chrome + chromedriver)"; \
	  exit 2; fi
	@$(BIN)/python -c "import selenium" 2>/dev/null || \
	  $(PIP_ENV) $(BIN)/python -m pip install --quiet -r tools/lab/browser-requirements.txt -c constraints.txt
	COURSE_BROWSER_TEST=1 COURSE_OFFLINE=1 $(BIN)/python -m pytest tests/test_browser.py -q -rs -s $(PYTEST_ARGS)

exercises: $(STAMP)  ## Regenerate notebooks/ from solutions/ (skips notebooks you edited; FORCE=1 overwrites)
	$(BIN)/python tools/exercises.py $(if $(FORCE),--force,)

models: $(STAMP)  ## Retrain the model zoo in data/models/ (seeded; about 5 h on 2 cores; one: MODEL=tiny-clip-shapes)
	CI=true $(BIN)/python tools/make_models.py $(MODEL)

progress: $(STAMP)  ## Your progress per exercise: runs your notebooks headless (fast mode), writes progress.json (NB=...)
	$(BIN)/python -m utils.progress $(NB) --json $(or $(JSON),progress.json)

lint: $(STAMP)  ## Lint utils, tools, tests and the solution notebooks (ruff; part of make test)
	$(BIN)/ruff check .

execute: $(STAMP)  ## Re-execute solution notebooks in place, as make test runs them, to commit their outputs (NB=...)
	$(TEST_ENV) CI=true $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.timeout=900 --ExecutePreprocessor.kernel_name=python3 $(or $(NB),solutions/*.ipynb)

sweep: $(STAMP)  ## Rerun solution notebooks under other seeds, threads and CPU kernel levels (NB=..., RUNS=...)
	$(BIN)/python tools/sweep.py $(NB) $(if $(RUNS),--runs $(RUNS),)

speech: $(STAMP)  ## Rebuild data/speech/ with espeak-ng (apt-get install espeak-ng; only to rebuild, never at run time)
	$(BIN)/python tools/make_speech.py

clean:  ## Remove the environment, caches and build outputs (keeps notebooks and data)
	rm -rf $(VENV) build .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
