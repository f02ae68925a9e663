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
.PHONY: help setup lab test test-unit exercises models speech sweep clean

help:  ## List the targets
	@echo "Multimodal Learning, from Beginner to Advanced"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_ENV) $(BIN)/python -m pip install --quiet pip==26.3
	$(PIP_ENV) $(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PIP_ENV) $(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
	$(BIN)/python -c "import utils; utils.check_environment(strict=True)"
	@touch $@

setup: $(STAMP)  ## Create or update the environment (.venv); a no-op when it is current

lab: $(STAMP)  ## Open JupyterLab on the exercise notebooks
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG) $(LAB_FLAGS)

test: $(STAMP)  ## Run every test: unit, drift, solutions (nbval + budgets), unsolved exercises, lab smoke
	$(TEST_ENV) $(BIN)/python -m pytest tests solutions --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  --nbval-cell-timeout=180 -p tests.budgets -q -rs $(PYTEST_ARGS)

test-unit: $(STAMP)  ## Only the unit tests (fast)
	$(TEST_ENV) $(BIN)/python -m pytest tests -q -m "not slow" $(PYTEST_ARGS)

exercises: $(STAMP)  ## Regenerate notebooks/ from solutions/ (skips notebooks you edited; FORCE=1 overwrites)
	$(BIN)/python tools/exercises.py $(if $(FORCE),--force,)

models: $(STAMP)  ## Retrain the model zoo in data/models/ (seeded; about 35 minutes on 2 cores)
	CI=true $(BIN)/python tools/make_models.py

sweep: $(STAMP)  ## Rerun solution notebooks under other seeds, threads and CPU kernel levels (NB=..., RUNS=...)
	$(BIN)/python tools/sweep.py $(NB) $(if $(RUNS),--runs $(RUNS),)

speech: $(STAMP)  ## Rebuild data/speech/ with espeak-ng (apt-get install espeak-ng; only to rebuild, never at run time)
	$(BIN)/python tools/make_speech.py

clean:  ## Remove the environment, caches and build outputs (keeps notebooks and data)
	rm -rf $(VENV) build .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
