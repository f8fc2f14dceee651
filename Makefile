# `make demo` and `make test` work on a fresh clone: they create .venv and install GECKO first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.installed-core
FULL := $(VENV)/.installed-test

.PHONY: demo test test-fast check install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# the core: what `gecko run configs/demo.yaml` needs, nothing more (see pyproject.toml's extras)
$(CORE): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e .
	@# the code sandbox's seccomp filter needs libseccomp.so.2 (Debian: libseccomp2, normally present)
	@ldconfig -p | grep -q 'libseccomp\.so\.2' || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get install -y -q libseccomp2; } || echo "warning: libseccomp.so.2 missing: code evaluation will refuse to run"
	touch $(CORE)

# every extra, for the tests
$(FULL): $(CORE) tools/llama_cpp/package-lock.json
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	@# llama.cpp's prebuilt CPU binaries (node-llama-cpp) for the GGUF round trip, tests/test_gguf.py
	@if command -v npm >/dev/null; then npm ci -s --omit=optional --no-audit --no-fund --prefix tools/llama_cpp; \
		else echo "warning: npm missing: tests/test_gguf.py will not run outside CI"; fi
	touch $(FULL)

install: $(CORE)

demo: $(CORE)
	HF_HUB_OFFLINE=1 $(BIN)/gecko run configs/demo.yaml

test: $(FULL)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests

# the fast lane: every test not marked slow (pyproject's markers; under a minute on 2 cores)
test-fast: $(FULL)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not slow" tests

# lint (pyflakes, isort, bugbear, pyupgrade, simplify), formatting and types: part of .ci/run
check: $(FULL)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

clean:
	rm -rf runs
