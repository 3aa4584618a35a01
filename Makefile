# 安居助手: the front door. `make help` lists the commands; the README quotes the same ones.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV       := .venv
PY         := $(VENV)/bin/python
RASA       := $(VENV)/bin/rasa
STAMP      := $(VENV)/.installed-$(shell sha256sum requirements.lock | cut -c1-12)
# the gateway's own virtualenv: the public door on a current aiohttp, apart from Rasa's pins (README, Dependencies)
GW_VENV    := .venv-gateway
GW_PY      := $(GW_VENV)/bin/python
GW_STAMP   := $(GW_VENV)/.installed-$(shell sha256sum requirements-gateway.lock | cut -c1-12)
MODEL      := models/anju.tar.gz
RASA_PORT    ?= 5005
ACTIONS_PORT ?= 5055

# quiet third-party noise; no telemetry leaves the machine
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL   := 2
export PYTHONWARNINGS         := ignore
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install train layers run migrate demo-data import bench-import bench soak staff-admin staff-user shell test test-dialogues test-unit validate test-nlu test-conversations lint lint-deploy audit lock clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-20s %s\n", $$1, $$2}'

install: $(STAMP) $(GW_STAMP) ## create the Python 3.10 virtualenvs (Rasa's, the gateway's) and install their pinned dependencies

$(STAMP): requirements.lock
	@set -e; if [ ! -x $(PY) ]; then py=$$(tools/find-python310); echo "Creating $(VENV) with $$py"; "$$py" -m venv $(VENV); fi
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@rm -f $(VENV)/.installed-*; touch $@

$(GW_STAMP): requirements-gateway.lock
	@set -e; if [ ! -x $(GW_PY) ]; then py=$$(tools/find-python310); echo "Creating $(GW_VENV) with $$py"; "$$py" -m venv $(GW_VENV); fi
	$(GW_PY) -m pip install --quiet --disable-pip-version-check -r requirements-gateway.lock
	$(GW_PY) -m pip check
	@rm -f $(GW_VENV)/.installed-*; touch $@

# what the model is built from: a newer file rebuilds it (Rasa's cache keeps the parts that did not change)
TRAIN_INPUTS = config.yml domain.yml data policies knowledge/places.yml bot/text_normalization.py

train: install ## train the model when its files changed, or when Rasa's fingerprints (settings included) say so
	@if [ -f $(MODEL) ] && [ -z "$$(find $(TRAIN_INPUTS) -newer $(MODEL) -type f -not -path "*/__pycache__/*" 2>/dev/null | head -1)" ] && \
	  $(RASA) train --dry-run --skip-validation --out models >/dev/null 2>&1; then \
	  echo "Model up to date: $(MODEL)"; else \
	  echo "Training $(MODEL)"; $(RASA) train --skip-validation --fixed-model-name anju --out models; fi

layers: install ## draw the imports and check that they run one way: core <- clients <- staff <- web; actions, policies
	$(VENV)/bin/lint-imports

run: train demo-data ## start the action server, the Rasa server(s) (ANJU_RASA_REPLICAS) and the gateway until Ctrl-C
	@echo "安居助手 chat page:    http://localhost:$${ANJU_GATEWAY_PORT:-8080}/"
	@echo "         kiosk:        http://localhost:$${ANJU_GATEWAY_PORT:-8080}/kiosk"
	@echo "         WeChat:       http://localhost:$${ANJU_GATEWAY_PORT:-8080}/wechat (set WECHAT_TOKEN first)"
	@echo "         Rasa:         http://localhost:$(RASA_PORT)/webhooks/gateway/webhook (loopback only, with the token)"
	@echo "Ctrl-C stops everything."
	@$(PY) -m bot.conversations --prune
	@ANJU_RASA_URL=http://127.0.0.1:$(RASA_PORT) ANJU_ACTIONS_URL=http://127.0.0.1:$(ACTIONS_PORT) $(PY) -m bot.layout
	ANJU_MODEL=$(MODEL) RASA_PORT=$(RASA_PORT) ACTIONS_PORT=$(ACTIONS_PORT) $(VENV)/bin/honcho start -f run/Procfile

migrate: install ## upgrade the database (DATABASE_URL, default run/anju.sqlite3) to the current schema revision
	@$(PY) -m bot.migrate

demo-data: install migrate ## load the fictitious sample ledger in demo/ into the database, if it has no households yet
	@$(PY) -m bot.importer --households demo/households.csv --members demo/members.csv --only-if-empty

import: install migrate ## import a ledger: make import HOUSEHOLDS=户.csv MEMBERS=成员.xlsx (CSV in UTF-8/GBK, or XLSX)
	@test -n "$(HOUSEHOLDS)$(MEMBERS)" || { echo "usage: make import HOUSEHOLDS=path MEMBERS=path"; exit 2; }
	$(PY) -m bot.importer $(if $(HOUSEHOLDS),--households "$(HOUSEHOLDS)") $(if $(MEMBERS),--members "$(MEMBERS)")

staff-admin: install ## create the first admin of the staff console: make staff-admin STAFF_USER=name
	@test -n "$(STAFF_USER)" || { echo "usage: make staff-admin STAFF_USER=name"; exit 2; }
	$(PY) -m bot.staff create-admin "$(STAFF_USER)"

staff-user: install ## create a staff account from the command line: make staff-user STAFF_USER=name
	@test -n "$(STAFF_USER)" || { echo "usage: make staff-user STAFF_USER=name"; exit 2; }
	$(PY) -m bot.staff create-user "$(STAFF_USER)"

conversations: install ## what conversations are kept (ANJU_TRACKER_URL) and for how long; PRUNE=1 deletes those past it
	@$(PY) -m bot.conversations $(if $(PRUNE),--prune)

shell: train ## talk to the assistant in this terminal
	@SANIC_HOST=127.0.0.1 $(RASA) run actions --actions actions --port $(ACTIONS_PORT) --quiet & pid=$$!; \
	trap "kill $$pid 2>/dev/null" EXIT INT TERM HUP; \
	$(RASA) shell --model $(MODEL) --endpoints endpoints.yml --quiet

test: install lint audit test-unit train validate test-nlu test-conversations ## everything below, as CI runs it
	@mkdir -p results; rc=0; TEST_POSTGRES_URL=$$(tools/test-postgres start) TEST_REDIS_URL=$$(tools/test-redis start) ANJU_MODEL=$(MODEL) \
	  $(PY) -m pytest -q tests -m e2e --junitxml=results/e2e.xml || rc=$$?; \
	  $(PY) tools/dialogue_report.py results/e2e.xml; exit $$rc

SOAK_CLIENTS ?= 20
SOAK_MINUTES ?= 20
soak: train ## SOAK_CLIENTS (20) conversations at once for SOAK_MINUTES (20) on loopback: errors, latency, memory growth
	$(PY) tools/soak.py --clients $(SOAK_CLIENTS) --minutes $(SOAK_MINUTES)

test-dialogues: train ## residents' multi-turn conversations (tests/dialogues) against the real servers; prints the pass rate
	@mkdir -p results; rc=0; TEST_POSTGRES_URL=$$(tools/test-postgres start) TEST_REDIS_URL=$$(tools/test-redis start) ANJU_MODEL=$(MODEL) \
	  $(PY) -m pytest -q tests -m dialogues --junitxml=results/dialogues.xml || rc=$$?; \
	  $(PY) tools/dialogue_report.py results/dialogues.xml; exit $$rc

test-unit: install ## unit tests, against SQLite and a throwaway PostgreSQL and Redis; the gateway's (tests/bot) in its virtualenv
	TEST_POSTGRES_URL=$$(tools/test-postgres start) TEST_REDIS_URL=$$(tools/test-redis start) \
	  $(PY) -m pytest -q tests -m "not e2e" --ignore=tests/bot
	TEST_POSTGRES_URL=$$(tools/test-postgres start) TEST_REDIS_URL=$$(tools/test-redis start) \
	  $(GW_PY) -m pytest -q tests/bot -m "not e2e"

validate: install ## rasa data validate, warnings are failures
	$(RASA) data validate --fail-on-warnings --quiet

test-nlu: train ## score the model on the held-out split; fails under macro-F1 0.94 (report in results/nlu)
	$(RASA) test nlu --nlu tests/nlu --model $(MODEL) --out results/nlu --quiet
	$(PY) tools/check_nlu_report.py results/nlu/intent_report.json --min-macro-f1 0.94

test-conversations: train ## YAML conversation tests, every prediction must be right
	$(RASA) test core --stories tests/conversations --model $(MODEL) --out results/conversations \
	  --fail-on-prediction-errors --quiet

bench: train ## benchmarks in one run: results/bench/report.md with figures (QUICK=1 shorter, TRAIN=1 times training)
	$(PY) -m tools.bench $(if $(QUICK),--quick) $(if $(TRAIN),--train) $(if $(ATTACH),--attach)

bench-import: install ## time importing a 1773-household ledger into SQLite and PostgreSQL (prints figures)
	TEST_POSTGRES_URL=$$(tools/test-postgres start) $(PY) tools/bench_import.py

lint: install lint-deploy ## ruff over the Python code, the import layers, and the deployment files
	$(VENV)/bin/ruff check actions bot policies tests tools/*.py tools/bench
	$(VENV)/bin/ruff format --check actions bot policies tests tools/*.py tools/bench
	$(VENV)/bin/lint-imports --no-cache

lint-deploy: install ## deploy/ (systemd units, Kubernetes manifests, anju.env.example) and the Dockerfile, offline
	$(PY) tools/lint_deploy.py

audit: install ## known vulnerabilities in both locks: pip-audit (PyPI's advisories) and security/known-vulnerabilities.txt
	$(GW_PY) tools/audit.py requirements.lock requirements-gateway.lock

lock: ## re-resolve requirements.in and requirements-gateway.in into their locks (needs the registry; takes minutes)
	@py=$$(tools/find-python310); rm -rf /tmp/anju-lock && "$$py" -m venv /tmp/anju-lock && \
	/tmp/anju-lock/bin/pip install --quiet -r requirements.in && \
	{ echo "# Generated by 'make lock' from requirements.in with Python 3.10; every install resolves exactly this set."; \
	  /tmp/anju-lock/bin/pip freeze --all | grep -v '^pip=='; } > requirements.lock
	@py=$$(tools/find-python310); rm -rf /tmp/anju-gw-lock && "$$py" -m venv /tmp/anju-gw-lock && \
	/tmp/anju-gw-lock/bin/pip install --quiet -r requirements-gateway.in && \
	{ echo "# Generated by 'make lock' from requirements-gateway.in with Python 3.10: the gateway's virtualenv (.venv-gateway)."; \
	  /tmp/anju-gw-lock/bin/pip freeze --all | grep -v '^pip=='; } > requirements-gateway.lock

clean: ## remove trained models and test results (keeps the virtualenv)
	rm -rf models results .pytest_cache .rasa
