# `make demo` and `make test` work on a fresh clone: they create .venv and install GECKO first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/gecko run configs/demo.yaml

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests

clean:
	rm -rf runs
