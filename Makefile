# Everything a fresh clone needs: `make run` and `make test` install what they use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR):$(CURDIR)/gen:$(CURDIR)/clients/python

.PHONY: install run seed reset-operator-password test lint proto bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

## Start the three services on an embedded PostgreSQL (or DATABASE_URL).
run: install
	@$(PY) -m devtools.run

## Three demo tenants with owners, on a running `make run`; safe to repeat.
seed: install
	@$(PY) -m devtools.seed

## Gives `make run`'s operator the password `make run` announces; ends its sessions.
reset-operator-password: install
	@$(PY) -m devtools.operator_password

## The whole suite against a real PostgreSQL, then the linters.
test: install
	$(PY) -m pytest
	$(MAKE) lint

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy kit services devtools gateway benchmarks clients/python/tenantry_client examples

PEER_VENV := benchmarks/.peer-venv

# The peer monolith's own environment: FastAPI never enters Tenantry's.
$(PEER_VENV)/.installed: benchmarks/peer/requirements.txt
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --quiet -r benchmarks/peer/requirements.txt
	touch $@

## Benchmarks that print figures, each on a throwaway Tenantry on loopback (about 12 minutes).
bench: install $(PEER_VENV)/.installed
	@command -v wrk >/dev/null && command -v h2load >/dev/null \
		|| apt-get install -y wrk nghttp2-client || (apt-get update && apt-get install -y wrk nghttp2-client)
	$(PY) -m benchmarks.reads
	$(PY) -m benchmarks.login_burst
	$(PY) -m benchmarks.logins
	$(PY) -m benchmarks.refresh
	$(PY) -m benchmarks.audit_ingest
	$(PY) -m benchmarks.validation
	$(PY) -m benchmarks.api_keys

## Regenerate gen/ from protos/.
proto: install
	$(PY) -m devtools.protogen

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
