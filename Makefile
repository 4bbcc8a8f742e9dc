# Two entry points (see README): `make study` (quick study -> book/_build/html/index.html) and `make test`.
# Both install whatever is missing first: a venv built from environment.yml's pip section, and MathJax for the book.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
STAMP := $(VENV)/.mtlprune-installed
MATHJAX := book/_extra/mathjax/.subset-1
MATHJAX_PARTS := tex-mml-chtml.js output/chtml input/tex input/mml ui a11y

.PHONY: setup study test book clean-book browser datasets

$(STAMP): environment.yml pyproject.toml scripts/env_requirements.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PYTHON) scripts/env_requirements.py environment.yml > $(VENV)/requirements.txt
	$(PY) -m pip install --quiet -r $(VENV)/requirements.txt
	@touch $(STAMP)

# MathJax is served from the book itself: the default CDN copy cannot be reached offline. Only the parts the book
# uses are copied (the TeX/MathML → CommonHTML component, its fonts, the extensions TeX autoloads, the menu and its
# accessibility module: about 3 MB of the 24 MB es5 tree; the speech rule engine is left out).
$(MATHJAX):
	@mkdir -p $(VENV)/npm book/_extra
	cd $(VENV)/npm && npm install --silent --no-audit --no-fund mathjax@3 >/dev/null
	rm -rf book/_extra/mathjax && mkdir -p book/_extra/mathjax
	cd $(VENV)/npm/node_modules/mathjax/es5 && cp -r --parents $(MATHJAX_PARTS) $(CURDIR)/book/_extra/mathjax/
	@touch $@

# The real multi-domain benchmark reads Fashion-MNIST from Debian's package (as the browser, installed as root when
# missing); its other real domains come with the Python packages of environment.yml.
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
datasets:
	@test -f $(FASHION) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		dataset-fashion-mnist >/dev/null)

setup: $(STAMP) datasets

study: $(STAMP) $(MATHJAX) datasets
	$(PY) -m mtlprune study --profile $(PROFILE)

book: $(STAMP) $(MATHJAX)
	$(PY) -m mtlprune study --profile $(PROFILE) --book-only

# The test suite loads every page of the smoke book in a real browser (Debian's chromium), installed here if missing.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

test: $(STAMP) $(MATHJAX) browser datasets
	$(PY) -m pytest -q

clean-book:
	rm -rf book/_build book/generated
