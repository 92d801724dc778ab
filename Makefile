VENV    := .venv
PYTHON3 ?= python3
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip install -q --disable-pip-version-check
# Two stamps: `make run` installs only what the bot needs (requirements.txt); `make test`,
# `lint` and `bench` add the test and AWS tools (requirements-dev.txt) on top.
RUNTIME := $(VENV)/.runtime-stamp
DEV     := $(VENV)/.dev-stamp

.PHONY: run run-oncall venv test lint audit format bench clean policy-check postgres-server deploy-check

# The Python check first: "accessbot needs Python 3.11 or newer; this is 3.10.12", not an
# ImportError later (plugins/accessbot/pyversion.py runs on any Python 3).
$(RUNTIME): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON3) plugins/accessbot/pyversion.py
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	@$(PY) plugins/accessbot/pyversion.py
	$(PIP) -r requirements.txt
	# `plugins/` on the venv's path, so `python -m accessbot` works from anywhere.
	$(PY) -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "accessbot-plugins.pth").write_text("$(CURDIR)/plugins\n")'
	touch $@

$(DEV): $(RUNTIME) requirements-dev.txt requirements-aws.txt requirements-report.txt
	$(PIP) -r requirements-dev.txt
	touch $@

## Start the bot on the Text backend with the example policies (Slack if SLACK_BOT_TOKEN is set).
run: $(RUNTIME)
	@$(PY) plugins/accessbot/pyversion.py
	mkdir -p data
	$(VENV)/bin/errbot -c config.py

## Break-glass offline: the local on-call stand-in (scripts/fake_pagerduty.py; ONCALL is on
## call for policies/break_glass.py's schedule), then the bot as `make run`, pointed at it.
ONCALL ?= carol@example.com
run-oncall: $(RUNTIME)
	@$(PY) plugins/accessbot/pyversion.py
	mkdir -p data
	$(PY) scripts/fake_pagerduty.py --port 8799 --on-call $(ONCALL) --user bob@example.com \
		>data/fake_pagerduty.log 2>&1 & standin=$$!; trap 'kill $$standin' EXIT INT TERM; \
	ACCESS_PAGERDUTY_URL=http://127.0.0.1:8799 ACCESS_PAGERDUTY_TOKEN=local-stand-in \
		$(VENV)/bin/errbot -c config.py

## Only the virtualenv with the runtime requirements: what deploy/accessbot.service runs.
venv: $(RUNTIME)

## The Dockerfile's pip install lines, run in a clean virtualenv, then the bot started from
## it (this machine may build no image; CI runs this).
deploy-check:
	python3 deploy/check_install.py

## A PostgreSQL server for the tests and benches (they start a throwaway cluster in /tmp):
## Debian's package, installed when no initdb is found and we may use apt-get. Without
## one, the PostgreSQL tests skip and say why.
postgres-server:
	@if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's postgresql package for the tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql >/dev/null; } \
			|| echo "could not install postgresql: the PostgreSQL tests will skip"; \
	else echo "no PostgreSQL server and no apt-get as root: the PostgreSQL tests will skip"; fi

## Set up, then run the whole test suite.
test: $(DEV) postgres-server
	$(PY) -m pytest -q

## What a policy repository's CI runs: load every policy as the bot does, then its tests.
policy-check: $(RUNTIME)
	$(PY) -m accessbot check policies
	$(PY) -m accessbot test policies policies/tests.yaml

lint: $(DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# The layers of ARCHITECTURE.md (.importlinter); tests/test_import_contracts.py too.
	$(VENV)/bin/lint-imports --no-cache
	$(PY) scripts/pip_audit.py

## Known advisories in the installed dependencies (pip-audit). Offline, or where PyPI's
## JSON API answers nothing, it says that nothing was audited and does not fail.
audit: $(DEV)
	$(PY) scripts/pip_audit.py

format: $(DEV)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(DEV) postgres-server
	for script in bench/bench_*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV)
