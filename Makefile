# Content Studio: `make run` (the studio on the embedded default) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?= -n 2

.PHONY: install run test bench lint browser clean

$(STAMP): pyproject.toml
	@echo "==> Creating the virtualenv in $(VENV) (first run only)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> Installing Content Studio and its dependencies (about a minute on a first run)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The studio and its job worker on the embedded default: SQLite, local files, offline provider.
run: $(STAMP)
	@echo "==> Migrating the database"
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py migrate --noinput
	@echo "==> Loading the demo topics"
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py load_demo
	@echo "Content Studio on http://$(HOST):$(PORT)/  (admin/admin on a fresh embedded install)"
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} sh -c '$(PY) manage.py qcluster & worker=$$!; \
		trap "kill $$worker 2>/dev/null" EXIT INT TERM; \
		$(PY) manage.py runserver --noreload $(HOST):$(PORT)'

# Browser tests drive Debian's chromium; install it when missing and we may (root).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = "0" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; \
	fi

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) db.sqlite3 media staticfiles .pytest_cache
