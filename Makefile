# cockpit: two commands for a fresh machine.
#   make demo              create .venv, install, open the cockpit on the built-in demo
#   make demo HEADLESS=1   the same demo with plain progress lines instead of the full-screen app
#   make test              create .venv, install, run the whole test suite
#
# TORCH picks the PyTorch build. The default takes torch from PyPI, which on Linux x86_64 is a CUDA
# build; to choose a CUDA version, e.g.:
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cu128
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=
HEADLESS ?=
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core, at most four; an idle one takes tests queued for another
# (worksteal), so a few long tests do not leave one core waiting at the end.
JOBS ?= auto

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cockpit run demo $(if $(HEADLESS),--headless)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --maxprocesses 4 --dist worksteal $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs data .pytest_cache
