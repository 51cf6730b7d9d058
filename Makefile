# Two commands on a fresh machine:   make demo    (the Space on the embedded sample)
#                                    make test    (the whole test suite)
# Both create .venv and install fashrec with every extra on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch pinned to the release these machines carry on local disk (a CUDA build that runs on CPU). fashrec needs
# no torchvision.
TORCH := torch==2.14.1

.PHONY: setup demo test browser mutation clean-cache

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

# Mutation testing of the core modules (not part of CI; tens of minutes on two cores, at low priority).
# One module: make mutation MODULES=preprocess. Results: build/mutation/summary.md; see docs/testing.md.
mutation: setup
	nice -n 10 $(BIN)/python tools/mutation.py $(MODULES)

clean-cache:
	rm -rf $${FASHREC_CACHE:-$$HOME/.cache/fashrec}
