# SaniGrid: `make run` serves the demo county seat, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 5000
FLASK := $(PY) -m flask --app app
STAMP := $(VENV)/.installed

.PHONY: run test setup system-deps db lint bench clean demo-data migration

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

db: setup
	$(FLASK) init-db
	$(FLASK) seed-demo

run: db
	@echo "SaniGrid: http://127.0.0.1:$(PORT)  (演示账号密码见上方)"
	$(FLASK) run --host 127.0.0.1 --port $(PORT)

# Chromium, poppler-utils and a CJK font for the browser and PDF tests: installed when root
# or passwordless sudo may, else one line naming the apt-get command. `make run` needs none.
system-deps:
	@sh scripts/system-deps.sh

test: system-deps setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check app gis tests bench

bench: setup
	for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

demo-data: setup
	$(PY) -m app.services.ops.demo_files layers/demo

clean:
	rm -rf $(VENV) instance/*.db .pytest_cache

# Until the first release there is one migration; regenerate it after changing models.
migration: setup
	rm -f migrations/versions/*_initial_schema.py /tmp/sanigrid_migration.db
	DATABASE_URL=sqlite:////tmp/sanigrid_migration.db $(FLASK) db migrate -m "initial schema"
	rm -f /tmp/sanigrid_migration.db
