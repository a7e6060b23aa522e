# The two commands a newcomer needs: `make demo` and `make test`. Everything else is set up by them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CLI := $(BIN)/order-saga
EXTRAS := lambda,edge,ops,console,cdk,dev

.DEFAULT_GOAL := help
.PHONY: help install lock services-up services-down migrate check run demo tools dashboard test test-unit test-integration lint format clean protos protos-check protos-lint protos-breaking aws-up aws-down bench

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(BIN)/activate:
	@$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"; exit 1; }

$(VENV)/.installed: $(BIN)/activate pyproject.toml constraints.txt
	$(BIN)/pip install -q --upgrade pip==25.3
	$(BIN)/pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	@touch $@

install: $(VENV)/.installed ## Create the virtualenv with the pinned dependencies

lock: $(BIN)/activate ## Re-pin every dependency into constraints.txt (after editing pyproject.toml)
	$(BIN)/pip install -q uv==0.13.9
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 \
		--no-header --no-annotate -o constraints.txt

services-up: install ## Start the project-private MariaDB and Redis (installs them with apt if needed)
	$(CLI) services up

services-down: ## Stop every part of the local stack, leaving no process of ours behind
	@if [ -x $(CLI) ]; then $(CLI) down; else echo "nothing to stop (no virtualenv)"; fi

aws-up: migrate ## Start the payment gateway server, the token issuer and the local AWS stack (moto + the local Lambda invoker), and wire them
	$(CLI) aws up

aws-down: ## Stop the local AWS stack
	@if [ -x $(CLI) ]; then $(CLI) aws down; else echo "nothing to stop (no virtualenv)"; fi

migrate: services-up ## Apply the schema migrations
	$(CLI) migrate

check: migrate ## Connect to every part with the current settings
	$(CLI) check

run: install ## Start the whole local stack (MariaDB, Redis, the gateway, the token issuer, moto, the edge on 127.0.0.1:50051) until Ctrl-C
	$(CLI) run

demo: install ## Start the stack if needed and run the demo scenarios through the gRPC API
	$(CLI) demo

tools: install ## Install the programs the tests drive (Graphviz, Chromium and its driver, Prometheus) when missing
	$(BIN)/python -c 'from devstack.services import TEST_TOOLS, ensure_packages; ensure_packages(TEST_TOOLS)'

test: migrate layers tools ## Run every tier of tests (unit, integration, e2e, infra)
	$(BIN)/pytest

RUNS ?= 5
.PHONY: test-under-load
test-under-load: migrate layers tools ## The whole suite RUNS times in a row (5) beside 2 busy CPU processes: a slow CI machine
	@python3 -c 'while 1: pass' & one=$$!; python3 -c 'while 1: pass' & two=$$!; \
	trap 'kill $$one $$two' EXIT; \
	for run in $$(seq 1 $(RUNS)); do \
		echo "run $$run of $(RUNS), load: $$(cut -d' ' -f1-3 /proc/loadavg)"; $(BIN)/pytest -q -p no:cacheprovider || exit 1; \
	done

test-unit: install ## Only the unit tests (no network)
	$(BIN)/pytest tests/unit

test-integration: migrate ## Only the integration tests (MariaDB, Redis, moto)
	$(BIN)/pytest tests/integration

bench: migrate build/layers/host-deps.built ## Run every benchmark briefly and print one table (figure, baseline, ratio, goal)
	$(BIN)/python benchmarks/bench.py

# `make test` runs the fuzzer derandomized (the same inputs every run); `make fuzz` picks a random
# seed and prints it, and FUZZ_SEED=<seed> runs those inputs again.
.PHONY: fuzz
FUZZ_REQUESTS ?= 2000
FUZZ_SEED ?=
fuzz: migrate ## The edge fuzzer's long run: FUZZ_REQUESTS per property (5 x 2000 = 10,000 requests), counts by code
	@seed=$(FUZZ_SEED); seed=$${seed:-$$(python3 -c 'import secrets; print(secrets.randbelow(2**32))')}; \
	replay="fuzz seed: $$seed (replay: make fuzz FUZZ_SEED=$$seed)"; echo "$$replay"; \
	FUZZ_SEED=$$seed FUZZ_REQUESTS=$(FUZZ_REQUESTS) FUZZ_REPORT=$(CURDIR)/.devstack/fuzz-report.txt \
		$(BIN)/pytest tests/integration/edge/test_fuzz.py -q -p no:cacheprovider -o timeout=0 \
		> .devstack/fuzz.log 2>&1 || { tail -40 .devstack/fuzz.log; echo "$$replay"; exit 1; }
	@cat .devstack/fuzz-report.txt

lint: install protos-check ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## Format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: services-down ## Stop the services and remove every generated file
	rm -rf $(VENV) .devstack build cdk.out .pytest_cache .mypy_cache .ruff_cache

protos: install ## Regenerate the gRPC stubs in grpc_edge/generated/ from protos/
	$(BIN)/python -c 'from devstack.protogen import generate; generate()'

dashboard: install ## Regenerate observability/grafana-dashboard.json from observability/dashboard.py
	$(BIN)/python -m observability.dashboard

protos-check: install ## Fail when the committed stubs drift from protos/
	$(BIN)/python -c 'from devstack.protogen import check; check()'

BUF_VERSION := 1.75.0
protos-lint: ## buf's lint rules on protos/ (buf from the npm registry, via npx)
	cd protos && npx --yes @bufbuild/buf@$(BUF_VERSION) lint

# The contract may grow, never break: compare protos/ with main's (from a git worktree, point
# BUF_AGAINST at the main checkout, e.g. BUF_AGAINST='../../../main/.git#branch=main,subdir=protos').
BUF_AGAINST ?= ../.git#branch=main,subdir=protos
protos-breaking: ## buf breaking: protos/ against main's (wire and source compatible)
	cd protos && npx --yes @bufbuild/buf@$(BUF_VERSION) breaking --against '$(BUF_AGAINST)'

# The Lambda dependencies layer: the `lambda` extra at the pinned versions, as arm64 / Python 3.12
# wheels, without Docker. The shared layer is layers/common itself.
LAYER_DEPS := build/layers/deps
$(LAYER_DEPS).built: pyproject.toml constraints.txt | $(VENV)/.installed
	rm -rf $(LAYER_DEPS) && mkdir -p $(LAYER_DEPS)/python
	$(BIN)/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["lambda"]))' > $(LAYER_DEPS).txt
	$(BIN)/pip install -q --platform manylinux2014_aarch64 --only-binary=:all: --python-version 3.12 \
		--implementation cp --target $(LAYER_DEPS)/python -c constraints.txt -r $(LAYER_DEPS).txt
	@touch $@

# The same packages for this machine: the cold-start benchmark imports each handler with exactly
# what its layer holds (not the development environment, which has more, e.g. cryptography).
HOST_LAYER_DEPS := build/layers/host-deps
$(HOST_LAYER_DEPS).built: pyproject.toml constraints.txt | $(VENV)/.installed
	rm -rf $(HOST_LAYER_DEPS) && mkdir -p $(HOST_LAYER_DEPS)
	$(BIN)/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["lambda"]))' > $(HOST_LAYER_DEPS).txt
	$(BIN)/pip install -q --only-binary=:all: --target $(HOST_LAYER_DEPS) -c constraints.txt -r $(HOST_LAYER_DEPS).txt
	@touch $@

.PHONY: layers synth deploy destroy cost
layers: $(LAYER_DEPS).built ## Build the Lambda dependencies layer (arm64, Python 3.12, no Docker)

# The CDK command line, pinned; `-c env=prod` selects production (default dev), CDK_ARGS passes
# more context, which every environment needs: CDK_ARGS="-c emailSender=... -c
# paymentGatewayUrl=https://... -c customerCallbackUrls=https://...,<app scheme>://...".
CDK_ENV ?= dev
CDK := npx --yes aws-cdk@2.1148.1
synth: layers ## Synthesize the CloudFormation templates into cdk.out (offline, no Docker)
	$(CDK) synth -c env=$(CDK_ENV) $(CDK_ARGS) --quiet

deploy: layers ## Check the prerequisites, then deploy every stack to the current AWS account (docs/deploy.md)
	$(BIN)/python -m cdk.preflight -c env=$(CDK_ENV) $(CDK_ARGS)
	$(CDK) deploy -c env=$(CDK_ENV) $(CDK_ARGS) --all --require-approval broadening

ORDERS ?= 1000000
cost: synth ## The monthly estimate of CDK_ENV from cdk.out at ORDERS orders a month (docs/deploy.md)
	$(BIN)/python -m cdk.cost_estimate --cdk-out cdk.out --orders $(ORDERS)

destroy: ## Delete every stack of the environment (prod keeps its data: snapshots, retained logs)
	$(CDK) destroy -c env=$(CDK_ENV) $(CDK_ARGS) --all
