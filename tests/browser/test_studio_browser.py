"""The studio in Debian's chromium, driven by Playwright: log in, generate, watch, play."""

import os
import tempfile
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from tests.builders import make_topic
from tests.conftest import BUCKET
from tests.servers import supabase_storage_settings
from tests.workers import Worker

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed"),
]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API + ORM


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@pytest.fixture
def private_bucket(settings, s3_server):
    """Signed URLs point straight at the S3 server, so the browser can play them."""
    for key, value in supabase_storage_settings(s3_server, BUCKET, public=False).items():
        setattr(settings, key, value)


def log_in(page, live_server, username="author", password="pw-12345-long", staff=False):
    User.objects.create_user(username, password=password, is_staff=staff, is_superuser=staff)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def shot(page, name: str) -> None:
    """Screenshots go to docs/screenshots with UPDATE_SCREENSHOTS=1, else to a temp dir."""
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    file_name = f"{name}.png" if folder == SCREENSHOTS else f"contentstudio-{name}.png"
    page.screenshot(path=str(folder / file_name), full_page=True)


def test_generate_watch_progress_and_play(page, live_server, fake_heygen, private_bucket):
    fake_heygen.polls_per_step = 2
    topic = make_topic("Photosynthesis basics")
    log_in(page, live_server)
    shot(page, "topic-list")
    page.goto(f"{live_server.url}/topics/{topic.pk}/")
    page.fill("#id_script", "")
    page.click("text=Generate video")
    page.wait_for_selector("#error-script")
    shot(page, "generate-form-errors")

    page.fill("#id_script", "Plants turn light, water and air into sugar.")
    worker = Worker()
    try:
        page.click("text=Generate video")
        page.wait_for_selector(".job-state", state="attached")
        page.wait_for_selector(".job-state.stored", timeout=60_000)
    finally:
        worker.stop()
    video = page.locator("video").first
    src = video.get_attribute("src")
    assert "X-Amz-Signature=" in src and "/avatar_videos/avatar_" in src
    page.wait_for_function(
        "() => { const v = document.querySelector('video'); return v && v.readyState >= 1 }"
    )
    assert page.evaluate("document.querySelector('video').duration") > 0
    assert page.locator("text=320×180").count() == 1
    shot(page, "topic-with-player")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "topic-phone")


def test_right_to_left_topic(page, live_server):
    topic = make_topic("פוטוסינתזה למתחילים", language="he")
    log_in(page, live_server)
    page.goto(f"{live_server.url}/topics/{topic.pk}/")
    direction = page.evaluate("getComputedStyle(document.querySelector('section h1')).direction")
    assert direction == "rtl"
    shot(page, "topic-rtl")


def test_admin_regenerate_action(page, live_server, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    from tests.builders import make_stored_item

    item = make_stored_item(make_topic(), "avatar_videos/avatar_adm_1.mp4", 10)
    log_in(page, live_server, "boss", staff=True)
    page.goto(f"{live_server.url}/admin/topics/contentitem/")
    page.check(f"input[name=_selected_action][value='{item.pk}']")
    page.select_option("select[name=action]", "regenerate_video")
    page.click("button[name=index]")
    page.wait_for_selector("text=Regeneration queued for 1 video(s).")
    shot(page, "admin-changelist")
