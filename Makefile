# Two commands for a newcomer: `make run` (the whole stack, with demo data) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# `make bench` also needs the bench extra (matplotlib); `make test` never installs it.
BENCH_STAMP := $(VENV)/.bench-installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# axe-core for the browser tests' accessibility scans: pinned in its own small npm project.
AXE := tests/browser/axe
AXE_STAMP := $(AXE)/node_modules/.installed-$(shell sha1sum $(AXE)/package-lock.json | cut -c1-12)

.PHONY: run test test-unit test-fast chaos bench bench-quick bench-parts deps clean compose-test translations

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

$(AXE_STAMP): $(AXE)/package.json $(AXE)/package-lock.json
	npm ci --prefix $(AXE) --no-audit --no-fund
	@touch $@

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	@rm -f $(VENV)/.bench-installed-*
	@touch $@

## run: start PostgreSQL, Kafka and the three services in the foreground (Ctrl-C stops all)
run: $(STAMP)
	@$(PY) -m infra.stack

## test: every test: unit, integration (real PostgreSQL + Kafka), end-to-end and browser
test: $(STAMP) $(AXE_STAMP)
	$(PY) -m pytest

## test-unit: pure logic only, no servers
test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

## bench: the pipeline benchmark (issue 15): its own stack, each measure beside its same-run ceiling, one table, written to docs/measurements.md and drawn in docs/bench/latency.png
bench: $(BENCH_STAMP)
	$(PY) -m tests.bench.pipeline

## bench-quick: the same at small sizes, to try it out (written under .state/bench-quick/)
bench-quick: $(BENCH_STAMP)
	$(PY) -m tests.bench.pipeline --quick

## bench-parts: the component benches, each with its ceiling (triage engine, queue at 1M rows, message sender, slot -> waitlisted patient's email); bench_intake_post.py and bench_worker_drain.py run inside `make bench`
bench-parts: $(STAMP)
	$(PY) tests/bench/bench_triage_engine.py
	$(PY) tests/bench/bench_queue.py
	$(PY) tests/bench/bench_messages.py
	$(PY) tests/bench/bench_waitlist_message.py

## chaos: the full fault suite (100,000 reports or 30 minutes, every fault in turn, again and again), on one broker, then on three (docs/kafka-cluster.md)
chaos: $(STAMP)
	$(PY) -m tests.chaos --reports 100000 --minutes 30

## compose-test: docker-compose.yml run for real through Podman: images, up, flow, crashes, down (docs/compose.md)
compose-test: $(STAMP)
	$(PY) -m infra.containers.compose_test

## translations: after changing a patient-facing text: the kiosk's, triage's and the patient messages' catalogues re-extracted, merged (new texts untranslated, changed ones fuzzy: both left out of the .mo, so shown in English until translated) and compiled (docs/languages.md)
translations: $(STAMP)
	$(PY) -m services.intake.kiosk_catalogue
	$(PY) -m services.triage.rules.catalogue
	$(PY) -m services.intake.messages.catalogue

## deps: Debian packages the stack and the browser tests need (run as root on a fresh machine)
deps:
	bash infra/install-debian-deps.sh

clean:
	rm -rf .state
