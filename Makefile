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

CONFIG ?= configs/synth.yaml
R := artifacts/$(RUN)
AUX := $(BIN)/auxreid

# Each artifact is a file target: a stage runs only when its inputs changed. Targets, prerequisites and
# paths are the round wiring of stages/artifacts/rundir.py (stage_io); tests/test_rundir.py checks them.
$(SYNTH)/synth.json: | $(STAMP)
	$(AUX) synth --out $(SYNTH) --layout duke --seed $(SEED) --force

$(R)/config.yaml: $(SYNTH)/synth.json $(CONFIG)
	$(AUX) init $(RUN) --config $(CONFIG) --set data.root=$(SYNTH) --set seed=$(SEED) --force

$(R)/round_001/features.h5: $(R)/config.yaml
	$(AUX) extract $(RUN) --round 1

$(R)/aux.h5: $(R)/round_001/features.h5
	$(AUX) mine-aux $(RUN) --features $(R)/round_001/features.h5

$(R)/round_001/clusters.h5: $(R)/round_001/features.h5 $(R)/aux.h5
	$(AUX) cluster $(RUN) --round 1

$(R)/round_000/eval.h5: $(R)/config.yaml $(R)/aux.h5
	$(AUX) evaluate $(RUN) --round 0

demo: $(STAMP) $(SYNTH)/synth.json $(R)/round_001/clusters.h5 $(R)/round_000/eval.h5
	$(AUX) datasets show --dataset synth --root $(SYNTH)
	$(AUX) report $(RUN) --out $(R)/report.png

bench: $(STAMP)
	$(BIN)/python benchmarks/cluster.py
	$(BIN)/python benchmarks/evaluate.py

clean:
	rm -rf artifacts/$(RUN) $(SYNTH)
