# Prognos: the two commands of the README are `make demo` and `make test`.
# Each does every set-up step itself: virtual environment, packages, jars, redis-server.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TRAIN_STAMP := $(VENV)/.installed-train
PROGNOS := $(BIN)/prognos
# Wheels of the train extra (PyTorch and its CUDA libraries: about 3 GB), downloaded once and
# kept across checkouts and clean clones: `pip download` skips a file it already has.
WHEELS ?= $(HOME)/.cache/prognos/wheels
PYTEST_ARGS ?=
CMAPSS ?= ../shared/data/cmapss

.PHONY: help venv train-extra browser setup demo demo-cmapss smoke test unit integration lint model bench up down status clean

help:
	@echo "make demo   set up everything, start the local stack and run the demo"
	@echo "make test   set up everything (the train extra too) and run every test CI runs"
	@echo "make lint   ruff and mypy"
	@echo "make model  retrain the default model (installs the train extra)"
	@echo "make bench  benchmarks against a private local stack (about 19 minutes on 2 cores)"
	@echo "make bench-cluster        the wide fleet at local[1], local[2] and on the local cluster"
	@echo "make up | down | status   the local stack"
	@echo "make cluster-test         the job on the local cluster (3 brokers, HDFS, Spark) and its faults"
	@echo "make cluster-up | cluster-down   the local cluster (prognos cluster up|down)"
	@echo "make image | compose-up | compose-down   the container image and deploy/compose.yaml"

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Prognos needs Python 3.11 or newer; run with PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The train extra (PyTorch, ONNX export, scikit-learn, matplotlib): `make test` and
# `make model` need it, `make demo` does not. Its requirements are read from pyproject.toml.
$(TRAIN_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(BIN)/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["train"]))' > $(VENV)/train-requirements.txt
	$(BIN)/python -m pip download --quiet --progress-bar off -c constraints.txt -r $(VENV)/train-requirements.txt -d $(WHEELS)
	$(BIN)/python -m pip install --quiet --no-index --find-links $(WHEELS) -c constraints.txt -r $(VENV)/train-requirements.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[train,dev]'
	touch $(TRAIN_STAMP)

train-extra: $(TRAIN_STAMP)

setup: venv
	$(PROGNOS) stack setup

up: setup
	$(PROGNOS) stack up

down:
	$(PROGNOS) stack down

status:
	$(PROGNOS) stack status

demo: setup
	$(PROGNOS) demo

demo-cmapss: setup
	$(PROGNOS) demo --cmapss $(CMAPSS)/train_FD001.txt

smoke: up
	$(PROGNOS) smoke --count 2000

# Debian's Chromium, for the dashboard's browser test (Playwright drives it; no download
# from elsewhere). Installed with apt-get when run as root, else the message says how.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium (the dashboard's browser test)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "The dashboard's browser test needs Chromium: run 'apt-get install chromium' as root" >&2; \
	    exit 1; \
	  fi; \
	fi

# The cluster faults in `make test`: the worker's and the driver's (the job's recovery on the
# cluster); `make cluster-test` runs all five. On a slower 2-core machine every fault took
# `make test` past CI's 45 minutes.
TEST_CLUSTER_FAULTS ?= worker,driver
test: setup train-extra browser
	PROGNOS_CLUSTER_FAULTS=$(TEST_CLUSTER_FAULTS) $(BIN)/python -m pytest -v -p no:cacheprovider $(PYTEST_ARGS)

unit: train-extra
	$(BIN)/python -m pytest -q -m unit $(PYTEST_ARGS)

integration: setup browser
	$(BIN)/python -m pytest -v -m integration $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# Benchmarks (tests/benchmarks, not collected as tests): JSON in bench-results/, a table printed.
BENCH_ARGS ?=
bench: setup
	$(BIN)/python tests/benchmarks/run_all.py $(BENCH_ARGS)

# Issue 22's scale-out on the local cluster: the 20,000-device fleet at local[2], local[1]
# and on a Spark master with two one-core workers (checkpoint on HDFS, submitted as
# `prognos submit` ships the job), beside the hand-batched process; about 6 minutes.
# JSON in bench-results/fleet-cluster.json.
.PHONY: bench-cluster
bench-cluster: setup
	$(BIN)/python tests/benchmarks/bench_fleet.py --fleets 20000 --cluster --no-latency \
		--naive-fleet 0 --out bench-results/fleet-cluster.json $(BENCH_ARGS)

# The reliability suite's long variant (tests/reliability; `make test` runs the CI variant):
# more SIGKILLs, Redis and Kafka outages, a larger recording and backlog, a 5-minute fuzz run.
# Prints the per-fault table; JSON in bench-results/reliability-long.json.
.PHONY: chaos
CHAOS_ARGS ?=
chaos: setup
	PROGNOS_CHAOS_LONG=1 $(BIN)/python -m pytest -v -p no:cacheprovider -m reliability $(CHAOS_ARGS)

# The stream job on the local cluster (3 Kafka brokers, HDFS, Spark master + 2 workers;
# tests/cluster): starts it on ports 29000+, submits the job with `prognos submit`, runs
# every cluster fault against the golden run, prints the fault table, stops everything.
# `make test` runs the same tests with two of the faults (TEST_CLUSTER_FAULTS).
# JSON in bench-results/cluster-faults.json.
.PHONY: cluster-test cluster-up cluster-down
CLUSTER_ARGS ?=
cluster-test: setup train-extra
	PROGNOS_CLUSTER_FAULTS=all $(BIN)/python -m pytest -v -p no:cacheprovider -m cluster $(CLUSTER_ARGS)

cluster-up: setup
	$(PROGNOS) cluster up

cluster-down:
	$(PROGNOS) cluster down

# The container image and the compose file (deploy/Dockerfile, deploy/compose.yaml). The
# Docker engine is Debian's docker.io, installed and started by deploy/docker/engine.sh
# when none runs. No registry is reachable here, so the base image is made locally with
# debootstrap (prognos-base:bookworm); elsewhere: make image BASE_IMAGE=python:3.11-slim-bookworm
.PHONY: engine engine-stop image compose-up compose-down
BASE_IMAGE ?= prognos-base:bookworm
IMAGE ?= prognos:latest
COMPOSE := docker-compose -p prognos -f deploy/compose.yaml
engine:
	sh deploy/docker/engine.sh start

engine-stop:
	sh deploy/docker/engine.sh stop

image: setup engine
	@case "$(BASE_IMAGE)" in prognos-base:*) sh deploy/docker/base-image.sh $(BASE_IMAGE);; esac
	$(BIN)/python -m deploy.image .prognos/image
	sh deploy/docker/build-image.sh .prognos/image $(BASE_IMAGE) $(IMAGE)

compose-up: image
	PROGNOS_IMAGE=$(IMAGE) $(COMPOSE) up -d
	@echo "alerts: redis-cli -p 16379 xlen prognos:alerts; logs: $(COMPOSE) logs -f stream"

compose-down:
	$(COMPOSE) down -v --remove-orphans

# Retrain the default model reproducibly, then check it: the same model.onnx bytes on the same
# machine; another CPU's floating-point kernels may round differently (docs/model.md).
model: train-extra
	SOURCE_DATE_EPOCH=1767225600 $(PROGNOS) --log-level WARNING train --data cmapss:$(CMAPSS) --out models/default --seed 7
	$(BIN)/python -m pytest -q tests/unit/models

clean:
	-$(PROGNOS) stack down
	-$(PROGNOS) cluster down
	rm -rf .prognos .pytest_cache .mypy_cache .ruff_cache bench-results
