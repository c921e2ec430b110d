"""Test infrastructure: the real servers the suite talks to over HTTP.

Each xdist worker starts its own moto S3 server on a free loopback port and points the
production Supabase storage backend at it; every test starts with an empty bucket.
"""

import gc
import json
import os
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import override_settings

from avatars.providers.offline import render_script_video
from tests import testdb
from tests.servers import S3Server, supabase_storage_settings

BUCKET = "media"
_TEMPLATE = pytest.StashKey[str]()


def _rolls_back(item) -> bool:
    """A test inside a transaction that is rolled back (pytest-django's `db`), as opposed to
    one whose tables are flushed afterwards (which also empties data migrations' rows)."""
    marker = item.get_closest_marker("django_db")
    fixtures = getattr(item, "fixturenames", [])
    flushed = bool(
        marker and (marker.kwargs.get("transaction") or marker.kwargs.get("reset_sequences"))
    ) or any(name in fixtures for name in ("transactional_db", "live_server"))
    return bool(marker or "db" in fixtures) and not flushed


#: How long each test took in a recent `make test` (setup, call and teardown, seconds; only
#: tests of 0.3 s or more). Written by a run with RECORD_TEST_DURATIONS=1 (`make durations`).
DURATIONS = Path(__file__).with_name("durations.json")
#: A test not in DURATIONS yet (a new one) is taken to last this long, by its markers.
_GUESSED_SECONDS = {"slow": 10.0, "browser": 5.0, "jobs": 1.0}


def _known_durations() -> dict[str, float]:
    try:
        return json.loads(DURATIONS.read_text())
    except (OSError, ValueError):
        return {}


def pytest_collection_modifyitems(items):
    """Django's order (tests in rolled-back transactions first: they read data migrations'
    rows, which a flush empties), then the longest first by their recorded durations, so
    xdist hands them out one by one before the short ones and none is left running alone
    at the end (`--maxschedchunk 1`): a test that mostly waits (a lease, a retry's back-off,
    a stopped server) overlaps the others' work instead of ending the run. Ties keep the
    collection order."""
    known = _known_durations()

    def seconds(item) -> float:
        if item.nodeid in known:
            return known[item.nodeid]
        guesses = [took for name, took in _GUESSED_SECONDS.items() if item.get_closest_marker(name)]
        return max(guesses, default=0.0)

    items.sort(key=lambda item: (0 if _rolls_back(item) else 1, -seconds(item)))


def pytest_collection_finish(session):
    """Everything imported and collected so far lives as long as the process: out of the
    garbage collector's sight (`gc.freeze`), full collections no longer walk Django's,
    botocore's and pytest's objects again, and young ones run less often. In a main run each
    xdist worker spent 1.2 to 1.5 CPU-s in the collector (0.8 to 1.2 in full collections);
    with these, 0.4 to 0.6 (0.06)."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


#: With RECORD_TEST_DURATIONS=1, the controller's sum of each test's phases (xdist's workers
#: report to it).
_recorded: dict[str, float] | None = {} if os.environ.get("RECORD_TEST_DURATIONS") == "1" else None


def pytest_runtest_logreport(report):
    if _recorded is not None:
        _recorded[report.nodeid] = _recorded.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    """Write DURATIONS from a passing run (`make durations` runs the whole suite)."""
    if _recorded is None or hasattr(session.config, "workerinput") or exitstatus != 0:
        return
    kept = {nodeid: round(took, 1) for nodeid, took in sorted(_recorded.items()) if took >= 0.3}
    DURATIONS.write_text(json.dumps(kept, indent=0, sort_keys=True) + "\n")


def pytest_configure(config):
    """The controller of an xdist run on PostgreSQL names the run's template database (its
    workers inherit the name) and drops it at the end (`pytest_unconfigure`)."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    if config.getvalue("reuse_db") or not testdb.on_postgresql():
        return
    testdb.drop_abandoned()
    config.stash[_TEMPLATE] = os.environ[testdb.ENV] = testdb.template_name(_on_redis())


def pytest_unconfigure(config):
    if template := config.stash.get(_TEMPLATE, None):
        testdb.drop(template)


@pytest.fixture(scope="session")
def _test_database_from_template(request, django_db_modify_db_settings, django_db_blocker):
    """An xdist worker's test database, cloned from the run's migrated template (tests/
    testdb.py); False where there is none (SQLite, one process, --reuse-db)."""
    template = os.environ.get(testdb.ENV)
    if not template or request.config.getvalue("reuse_db") or not testdb.on_postgresql():
        return False
    with django_db_blocker.unblock():
        testdb.clone_for_worker(template)
    return True


@pytest.fixture(scope="session")
def django_db_keepdb(request, _test_database_from_template):
    """pytest-django keeps a cloned database as it finds it; django_db_setup drops it."""
    return bool(request.config.getvalue("reuse_db") or _test_database_from_template)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, _test_database_from_template):
    """pytest-django's test database; at the end, sessions that killed or stopped worker
    processes left behind on PostgreSQL are ended, so the database can be dropped."""
    yield
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
        if _test_database_from_template:
            name = connection.settings_dict["NAME"]
            connection.close()
            testdb.drop(name)


def _on_redis() -> bool:
    from django.conf import settings

    return "redis" in settings.Q_CLUSTER


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """The run on the Redis broker has test databases of its own (`test_NAME_gw0_redis`), so
    `make test` runs it beside the run on the ORM broker, against the same server."""
    from django.conf import settings

    if not _on_redis():
        return
    for db in settings.DATABASES.values():
        test = db.setdefault("TEST", {})
        test["NAME"] = f"{test.get('NAME') or 'test_' + db['NAME']}_redis"


@pytest.fixture(scope="session", autouse=True)
def _empty_redis_queue(django_db_modify_db_settings):
    """On the Redis broker, each xdist worker (and the qclusters it starts, through
    Q_CLUSTER_NAME) takes tasks from a queue of its own, named after its test database
    (unique to the worker, the run's database and, on SQLite, the process): a task names a
    row of that database, and other runs may share the Redis server. Wake-ups left in it by
    an earlier run name rows of an older copy of the database, so it starts empty. (The ORM
    broker's queue lives in each worker's test database.)"""
    from django.conf import settings

    if not _on_redis():
        yield
        return
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    test_database = Path(settings.DATABASES["default"]["TEST"]["NAME"]).name
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Conf, "CLUSTER_NAME", f"{Conf.CLUSTER_NAME}-{test_database}")
        get_broker().purge_queue()
        yield


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing():
    """Users made by tests (and logged in through the forms) get a cheap hash: production's
    PBKDF2 costs about half a second of CPU per password, which the tests do not test."""
    override = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    override.enable()
    yield
    override.disable()


#: Tables a flush leaves as they are: the post_migrate signal after it would make the same
#: rows again (content types and permissions).
_KEPT_BY_FLUSH = {"django_content_type", "auth_permission"}


@pytest.fixture(scope="session", autouse=True)
def _quick_flush():
    """The tests whose tables are flushed afterwards (`transaction=True`, live servers) are
    flushed with DELETEs: on PostgreSQL a TRUNCATE of every table takes about 50 ms on an idle
    host against 2 to 5 ms for DELETEs of a test's few rows (Django's foreign keys are
    deferred, so the order does not matter). Content types and permissions are kept, so the
    `post_migrate` signal that would make them again is not sent: it cost about 20 ms of the
    test process's CPU per flush (about 220 flushes in a run) and as many queries."""
    from django.core.management.commands import flush

    operations = type(connection.ops)
    default_flush = operations.sql_flush
    default_handle = flush.Command.handle

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade:
            return default_flush(self, style, tables, reset_sequences=reset_sequences,
                                 allow_cascade=allow_cascade)  # fmt: skip
        return [f"DELETE FROM {self.quote_name(table)}" for table in tables
                if table not in _KEPT_BY_FLUSH]  # fmt: skip

    def handle(self, **options):
        if not options.get("reset_sequences", True) and not options.get("allow_cascade"):
            options["inhibit_post_migrate"] = True
        return default_handle(self, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(operations, "sql_flush", sql_flush)
        patch.setattr(flush.Command, "handle", handle)
        yield


CHROMIUM = "/usr/bin/chromium"
#: How often a test's `page.wait_for_function` checks its condition (ms). Playwright's default
#: checks on every animation frame, which makes chromium draw 60 frames a second for the whole
#: wait: 0.1 to 0.3 CPU-s per second waited, against 0.02 checking every 100 ms.
BROWSER_POLL_MS = 100
# One renderer process for every page of a context and the GPU thread in the browser process:
# the suite opens one origin, so site isolation only cost process start-ups (the browser tests
# alone: 66 renderer processes and 32 chromium CPU-s; with these, 36 and 28).
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--renderer-process-limit=1", "--process-per-site", "--disable-site-isolation-trials",
    "--disable-features=site-per-process,IsolateOrigins,Translate", "--in-process-gpu",
    "--disable-gpu-compositing",
]  # fmt: skip


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, driven by Playwright: one per xdist worker for every browser test (a
    launch is about a CPU-second; each test gets a context of its own)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


class BrowserTab:
    """One context and one tab per xdist worker, handed from browser test to browser test: a
    new page starts a renderer process (about 0.8 CPU-s of chromium, against 0.1 for a
    navigation in a tab that exists). Between tests the tab goes back to about:blank (the
    studio's scripts stop), the cookies go (nobody is logged in) and the viewport is reset.
    A test that failed, or a reset that fails, closes the context: the next test gets a new one.
    A test that adds listeners or routes to its page (which a reset would not remove) makes a
    context of its own from `browser`, as the production smoke test does."""

    VIEWPORT = {"width": 1280, "height": 800}

    def __init__(self, browser):
        self.browser = browser
        self.context = None
        self.page = None

    def open(self):
        if self.page is None or self.page.is_closed():
            self.close()
            self.context = self.browser.new_context(viewport=self.VIEWPORT)
            self.page = self.context.new_page()
        return self.page

    def reset(self) -> None:
        try:
            self.page.goto("about:blank")
            self.context.clear_cookies()
            self.page.set_viewport_size(self.VIEWPORT)
        except Exception:
            self.close()

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
        self.context = self.page = None


@pytest.fixture(scope="session")
def browser_tab(browser):
    tab = BrowserTab(browser)
    yield tab
    tab.close()


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server().start()
    server.create_bucket(BUCKET, public=True)
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def supabase_storage(s3_server):
    """Point default storage (the Supabase backend) at the S3 server for the whole session."""
    override = override_settings(**supabase_storage_settings(s3_server, BUCKET))
    override.enable()
    yield s3_server
    override.disable()


@pytest.fixture(autouse=True)
def _empty_bucket(s3_server):
    yield
    if s3_server.process is not None:
        s3_server.empty_bucket_if_written(BUCKET)


@pytest.fixture
def bucket_keys(s3_server):
    """What is in the bucket right now."""
    return lambda prefix="": s3_server.keys(BUCKET, prefix)


@pytest.fixture(scope="session")
def sample_mp4(tmp_path_factory) -> Path:
    """A real, small H.264/AAC MP4 made locally."""
    path = tmp_path_factory.mktemp("mp4") / "sample.mp4"
    return render_script_video(
        "A short lesson about photosynthesis.", path, width=320, height=180, seconds=2
    )


@pytest.fixture
def local_storage(settings, tmp_path):
    """The embedded default: local files under a per-test MEDIA_ROOT."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        "default": {"BACKEND": "contentstudio.storage.LocalMediaStorage", "OPTIONS": {}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.SUPABASE_STORAGE_ENABLED = False
    from django.core.files.storage import default_storage

    return default_storage


@pytest.fixture
def storage_link(settings, s3_server):
    """Default storage reached through a TCP link the test can cut (`.cut()`, `.restore()`);
    the S3 server keeps its objects while the link is down."""
    from tests.servers import TcpProxy

    proxy = TcpProxy(s3_server.port)
    storage_settings = supabase_storage_settings(s3_server, BUCKET)
    storage_settings["STORAGES"]["default"]["OPTIONS"]["endpoint_url"] = proxy.endpoint
    for key, value in storage_settings.items():
        setattr(settings, key, value)
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def _fake_heygen_server():
    from devtools.fake_heygen import FakeHeyGenServer

    server = FakeHeyGenServer().start()
    yield server
    server.stop()


@pytest.fixture
def fake_heygen(settings, _fake_heygen_server):
    """The fake HeyGen server over HTTP, with the production client pointed at it."""
    server = _fake_heygen_server
    server.reset()
    settings.AVATAR_PROVIDER = "heygen"
    settings.HEYGEN_API_KEY = server.api_key
    settings.HEYGEN_API_BASE = server.base_url
    settings.VIDEO_POLL_INTERVAL_SECONDS = 0.05
    settings.HEYGEN_REQUEST_TIMEOUT_SECONDS = 5
    settings.HEYGEN_RETRY_BACKOFF_SECONDS = 0.01  # the same retries, without the pauses
    settings.VIDEO_SUBMIT_LOOKUP_DELAY_SECONDS = 0.05
    settings.AVATAR_DOWNLOAD_ALLOWED_HOSTS = [server.host_port]
    yield server
    server.reset()
