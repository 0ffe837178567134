# Two commands matter: `make run` (everything up + the demo) and `make test` (everything up + every test).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
# Python sees the same settings as the stack scripts (ports, PYTHONPATH): both come from deploy/local/env.sh.
WITH_ENV := source deploy/local/env.sh &&
PYTEST_ARGS ?=

.PHONY: help venv up stop status clean run demo ops test test-unit test-integration test-e2e bench contracts lint services traces metrics k8s

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pip install -q -e ".[dev]"
	@touch $@

venv: $(VENV)/.installed ## create the virtualenv with every Python dependency

up: venv ## start PostgreSQL and Kafka (installing what is missing, and Chromium for the browser tests), create topics and databases
	@bash deploy/local/postgres.sh up
	@bash deploy/local/kafka.sh up
	@bash deploy/local/chromium.sh up
	@bash deploy/local/prometheus.sh install
	@$(WITH_ENV) $(PY) -m deploy.local.bootstrap

services: up ## start every service and the simulators in the background (supervisord restarts one that dies)
	@bash deploy/local/services.sh up

run: traces services ## everything up (with the trace viewer), then the demo feed through the whole flow, with a summary
	@$(WITH_ENV) $(PY) -m deploy.local.demo
	@echo "[desk] review desk: http://127.0.0.1:$${CONSOLE_PORT:-8080}/  development sign-in on its first page:"
	@echo "[desk]   clerk 310110 / 310110001, district reviewer 310110, or ops (choose the role and area there)"

demo: ## push the demo feed again through a running stack
	@$(WITH_ENV) $(PY) -m deploy.local.demo

ops: ## the operations view of the running stack: lag, dead letters, queues, payments, reconciliation
	@$(WITH_ENV) $(PY) -m deploy.local.ops

traces: ## the trace viewer: Zipkin (jar from Maven Central) in memory on loopback; services started later export to it
	@bash deploy/local/zipkin.sh up

metrics: ## Prometheus (Debian's) scraping every service, with the alert rules of deploy/prometheus, on loopback
	@bash deploy/local/prometheus.sh up

stop: ## stop the services, Zipkin and Prometheus (when running), Kafka and PostgreSQL
	@bash deploy/local/services.sh stop
	@bash deploy/local/zipkin.sh stop
	@bash deploy/local/prometheus.sh stop
	@bash deploy/local/kafka.sh stop
	@bash deploy/local/postgres.sh stop

status: ## what is running
	@bash deploy/local/postgres.sh status
	@bash deploy/local/kafka.sh status
	@bash deploy/local/services.sh status
	@bash deploy/local/zipkin.sh status
	@bash deploy/local/prometheus.sh status

clean: stop ## stop everything and delete local data and logs (keeps downloaded jars)
	@bash deploy/local/postgres.sh clean
	@rm -rf .run
	@echo "[stack] local data removed"

test: up ## every test: unit, integration (real Kafka + PostgreSQL) and end to end
	@$(WITH_ENV) $(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv ## unit tests only (no infrastructure)
	@$(WITH_ENV) $(PY) -m pytest -m "not integration and not e2e" $(PYTEST_ARGS)

test-integration: up ## integration tests only
	@$(WITH_ENV) $(PY) -m pytest -m integration $(PYTEST_ARGS)

test-e2e: up ## end-to-end tests only
	@$(WITH_ENV) $(PY) -m pytest -m e2e $(PYTEST_ARGS)

bench: up ## the benchmark of DESIGN.md section 10 (see bench/README.md)
	@$(WITH_ENV) $(PY) -m bench $(BENCH_ARGS)

contracts: venv ## regenerate contracts/events/*.schema.json and contracts/openapi/*.json from the code
	@$(WITH_ENV) $(PY) -m shared.contracts.generate

k8s: venv ## render the Helm chart (deploy/k8s) and validate every resource against its schema (also run by make test)
	@$(WITH_ENV) $(PY) -m deploy.k8s.validate

lint: venv ## ruff, strict mypy (shared and every service package) and import rules (also run by make test)
	@$(WITH_ENV) bash deploy/local/lint.sh
