# Two commands on a fresh machine:   make demo    (the Space on the embedded sample)
#                                    make test    (the whole test suite)
# Both create .venv and install fashrec with every extra on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch pinned to the release these machines carry on local disk (a CUDA build that runs on CPU). fashrec needs
# no torchvision.
TORCH := torch==2.14.1

.PHONY: setup demo test browser dist mutation clean-cache

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH) -e ".[all]"
	touch $@

setup: $(VENV)/.installed

# Debian's Chromium for the browser tests (Playwright drives /usr/bin/chromium; never 'playwright install').
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium (sudo apt-get install -y chromium) for the browser tests"; exit 1; fi; }

demo: setup
	$(BIN)/fashrec demo

test: setup browser
	$(BIN)/python -m pytest

# A release as PyPI would get it: sdist + wheel (python -m build, in isolation), twine check, then
# tools/check_dist.py installs the wheel in a fresh venv and runs the README's and a card's snippets verbatim.
# Its own tool venv, so it runs on a bare machine (the release workflow runs exactly this).
DIST_TOOLS := build/dist-tools
dist:
	rm -rf dist
	$(PYTHON) -m venv $(DIST_TOOLS)
	$(DIST_TOOLS)/bin/pip install --quiet --upgrade pip "build>=1.2" "twine>=6"
	$(DIST_TOOLS)/bin/python -m build --outdir dist .
	$(DIST_TOOLS)/bin/twine check --strict dist/*
	$(DIST_TOOLS)/bin/python tools/check_dist.py dist $(if $(RELEASE_TAG),--release-tag $(RELEASE_TAG))

# Mutation testing of the core modules (not part of CI; tens of minutes on two cores, at low priority).
# One module: make mutation MODULES=preprocess. Results: build/mutation/summary.md; see docs/testing.md.
mutation: setup
	nice -n 10 $(BIN)/python tools/mutation.py $(MODULES)

clean-cache:
	rm -rf $${FASHREC_CACHE:-$$HOME/.cache/fashrec}
