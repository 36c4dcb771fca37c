# make run  : create .venv, install, migrate, start everything (boneage up)
# make test : create .venv, install, run the test suite
#
# pip (not uv): the pinned torch/torchvision wheels install from the local index with pip.

PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test install migrate clean

run: install
	$(VENV)/bin/boneage db upgrade
	$(VENV)/bin/boneage up --host $(HOST) --port $(PORT)

test: install
	$(PY) -m pytest

install: $(INSTALLED)

migrate: install
	$(VENV)/bin/boneage db upgrade

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[test]'
	touch $@

clean:
	rm -rf var build *.egg-info .pytest_cache
