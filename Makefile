PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench bench-million bench-load bench-sqlite bench-audit-10m lint clean translations

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The browser tests' node tools (OpenID Connect provider, axe-core). Without npm
# those tests skip locally, saying so; CI installs node first (.ci/run).
NODE_TOOLS := tests/browser/node/node_modules/.package-lock.json
$(NODE_TOOLS): tests/browser/node/package.json tests/browser/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/browser/node --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm not found: tests/browser will skip (apt-get install -y nodejs npm)"; \
	fi

demo: $(VENV)/.installed
	ONESTORY_ENV=development $(BIN)/onestory demo --population

test: $(VENV)/.installed-test $(NODE_TOOLS)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(VENV)/.installed-test
	$(BIN)/python bench/shared_record.py
	$(BIN)/python bench/audit_log.py
	$(BIN)/python bench/not_found.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/reports.py
	$(BIN)/python bench/chain_hold.py

# The encrypted shared-record read at 1 000 and 1 000 000 families, SQLite then
# PostgreSQL (bench/README.md): bulk loads of a million families, about 35 min in all.
bench-million: $(VENV)/.installed-test
	$(BIN)/python bench/shared_record.py --million
	$(BIN)/python bench/shared_record.py --million --postgres

# Audit verification at 1 and then 10 million entries, on both backends (bench/README.md):
# about 4 GB of disk per backend and several minutes of building.
bench-audit-10m: $(VENV)/.installed-test
	$(BIN)/python bench/audit_log.py --ten-million

# onestory serve under wrk on a durable PostgreSQL, against a floor (bench/README.md);
# installs Debian's wrk when it is missing. BENCH_LOAD_ARGS="--families 200000 --duration 30"
bench-load: $(VENV)/.installed-test
	$(BIN)/python bench/load.py $(BENCH_LOAD_ARGS)

# onestory serve on the embedded default (SQLite) under 16 mixed clients with wrk: p99 against
# the median, the slowest request (bench/README.md). BENCH_SQLITE_ARGS="--duration 60"
bench-sqlite: $(VENV)/.installed-test
	$(BIN)/python bench/sqlite_load.py $(BENCH_SQLITE_ARGS)

# The family page's message catalogues (coordination/translations, see README
# "Translations"): extract the English strings, merge them into each language's
# .po (new ones arrive empty, and tests/unit/test_translations.py fails until
# each is translated), compile the .mo files that are committed with them.
translations: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k lazy_gettext --add-comments=Translators: \
		--project=OneStory --version=0.1 --msgid-bugs-address=maintainers@onestory.invalid \
		-o coordination/translations/messages.pot .
	$(BIN)/pybabel update -i coordination/translations/messages.pot -d coordination/translations \
		--no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d coordination/translations --statistics

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache \
		tests/browser/node/node_modules tests/browser/artefacts
