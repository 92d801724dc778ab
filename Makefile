VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format bench clean policy-check

$(STAMP): requirements.txt requirements-dev.txt requirements-aws.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	# `plugins/` on the venv's path, so `python -m accessbot` works from anywhere.
	$(PY) -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "accessbot-plugins.pth").write_text("$(CURDIR)/plugins\n")'
	touch $(STAMP)

## Start the bot on the Text backend with the example policies (Slack if SLACK_BOT_TOKEN is set).
run: $(STAMP)
	mkdir -p data
	$(VENV)/bin/errbot -c config.py

## Set up, then run the whole test suite.
test: $(STAMP)
	$(PY) -m pytest -q

## What a policy repository's CI runs: load every policy as the bot does, then its tests.
policy-check: $(STAMP)
	$(PY) -m accessbot check policies
	$(PY) -m accessbot test policies policies/tests.yaml

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	for script in bench/bench_*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV)
