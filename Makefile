# auxreid: every target sets up what it needs on first use.
#   make demo    -- set up, synthesise the camera network, train train.rounds rounds of configs/synth.yaml, report
#   make test    -- set up, then lint with ruff (pyproject.toml [tool.ruff]) and run the test suite
#   make round N=5 RUN=name CONFIG=configs/X.yaml [DATA=dir] [SET="k=v k=v"] [NPROC=k] [EVERY=k]
#                -- the method's loop; make reruns only what is stale (docs/usage.md: "The loop: make round")
#   make browse RUN=name -- every round's clusters and rankings as a static site, RUN/browse/index.html
#   make browser -- install what tests/test_browse_browser.py needs: chromium, chromium-driver (apt), selenium
#   make paper-duke, make paper-mars [DATA=dir] -- the paper's runs, on data/DukeMTMC-VideoReID and data/MARS
#   make paper-duke-noaux [DATA=dir] -- paper-duke without auxiliary information (TOC, SCP, STS off in clustering
#                and at test time), the paper's row without it; each paper run's report ends with its last and
#                best evaluated round
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# FAISS=cpu (default) or gpu: the venv gets faiss-cpu or the CUDA 13 faiss-cuda; both install the module faiss, so
# setup removes the other one. The stamp names the choice, so switching re-runs setup.
FAISS ?= cpu
STAMP := $(VENV)/.installed-faiss-$(FAISS)
RUN ?= demo
CONFIG ?= configs/synth.yaml
# The folder holding the datasets (data/synth, data/DukeMTMC-VideoReID, data/MARS), as the CLI reads it too.
AUXREID_DATA ?= data
export AUXREID_DATA
SYNTH ?= $(AUXREID_DATA)/synth
SEED ?= 0
# DATA: a folder (or manifest) for the config's own dataset; empty = that dataset's home ($(SYNTH) for synth).
DATA ?=
# NPROC > 1 trains each round with torchrun (DDP, one process per GPU).
NPROC ?= 1
# The artifacts root the CLI uses too (RunDir.resolve); exported so both always agree.
AUXREID_ARTIFACTS ?= artifacts
export AUXREID_ARTIFACTS

# The run and these paths become make targets and unquoted arguments, where whitespace splits one name into
# several (RUN='x y': rules for two runs, a flood of "overriding recipe" warnings, and `make clean` removing
# both), so a name holding any is refused before a rule is read.
has_space = $(filter-out 1,$(words x$(1)x))
$(foreach v,RUN CONFIG DATA SYNTH AUXREID_ARTIFACTS,$(if $(call has_space,$($(v))),$(error $(v)='$($(v))' contains whitespace, which make would split into several names; give a name or path without spaces)))
$(if $(RUN),,$(error RUN is empty; name the run, e.g. RUN=demo))

.PHONY: setup test test-all demo round sync-run loop report browse browser paper-duke paper-mars paper-duke-noaux bench clean

setup: $(STAMP)

# Rebuilt when pyproject.toml or constraints.txt (the exact versions installed) changes.
$(STAMP): pyproject.toml constraints.txt
	$(if $(filter cpu gpu,$(FAISS)),,$(error FAISS must be cpu or gpu, got '$(FAISS)'))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip uninstall -q -y $(if $(filter gpu,$(FAISS)),faiss-cpu,faiss-cuda) 2>/dev/null || true
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,$(FAISS)]'
	rm -f $(VENV)/.installed $(VENV)/.installed-faiss-*
	touch $(STAMP)

# ruff first: a finding fails the target before the tests run.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m ''

# A bare run name lives under the artifacts root; a name with a '/' is a path (as RunDir.resolve reads it).
R := $(if $(findstring /,$(RUN)),$(RUN),$(AUXREID_ARTIFACTS)/$(RUN))
AUX := $(BIN)/auxreid
TRAIN := $(if $(filter-out 1,$(NPROC)),$(BIN)/torchrun --standalone --nproc_per_node $(NPROC) -m auxreid_cli.main,$(AUX))

# A run's dataset is its CONFIG's (data.dataset; read from the YAML's `dataset:` line, as no venv may exist yet
# while make parses this file). DATA only points at that dataset's folder or manifest. The synthetic network is
# generated first, at $(SYNTH), only for a config that names it; any other config without DATA reads its
# dataset's home (or fails with the one-line "no <dataset> dataset at ..." error).
CONFIG_DATASET := $(shell sed -n 's/^[[:space:]]*dataset:[[:space:]]*\([A-Za-z_]*\).*/\1/p' $(CONFIG) 2>/dev/null | head -n 1)
ifneq ($(DATA),)
DATA_SET := --set data.root=$(DATA)
DATA_DEP :=
else ifeq ($(CONFIG_DATASET),synth)
DATA_SET := --set data.root=$(SYNTH)
DATA_DEP := $(SYNTH)/synth.json
else
DATA_SET :=
DATA_DEP :=
endif
SEED_SET := $(if $(filter command line,$(origin SEED)),--set seed=$(SEED))
# Config overrides for the run, as `key=value` words (SET="cluster.labels=oracle train.rounds=3"; a value holding a
# space cannot be given here: put it in CONFIG). EXTRA_SET holds more as `--set key=value` (the paper targets use
# it for paper-duke-noaux's switches).
SET ?=
EXTRA_SET ?=
SET_ARGS := $(foreach assignment,$(SET),--set $(assignment))

# Each artifact is a file target: a stage runs only when an input is newer than its output (or missing).
# Targets, prerequisites and paths are the round wiring of stages/rundir.py (stage_io);
# tests/test_rundir.py checks them against it and tests/test_make_loop.py checks what reruns.
$(SYNTH)/synth.json: | $(STAMP)
	$(AUX) synth --out $(SYNTH) --layout duke --seed $(SEED) --force

# init writes config.yaml, then round_000/model.pt. The model's rule only re-makes a missing model: order-only
# on config.yaml, as every stage lists config.yaml itself. (Not one grouped `a b &:` rule: make 4.3's dry run
# does not pass a grouped target's update on to what depends on it; so `make -n` on a new run lists init twice.)
# `init --sync` creates the run, or (target sync-run, before every `make round`) brings an existing one in line
# with CONFIG, DATA, SEED and SET: it re-initialises when they give other settings and lists them, does nothing
# when they give the same, and refuses when config.yaml was edited by hand since init (stages/run_sync.py).
INIT_ARGS = $(strip --config $(CONFIG) $(DATA_SET) $(SEED_SET) $(EXTRA_SET) $(SET_ARGS) --sync)
$(R)/config.yaml: $(DATA_DEP) | $(STAMP)
	$(AUX) init $(RUN) $(INIT_ARGS)

$(R)/round_000/model.pt: | $(R)/config.yaml
	$(AUX) init $(RUN) $(INIT_ARGS)

$(R)/aux.h5: $(R)/config.yaml $(R)/round_001/features.h5
	$(AUX) mine-aux $(RUN) --features $(R)/round_001/features.h5

# Round $(1) (folder $(2), the previous round's folder $(3)): extract with round $(1)-1's teacher, cluster,
# train. Cluster R > 1 also lists round 1's clusters (adaptive eps) and round R-1's (cluster.sts_reestimate)
# whatever the config says: both are upstream of round R's features anyway, so listing them never reruns
# anything extra, and the rules need no config at parse time.
define ROUND_RULES
$(R)/$(2)/features.h5: $(R)/config.yaml $(R)/$(3)/model.pt
	$$(AUX) extract $$(RUN) --round $(1)

$(R)/$(2)/clusters.h5: $(R)/config.yaml $(R)/$(2)/features.h5 $(R)/aux.h5$(if $(filter-out 1,$(1)), $(sort $(R)/round_001/clusters.h5 $(R)/$(3)/clusters.h5))
	$$(AUX) cluster $$(RUN) --round $(1)

$(R)/$(2)/model.pt: $(R)/config.yaml $(R)/$(2)/clusters.h5 $(R)/$(3)/model.pt
	$$(TRAIN) train-round $$(RUN) --round $(1)

endef

# Round $(1)'s evaluation: its model's query/gallery features are kept in test_features.h5, re-extracted only
# when the model changes (config.yaml is order-only: evaluate checks the extract settings the file records and
# re-extracts itself when they changed); eval.h5 re-ranks them when config.yaml or aux.h5 changes.
define EVAL_RULE
$(R)/$(2)/test_features.h5: $(R)/$(2)/model.pt | $(R)/config.yaml
	$$(AUX) evaluate $$(RUN) --round $(1) --extract-only

$(R)/$(2)/eval.h5 $(R)/$(2)/eval.json &: $(R)/config.yaml $(R)/$(2)/model.pt $(R)/$(2)/test_features.h5 $(R)/aux.h5
	$$(AUX) evaluate $$(RUN) --round $(1)

endef

# Rules for rounds 1..N (at least round 1), as "R:round_00R:round_00<R-1>" triples; evaluation rules for 0..N.
N ?=
ROUND_TRIPLES := $(shell seq 1 $(or $(N),1) | awk '{ printf "%d:round_%03d:round_%03d ", $$1, $$1, $$1 - 1 }')
triple = $(word $(1),$(subst :, ,$(2)))
$(eval $(call EVAL_RULE,0,round_000))
$(foreach t,$(ROUND_TRIPLES),$(eval $(call ROUND_RULES,$(call triple,1,$t),$(call triple,2,$t),$(call triple,3,$t))))
$(foreach t,$(ROUND_TRIPLES),$(eval $(call EVAL_RULE,$(call triple,1,$t),$(call triple,2,$t))))

# `make round`: N rounds (default the config's train.rounds), evaluating round 0, every EVERY-th round
# (default the config's evaluate.every) and round N. Both numbers are read by the venv's python when this
# recipe runs -- after setup, so it works on a fresh clone where no venv exists while make parses this
# file -- and handed to a second make, which has the round rules for 1..N and does the work (init first).
# They are read from the run's config.yaml (what every stage reads; sync-run has brought it in line with CONFIG
# and SET by then), or for a new run from $(CONFIG) with the overrides init will get; reading the YAML without
# the schema at parse time would miss the schema's defaults (evaluate.every is 5 when a config leaves it out).
# N=... and EVERY=... on the command line skip the read. A config that cannot be read prints auxreid's own
# one-line `error:` (no traceback) and stops make there, before any N/EVERY check could blame the numbers.
SCHEDULE_PY := import sys; from stages.errors import AuxReidError; sys.excepthook = lambda kind, error, trace: print(f"error: {error}", file=sys.stderr) if issubclass(kind, AuxReidError) else sys.__excepthook__(kind, error, trace); from stages.config import load_config; c = load_config(sys.argv[1], sys.argv[2:]); print(c.train.rounds, c.evaluate.every)
RUN_CONFIG = $(if $(wildcard $(R)/config.yaml),$(R)/config.yaml,$(CONFIG) $(filter-out --set,$(DATA_SET) $(SEED_SET) $(EXTRA_SET) $(SET_ARGS)))
positive = $(shell test "$(1)" -ge 1 2>/dev/null && echo $(1))
eval_dirs = $(shell seq 0 $(1) | awk -v n=$(1) -v e=$(2) '$$1 == 0 || $$1 == n || $$1 % e == 0 { printf "round_%03d ", $$1 }')
round_dir = $(shell printf round_%03d $(1))

# An existing run first follows CONFIG, DATA, SEED and SET (init --sync; see the rule for config.yaml).
sync-run: | $(STAMP)
	$(if $(wildcard $(R)/config.yaml),$(AUX) init $(RUN) $(INIT_ARGS),@:)

round: sync-run | $(STAMP)
	$(eval SCHEDULE := $(if $(and $(N),$(EVERY)),$(N) $(EVERY),$(shell $(BIN)/python -c '$(SCHEDULE_PY)' $(RUN_CONFIG))))
	$(eval SCHEDULE_FAILED := $(if $(and $(N),$(EVERY)),,$(filter-out 0,$(.SHELLSTATUS))))
	$(eval LOOP_N := $(call positive,$(or $(N),$(word 1,$(SCHEDULE)))))
	$(eval LOOP_EVERY := $(call positive,$(or $(EVERY),$(word 2,$(SCHEDULE)))))
	$(if $(or $(SCHEDULE_FAILED),$(and $(LOOP_N),$(LOOP_EVERY))),,$(error make round: need N >= 1 and EVERY >= 1; got N='$(or $(N),$(word 1,$(SCHEDULE)))' EVERY='$(or $(EVERY),$(word 2,$(SCHEDULE)))' (read from $(RUN_CONFIG) unless given)))
	+$(if $(SCHEDULE_FAILED),@exit 1,$(MAKE) --no-print-directory loop N=$(LOOP_N) EVERY=$(LOOP_EVERY))

# The second make's goal, in round order: each scheduled evaluation (eval.h5 and eval.json), then round N's model.
ifneq ($(and $(N),$(EVERY)),)
loop: $(foreach d,$(call eval_dirs,$(N),$(EVERY)),$(R)/$d/eval.h5 $(R)/$d/eval.json) $(R)/$(call round_dir,$(N))/model.pt
else
loop:
	$(error make loop needs N=... and EVERY=...; use `make round`, which reads them from the config)
endif

# The run's figure and table (every round that has files so far).
report: | $(STAMP)
	$(AUX) report $(RUN) --out $(R)/report.png

# Every cluster of every round, and every evaluated round's rankings, as a static site (RUN/browse/index.html).
browse: | $(STAMP)
	$(AUX) browse $(RUN)

# The browser test's needs: Debian's chromium and chromium-driver (sudo unless root; the package lists are
# refreshed only when the install fails) and the venv's selenium, the `browser` extra of pyproject.toml.
browser: $(STAMP)
	SUDO=$$(test "$$(id -u)" = 0 || echo sudo); APT="$$SUDO apt-get install -y --no-install-recommends chromium chromium-driver"; \
	$$APT || { $$SUDO apt-get update && $$APT; }
	$(BIN)/pip install -q -c constraints.txt -e '.[browser]'

demo: $(STAMP)
	+$(MAKE) --no-print-directory round RUN=demo CONFIG=configs/synth.yaml DATA=
	$(AUX) datasets show --dataset synth --root $(SYNTH)
	+$(MAKE) --no-print-directory report RUN=demo
	+$(MAKE) --no-print-directory browse RUN=demo

# The paper's runs (Teng et al. 2022): 50 rounds on DukeMTMC-VideoReID, 40 on MARS; N=k runs fewer. The data:
# DATA, else the dataset's folder under AUXREID_DATA. paper-duke-noaux is paper-duke without auxiliary
# information: TOC, SCP and STS off in clustering and at test time (mine-aux still runs; aux.h5 then only
# feeds cluster's violation counts).
# The report at the end prints the last evaluated round and the best one by mAP, which the paper's tables give.
PAPER_FOLDER_paper-duke := DukeMTMC-VideoReID
PAPER_FOLDER_paper-duke-noaux := DukeMTMC-VideoReID
PAPER_FOLDER_paper-mars := MARS
PAPER_CONFIG_paper-duke := configs/duke.yaml
PAPER_CONFIG_paper-duke-noaux := configs/duke.yaml
PAPER_CONFIG_paper-mars := configs/mars.yaml
PAPER_ROUNDS_paper-duke := 50
PAPER_ROUNDS_paper-duke-noaux := 50
PAPER_ROUNDS_paper-mars := 40
NOAUX_SET := --set cluster.scp=false --set cluster.sts=false --set cluster.toc=false \
             --set evaluate.toc=false --set evaluate.scp=false --set evaluate.sts=false
PAPER_SET_paper-duke-noaux := $(NOAUX_SET)
paper-duke paper-mars paper-duke-noaux: | $(STAMP)
	@test -d "$(or $(DATA),$(AUXREID_DATA)/$(PAPER_FOLDER_$@))" || { echo "error: make $@: no dataset at $(or $(DATA),$(AUXREID_DATA)/$(PAPER_FOLDER_$@))$(if $(DATA),, (the default: $(PAPER_FOLDER_$@)/ under AUXREID_DATA=$(AUXREID_DATA))); put it there, or point elsewhere with DATA=/path/to/$(PAPER_FOLDER_$@) or AUXREID_DATA=/folder/holding/it (docs/usage.md: The loop: make round)" >&2; exit 1; }
	+$(MAKE) --no-print-directory round RUN=$@ CONFIG=$(PAPER_CONFIG_$@) DATA=$(or $(DATA),$(AUXREID_DATA)/$(PAPER_FOLDER_$@)) N=$(or $(N),$(PAPER_ROUNDS_$@))$(if $(PAPER_SET_$@), EXTRA_SET='$(PAPER_SET_$@)')
	+$(MAKE) --no-print-directory report RUN=$@

bench: $(STAMP)
	$(BIN)/python benchmarks/cluster.py
	$(BIN)/python benchmarks/evaluate.py

clean:
	rm -rf $(R) $(SYNTH)
