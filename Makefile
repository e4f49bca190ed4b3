SHELL := /bin/bash
# Everything a fresh machine needs goes through these targets: they create .venv, install the
# project from its own files, then run. PYTHON may name any Python 3.11 or 3.12 interpreter.
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not ((3,11) <= sys.version_info[:2] <= (3,12)))' 2>/dev/null; then echo $$p; break; fi; done)
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/tools/bin/uv
LOCK := requirements/lock.txt
STAMP := $(VENV)/.synced-$(shell cat $(LOCK) requirements/uv.txt | cksum | cut -d' ' -f1)

.PHONY: test test-latest demo venv lock lock-upgrade lockcheck lint clean

# Installs exactly what requirements/lock.txt pins (hashes checked), with uv pinned by requirements/uv.txt.
# The lock holds everything: the extras, the llm backend's GGUF package and the build backend
# (requirements/README.md says why and how to relock).
lockcheck:
	@test -n "$(PYTHON)" || { echo "reviewstream: needs Python 3.11 or 3.12 on PATH (set PYTHON=...)"; exit 1; }
	@$(PYTHON) requirements/lock.py check

$(UV): requirements/uv.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps --upgrade --target $(VENV)/tools -r requirements/uv.txt
	@touch $@

$(STAMP): $(UV) $(LOCK)
	$(UV) pip sync --quiet --python $(PY) --require-hashes $(LOCK)
	$(UV) pip install --quiet --python $(PY) --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.synced-* && touch $@

venv: lockcheck $(STAMP)

demo: lockcheck $(STAMP)
	$(PY) -m devstack demo $(DEMO_ARGS)

test: lockcheck $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The suite on the newest versions pyproject.toml's ranges allow, in its own venv: finds drift before users do.
# Not part of `make test`. It prints what differs from the lock, then runs the suite.
LATEST := .venv-latest
test-latest: $(UV)
	@test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(UV) pip install --quiet --python $(LATEST)/bin/python --upgrade --override requirements/overrides.txt \
		-e '.[dev,infra,llm]' -r requirements/lock.in
	@mkdir -p out
	$(PY) requirements/lock.py drift $(LATEST)/bin/python | tee out/test-latest.txt
	REVIEWSTREAM_UNTESTED_DEPS=1 $(LATEST)/bin/python -m pytest $(PYTEST_ARGS) 2>&1 | tee -a out/test-latest.txt; \
		exit $${PIPESTATUS[0]}

# Relock after changing a dependency: keeps every pin that still fits; lock-upgrade takes the newest allowed.
lock: $(UV)
	$(PY) requirements/lock.py write

lock-upgrade: $(UV)
	$(PY) requirements/lock.py write --upgrade

lint: lockcheck $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) $(LATEST) .devstack out
