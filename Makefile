# Mend: make run (start a demo region locally), make test (the whole suite), make bench (figures).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find proto -name '*.proto')

.PHONY: install proto infra run test test-unit bench migrate clean

install: $(STAMP) build/gen/.stamp

$(STAMP): requirements.lock services/common/pyproject.toml services/referrals/pyproject.toml services/cases/pyproject.toml services/risk/pyproject.toml services/notifications/pyproject.toml services/scheduling/pyproject.toml cli/pyproject.toml
	scripts/bootstrap-venv.sh $(VENV)
	touch $(STAMP)

# Generated stubs are built here, never edited by hand.
build/gen/.stamp: $(PROTOS) $(STAMP)
	rm -rf build/gen && mkdir -p build/gen
	$(PY) -m grpc_tools.protoc -Iproto --python_out=build/gen --pyi_out=build/gen --grpc_python_out=build/gen $(PROTOS)
	touch build/gen/.stamp

proto: build/gen/.stamp

# RabbitMQ (with its management API) and PostgreSQL: started, or installed and started, if absent.
infra:
	scripts/ensure-rabbitmq.sh
	scripts/ensure-postgres.sh
	scripts/ensure-fonts.sh

migrate: install
	$(PY) -m mend_cli.devstack migrate

run: install
	scripts/ensure-rabbitmq.sh
	scripts/ensure-fonts.sh
	$(PY) -m mend_cli.devstack run

test: install infra
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest services/*/tests/unit -q

bench: install infra
	$(PY) bench/run.py

clean:
	rm -rf build var .pytest_cache
