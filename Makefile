# auxreid: every target sets up what it needs on first use.
#   make demo   -- set up, then run the pipeline on the embedded synthetic camera network
#   make test   -- set up, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN ?= demo
SYNTH ?= data/synth
SEED ?= 0

.PHONY: setup test test-all demo bench clean

setup: $(STAMP)

# Rebuilt only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

$(SYNTH)/synth.json: | $(STAMP)
	$(BIN)/auxreid synth --out $(SYNTH) --layout duke --seed $(SEED)

demo: $(STAMP) $(SYNTH)/synth.json
	$(BIN)/auxreid datasets show --dataset synth --root $(SYNTH)

bench: $(STAMP)
	$(BIN)/python benchmarks/cluster.py
	$(BIN)/python benchmarks/evaluate.py

clean:
	rm -rf artifacts/$(RUN) $(SYNTH)
