"""The production recipe end to end: DJANGO_DEBUG=false on PostgreSQL, `migrate`,
`collectstatic`, then the Procfile's processes (gunicorn, qcluster, the engine) started by
honcho as documented, against an S3 server and the fake HeyGen of this test's own. Chromium
logs in, loads the studio and the admin (every stylesheet and script 200, hashed and
long-cached), generates two videos and watches them reach "Stored" in place."""

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import BROWSER_POLL_MS, CHROMIUM
from tests.servers import S3Server, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("DATABASE_URL", "")
BUCKET = "smoke-media"
PASSWORD = "smoke-" + secrets.token_urlsafe(12)
#: Variables of the outer test run that must not leak into the production processes.
OUTER_PREFIXES = ("DJANGO_", "SUPABASE_", "HEYGEN_", "AVATAR_", "Q_", "VIDEO_", "STATIC_")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed"),
    pytest.mark.skipif(
        not DATABASE_URL.startswith(("postgres://", "postgresql://")),
        reason="the production smoke test needs DATABASE_URL to name a PostgreSQL server",
    ),
]


@pytest.fixture
def production_database():
    """A database of this test's own on the suite's PostgreSQL server, dropped at the end."""
    import psycopg

    name = f"cs_smoke_{uuid.uuid4().hex[:10]}"
    maintenance = urlsplit(DATABASE_URL)._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(DATABASE_URL)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(maintenance, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def s3():
    server = S3Server().start()
    server.create_bucket(BUCKET, public=False)
    yield server
    server.stop()


@pytest.fixture
def heygen():
    from devtools.fake_heygen import FakeHeyGenServer

    server = FakeHeyGenServer(render_seconds=1).start()
    yield server
    server.stop()


@pytest.fixture
def production_env(production_database, s3, heygen, tmp_path) -> dict:
    """The README's production variables, pointed at loopback; only the HTTPS redirect and
    the secure-cookie flag are relaxed (plain HTTP on 127.0.0.1)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUTER_PREFIXES)}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SECURE_COOKIES": "0",
        "DATABASE_URL": production_database,
        "STATIC_ROOT": str(tmp_path / "staticfiles"),
        "SUPABASE_URL": "https://smoke-test.supabase.co",
        "SUPABASE_S3_ENDPOINT": s3.endpoint,
        "SUPABASE_S3_ACCESS_KEY_ID": "smoke-access-key",
        "SUPABASE_S3_SECRET_ACCESS_KEY": "smoke-secret-key",
        "SUPABASE_STORAGE_BUCKET": BUCKET,
        "SUPABASE_BUCKET_PUBLIC": "false",
        "HEYGEN_API_KEY": heygen.api_key,
        "HEYGEN_API_BASE": heygen.base_url,
        "AVATAR_DOWNLOAD_ALLOWED_HOSTS": heygen.host_port,
        "HEYGEN_POLL_INTERVAL_SECONDS": "0.5",
        "HEYGEN_POLL_MAX_INTERVAL_SECONDS": "1",
        "VIDEO_ENGINE_TICK_SECONDS": "0.5",
        "WEB_CONCURRENCY": "1",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
    })  # fmt: skip
    return env


def manage(env: dict, *argv: str) -> None:
    subprocess.run(["python", "manage.py", *argv], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=180)  # fmt: skip


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_process_tree(process: subprocess.Popen) -> None:
    """SIGTERM to honcho (it stops its process groups), then SIGKILL to every group left."""
    groups = {os.getpgid(pid) for pid in _descendants(process.pid) if _alive(pid)}
    groups.add(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL below
        process.wait(timeout=5)
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    process.wait(timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.getpgid(pid)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def procfile_processes(production_env, tmp_path):
    """`migrate`, `collectstatic`, a superuser, then `honcho start` on the Procfile."""
    env = production_env
    with ThreadPoolExecutor(2) as pool:  # independent: the database, and the static files
        steps = [pool.submit(manage, env, "migrate", "--noinput"),
                 pool.submit(manage, env, "collectstatic", "--noinput")]  # fmt: skip
        for step in steps:
            step.result()
    manage(env, "createsuperuser", "--noinput", "--username", "smoke", "--email", "s@e.org")
    port = free_port()
    log = tmp_path / "honcho.log"
    with log.open("wb") as out:
        honcho = subprocess.Popen(
            ["honcho", "start", "--port", str(port), "--no-prefix", "--no-colour"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_tree(honcho)
        print(log.read_text(errors="replace")[-4000:])  # shown by pytest when the test fails


def wait_for_healthz(base_url: str, timeout: float = 60) -> dict:
    """/healthz with every check and both kinds of background process reporting ok."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            body = requests.get(f"{base_url}/healthz", timeout=10).json()
        except requests.RequestException:
            # gunicorn listens before its worker has loaded Django: on a busy machine the
            # first answers can take longer than the request's timeout.
            if time.monotonic() > deadline:
                raise
            continue
        if body["status"] == "ok" and not body["warnings"] or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def test_the_procfile_recipe_serves_the_studio_and_stores_two_videos(procfile_processes, browser):
    base_url = procfile_processes
    health = wait_for_healthz(base_url)
    assert health["status"] == "ok" and health["warnings"] == [], health
    assert set(health["processes"]) == {"engine", "workers", "jobs"}

    responses: list[dict] = []
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("response", lambda response: responses.append({
            "url": response.url, "status": response.status,
            "type": response.request.resource_type, "headers": response.headers,
        }))  # fmt: skip
        page.goto(f"{base_url}/accounts/login/")
        page.fill("#id_username", "smoke")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base_url}/")

        assert page.goto(f"{base_url}/admin/").status == 200
        page.wait_for_selector("#site-name")
        health_page = page.goto(f"{base_url}/admin/storage-health/")
        assert health_page.status == 200
        assert page.locator("h1:has-text('Storage health')").count() == 1

        page.goto(f"{base_url}/")
        page.click("text=New topic")
        page.fill("#id_title", "Production smoke")
        page.fill("#id_language", "en")
        page.click("text=Create topic")
        page.wait_for_url(re.compile(r".*/topics/\d+/$"))
        topic_url = page.url
        page.fill("#id_script", "Plants turn light into sugar.\n\nLeaves hold chlorophyll.")
        page.click("text=Preview videos")
        page.click("[data-action=confirm]")
        page.wait_for_url(re.compile(re.escape(topic_url) + r"\?batch=.*"))
        assert page.locator("article.item[data-active='1']").count() == 2
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads
        page.wait_for_function(
            "() => document.querySelectorAll('.video-status.stored').length == 2",
            timeout=90_000,
            polling=BROWSER_POLL_MS,
        )
        assert page.evaluate("window.__sameDocument") is True
        assert page.locator(".video-status.stored:has-text('Stored')").count() == 2
    finally:
        context.close()

    assets = [seen for seen in responses if seen["type"] in ("stylesheet", "script")]
    assert {seen["url"] for seen in assets if "/static/admin/" in seen["url"]}, responses
    assert [seen for seen in assets if seen["status"] != 200] == []
    ours = [seen for seen in responses if seen["url"].startswith(base_url)]
    assert [(seen["url"], seen["status"]) for seen in ours if seen["status"] >= 400] == []
    # collectstatic's manifest: hashed names, cached for a year, compressed on the way.
    admin_css = next(seen for seen in assets if "/static/admin/css/base." in seen["url"])
    assert re.search(r"/base\.[0-9a-f]{12}\.css$", admin_css["url"]), admin_css["url"]
    assert "immutable" in admin_css["headers"].get("cache-control", "")
    assert admin_css["headers"].get("content-encoding") in ("gzip", "br")
