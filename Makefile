# Content Studio: `make run` (the studio on the embedded default) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
HOST ?= 127.0.0.1
PORT ?= 8000
# Four workers in the main run on two cores (each clones its test database and starts its
# servers): its tests spend much of their time waiting on servers, workers and leases, and
# with two workers the cores were idle half of the run (170 s; four: 127 s; six: 132 s, the
# cores busy throughout). The longest tests go first, handed out one at a time
# (tests/conftest.py), so none is left running alone at the end. The Redis run (beside the
# main one) is parallel too: each worker has its own queue.
PYTEST_ARGS ?= -n 4 --maxschedchunk 1
REDIS_PYTEST_ARGS ?= -n 2 --maxschedchunk 1
# `make test` runs the job tests a second time on django-q2's Redis broker when Redis answers.
REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install lock collectstatic run test durations bench chaos lint browser clean

# uv: on PATH, else as a module of $(PYTHON) (`pip install --user uv` puts it there).
FIND_UV = uv=$$(command -v uv || true); \
	if [ -z "$$uv" ] && $(PYTHON) -m uv --version >/dev/null 2>&1; then uv="$(PYTHON) -m uv"; fi

# Two locks: requirements.lock (what the studio runs on, as in production; all `make run`
# installs) and requirements-test.lock (the same versions plus the test extra). With uv:
# seconds on a first run. Without uv and no way to install it, plain venv + pip install the
# same lock (about a minute). The project itself is not installed: manage.py, pytest and
# the benchmarks run from the checkout.
define INSTALL_LOCK
	@$(FIND_UV); \
	if [ -z "$$uv" ]; then \
		echo "==> uv is not on PATH: installing it for $(PYTHON) (pip install --user uv)"; \
		if $(PYTHON) -m pip install --quiet --user uv 2>/dev/null \
			|| $(PYTHON) -m pip install --quiet uv 2>/dev/null; then uv="$(PYTHON) -m uv"; fi; \
	fi; \
	if [ -n "$$uv" ] && $$uv --version >/dev/null 2>&1; then \
		echo "==> Creating the virtualenv in $(VENV) ($$($$uv --version))"; \
		$$uv venv --quiet --allow-existing --python $(PYTHON) $(VENV) || exit 1; \
		echo "==> Installing the locked dependencies ($(1))"; \
		$$uv pip install --quiet --python $(PY) -r $(1) || exit 1; \
	else \
		echo "==> uv cannot run here: plain venv + pip instead (about a minute on a first run)"; \
		[ -x $(PY) ] || $(PYTHON) -m venv $(VENV) || exit 1; \
		$(PY) -m pip install --quiet --upgrade pip || exit 1; \
		$(PY) -m pip install --quiet -r $(1) || exit 1; \
	fi
	@touch $@
	@echo "==> Installed into $(VENV)"
endef

$(RUN_STAMP): pyproject.toml requirements.lock
	$(call INSTALL_LOCK,requirements.lock)

$(TEST_STAMP): pyproject.toml requirements-test.lock
	$(call INSTALL_LOCK,requirements-test.lock)

# Refresh both locks from pyproject.toml (the newest versions its bounds allow; commit them).
lock:
	@$(FIND_UV); \
	if [ -z "$$uv" ]; then echo "uv is needed: pip install uv"; exit 1; fi; \
	echo "==> Resolving pyproject.toml into requirements.lock, and with the test extra into requirements-test.lock"; \
	$$uv pip compile --quiet --universal --python-version 3.11 \
		--output-file requirements.lock pyproject.toml && \
	$$uv pip compile --quiet --universal --python-version 3.11 --extra test \
		--constraint requirements.lock --output-file requirements-test.lock pyproject.toml

# Bytecode for the installed packages, compiled once. Where PYTHONDONTWRITEBYTECODE is set (as
# on our machines) nothing writes it on import, so every Python process of a test run (each
# xdist worker, qcluster, manage.py subprocess, moto) compiled Django, botocore and moto
# again: `manage.py check` took 4.0 CPU-s instead of 1.6. The project's own modules are
# compiled before each test run (unchanged ones are skipped), and so are pytest's rewritten
# test modules (one collection with bytecode writing on): pytest writes them only where
# bytecode may be written, so each xdist worker and each run's controller rewrote every test
# module again (a collection took 3.2 CPU-s without them, 1.3 with them).
# Not compiled: what moto[server]'s extras install for services the suite never starts (its
# S3 server loads none of them), about 3,000 of the 7,800 modules: the compile took 9.1 s on
# two cores with them, 5.6 s without. Imported after all, they would just compile on import.
BYTECODE := $(VENV)/.bytecode-stamp
NOT_IMPORTED := /(sympy|mpmath|networkx|cfnlint|graphql|aws_xray_sdk)/
SOURCES := contentstudio studio avatars topics videostore devtools tests benchmarks manage.py
$(BYTECODE): $(TEST_STAMP)
	@echo "==> Compiling the installed packages' bytecode (once)"
	@$(PY) -m compileall -q -j 0 -x '$(NOT_IMPORTED)' "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null || true
	@touch $@

install: $(TEST_STAMP) $(BYTECODE)

# Static files for production: hashed, compressed copies in STATIC_ROOT, served by WhiteNoise.
collectstatic: $(RUN_STAMP)
	@echo "==> Collecting the static files into STATIC_ROOT (hashed and compressed names)"
	$(PY) manage.py collectstatic --noinput

# The studio and its job worker on the embedded default: SQLite, local files, offline provider.
run: $(RUN_STAMP)
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

# The main run and, when Redis answers, the job tests again on django-q2's Redis broker, side
# by side (the suite mostly waits on servers and workers; the Redis run has test databases
# and queues of its own). The Redis run's output follows the main run's; either failing fails.
test: $(TEST_STAMP) $(BYTECODE) browser
	@$(PY) -m compileall -q -j 0 $(SOURCES) >/dev/null || true
	@PYTHONDONTWRITEBYTECODE= $(PY) -m pytest --collect-only -q -p no:cacheprovider >/dev/null 2>&1 || true
	@if $(PY) -c "import redis; redis.from_url('$(REDIS_URL)').ping()" 2>/dev/null; then \
		log=$$(mktemp); \
		echo "==> The job tests again, on the Redis broker ($(REDIS_URL)), beside the main run"; \
		Q_BROKER_URL=$(REDIS_URL) $(PY) -m pytest -m jobs $(REDIS_PYTEST_ARGS) -q \
			-p no:cacheprovider >$$log 2>&1 & redis_run=$$!; \
		trap 'kill $$redis_run 2>/dev/null; exit 130' INT TERM; \
	else \
		echo "==> Redis does not answer at $(REDIS_URL): job tests on the Redis broker skipped"; \
	fi; \
	$(PY) -m pytest $(PYTEST_ARGS); main=$$?; \
	redis=0; \
	if [ -n "$$redis_run" ]; then \
		wait $$redis_run; redis=$$?; \
		echo "==> The job tests on the Redis broker ($(REDIS_URL)):"; cat $$log; rm -f $$log; \
	fi; \
	[ $$main -eq 0 ] && [ $$redis -eq 0 ]

# tests/durations.json: each test's time in a whole main run, which `make test` hands out
# longest first (tests/conftest.py). Refresh it (and commit it) when tests are added or change.
durations: $(TEST_STAMP) $(BYTECODE) browser
	RECORD_TEST_DURATIONS=1 $(PY) -m pytest $(PYTEST_ARGS) -q -p no:cacheprovider

bench: $(TEST_STAMP)
	$(PY) -m benchmarks

# Faults injected for real, 20 runs each, then reconcile: a benchmark-style run, not a test.
chaos: $(TEST_STAMP)
	$(PY) -m benchmarks.chaos

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) db.sqlite3 media staticfiles .pytest_cache
