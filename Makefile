# Content Studio: `make run` (the studio on the embedded default) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?= -n 2
# `make test` runs the job tests a second time on django-q2's Redis broker when Redis answers.
REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install run test bench chaos lint browser clean

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
	@echo "==> Starting the job workers (qcluster) and the video engine's sweep"
	@echo "Content Studio on http://$(HOST):$(PORT)/  (admin/admin on a fresh embedded install)"
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} sh -c '$(PY) manage.py qcluster & worker=$$!; \
		$(PY) manage.py run_video_engine & engine=$$!; \
		trap "kill $$worker $$engine 2>/dev/null" EXIT INT TERM; \
		$(PY) manage.py runserver --noreload $(HOST):$(PORT)'

# Browser tests drive Debian's chromium; install it when missing and we may (root).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = "0" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; \
	fi

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)
	@if $(PY) -c "import redis; redis.from_url('$(REDIS_URL)').ping()" 2>/dev/null; then \
		echo "==> The job tests again, on the Redis broker ($(REDIS_URL))"; \
		Q_BROKER_URL=$(REDIS_URL) $(PY) -m pytest -m jobs -p no:xdist -q; \
	else \
		echo "==> Redis does not answer at $(REDIS_URL): job tests on the Redis broker skipped"; \
	fi

bench: $(STAMP)
	$(PY) -m benchmarks

# Faults injected for real, 20 runs each, then reconcile: a benchmark-style run, not a test.
chaos: $(STAMP)
	$(PY) -m benchmarks.chaos

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) db.sqlite3 media staticfiles .pytest_cache
