"""The studio in Debian's chromium, driven by Playwright: create a topic, generate several
videos and watch them progress in place, play, regenerate and delete after a confirmation,
permissions, the admin's confirmation pages, deleting a topic with videos."""

import os
import re
import threading
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection

from avatars.inline import run_job_inline
from avatars.models import VideoJob
from tests.builders import make_stored_item, make_topic
from tests.conftest import BROWSER_POLL_MS, BUCKET, CHROMIUM
from tests.servers import supabase_storage_settings
from topics.models import ContentItem, Topic

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
AUTHOR = ["view_topic", "add_topic", "change_topic", "view_contentitem", "add_contentitem",
          "regenerate_contentitem", "delete_contentitem"]  # fmt: skip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed"),
]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API + ORM


@pytest.fixture(autouse=True)
def no_inline_tasks(settings):
    """Jobs stay queued unless a test runs them (InlineWorker)."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}


@pytest.fixture
def page(browser_tab, live_server, request):
    """The worker's browser tab, logged out, at 1280 x 800 (tests/conftest.py `BrowserTab`)."""
    failed_before = request.session.testsfailed
    page = browser_tab.open()
    page.set_default_timeout(20_000)
    yield page
    if request.session.testsfailed != failed_before:
        browser_tab.close()
    else:
        browser_tab.reset()


@pytest.fixture
def private_bucket(settings, s3_server):
    """Signed URLs point straight at the S3 server, so the browser can play them."""
    for key, value in supabase_storage_settings(s3_server, BUCKET, public=False).items():
        setattr(settings, key, value)


class InlineWorker(threading.Thread):
    """Runs jobs one after the other, as a worker would, beside the live server."""

    def __init__(self, job_ids: list[int]):
        super().__init__(daemon=True)
        self.job_ids = job_ids

    def run(self) -> None:
        try:
            for job_id in self.job_ids:
                run_job_inline(job_id, poll_interval=0.1)
        finally:
            connection.close()


def log_in(page, live_server, username="author", perms=AUTHOR, superuser=False) -> User:
    password = "pw-12345-long"
    user = User.objects.create_user(
        username, password=password, is_staff=superuser, is_superuser=superuser
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return user


def shot(page, name: str) -> None:
    """The docs' screenshots (docs/screenshots), taken with UPDATE_SCREENSHOTS=1. A plain test
    run asserts the pages by their DOM and takes none (23 full-page PNGs that nothing read)."""
    if not os.environ.get("UPDATE_SCREENSHOTS"):
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_create_a_topic_generate_two_videos_and_watch_them_in_place(
    page, live_server, fake_heygen, private_bucket
):
    fake_heygen.render_seconds = 2.5
    make_topic("Cell biology")
    log_in(page, live_server)
    shot(page, "topic-list")
    page.click("text=New topic")
    page.fill("#id_title", "Photosynthesis basics")
    page.fill("#id_language", "hebrew please")
    page.click("text=Create topic")
    page.wait_for_selector("#error-language")
    page.fill("#id_language", "en")
    page.click("text=Create topic")
    topic = Topic.objects.get(title="Photosynthesis basics")
    page.wait_for_url(f"{live_server.url}/topics/{topic.pk}/")

    page.click("text=Preview videos")
    page.wait_for_selector("#error-script")
    assert page.url.endswith(f"/topics/{topic.pk}/videos/")
    page.wait_for_function(
        "() => document.activeElement.id === 'form-errors'", polling=BROWSER_POLL_MS
    )
    shot(page, "generate-form-errors")

    page.fill("#id_script", "Plants turn light into sugar.\n\nLeaves hold chlorophyll.")
    page.click("text=Preview videos")
    page.wait_for_selector("text=Check before generating")
    assert not VideoJob.objects.exists()
    page.click("[data-action=confirm]")
    page.wait_for_url(re.compile(rf".*/topics/{topic.pk}/\?batch=.*"))
    assert page.locator("article.item[data-active='1']").count() == 2
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    jobs = list(VideoJob.objects.order_by("pk").values_list("pk", flat=True))
    worker = InlineWorker(jobs)
    worker.start()
    # The second waits in line while the first renders; the step and its time update in place.
    page.wait_for_selector("text=/Waiting for a render slot \\(position 1\\)/")
    page.wait_for_selector("article[data-job-state='rendering']")
    page.wait_for_function(
        "() => /in this step/.test(document.querySelector('[data-role=step]').textContent)",
        polling=BROWSER_POLL_MS,
    )
    shot(page, "topic-progress")
    page.wait_for_function("() => document.querySelectorAll('.video-status.stored').length == 2",
                           timeout=60_000, polling=BROWSER_POLL_MS)  # fmt: skip
    worker.join(timeout=30)
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("article.item[data-active='1']").count() == 0

    page.wait_for_selector("#batch-summary:has-text('2 of 2 stored')")
    assert page.locator("video").count() == 0  # players open on demand, one at a time
    page.locator("[data-action=play]").first.click()
    video = page.locator("video").first
    src = video.get_attribute("src")
    assert "X-Amz-Signature=" in src and "/avatar_videos/avatar_" in src
    page.wait_for_function(
        "() => { const v = document.querySelector('video'); return v && v.readyState >= 1 }",
        polling=BROWSER_POLL_MS,
    )
    assert page.evaluate("document.querySelector('video').duration") > 0
    assert page.locator("text=320×180").count() == 2
    assert page.locator(".player-error:visible").count() == 0
    page.locator("[data-action=play]:visible").first.click()  # the other card: one player
    assert page.locator("video").count() == 1
    shot(page, "topic-with-player")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "topic-phone")


def test_regenerate_and_delete_after_a_confirmation(page, live_server, s3_server, bucket_keys):
    topic = make_topic("Osmosis")
    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_del_1.mp4", Body=b"x")
    doomed = make_stored_item(topic, "avatar_videos/avatar_del_1.mp4", 1)
    kept = make_stored_item(topic, "avatar_videos/avatar_keep_1.mp4", 1)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/topics/{topic.pk}/")
    # Not a playable file: the player says so instead of showing 0:00.
    page.click(f"#item-{doomed.pk} [data-action=play]")
    page.wait_for_selector(f"#item-{doomed.pk} .player-error", state="visible")

    page.click(f"#item-{kept.pk} details.menu summary")
    page.click(f"#item-{kept.pk} [data-action=regenerate]")
    page.wait_for_selector("text=uses one render credit")
    shot(page, "studio-confirm-regenerate")
    assert not VideoJob.objects.exists()
    page.click("text=Yes, regenerate")
    page.wait_for_selector(f"#item-{kept.pk} .video-status.regenerating")
    assert VideoJob.objects.filter(content_item=kept).count() == 1

    page.click(f"#item-{doomed.pk} details.menu summary")
    page.click(f"#item-{doomed.pk} [data-action=delete]")
    page.wait_for_selector("text=is deleted from storage (1 file)")  # a thumbnail, no path
    shot(page, "studio-confirm-delete")
    assert bucket_keys() == ["avatar_videos/avatar_del_1.mp4"]
    page.click("text=Yes, delete the video and its file")
    page.wait_for_selector("text=deleted; its file")
    assert page.locator(f"#item-{doomed.pk}").count() == 0
    assert not ContentItem.objects.filter(pk=doomed.pk).exists()
    assert bucket_keys() == []


def test_a_user_without_permissions_sees_no_buttons_and_gets_403(page, live_server):
    item = make_stored_item(make_topic("Read only"), "avatar_videos/avatar_ro_1.mp4", 1)
    log_in(page, live_server, "viewer", perms=["view_topic", "view_contentitem"])
    assert page.locator("text=New topic").count() == 0
    page.goto(f"{live_server.url}/topics/{item.topic_id}/")
    for hidden in ("[data-action=regenerate]", "[data-action=delete]", "#id_script",
                   "text=Edit topic"):  # fmt: skip
        assert page.locator(hidden).count() == 0
    assert page.locator("[data-action=download]").count() == 1
    status = page.evaluate(
        """async (url) => {
            const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
            const response = await fetch(url, {method: "POST", headers: {"X-CSRFToken": token}});
            return response.status;
        }""",
        f"/topics/{item.topic_id}/videos/{item.pk}/regenerate/",
    )
    assert status == 403 and not VideoJob.objects.exists()
    response = page.goto(f"{live_server.url}/topics/{item.topic_id}/videos/{item.pk}/delete/")
    assert response.status == 403


def test_right_to_left_topic(page, live_server):
    topic = make_topic("פוטוסינתזה למתחילים", language="he")
    log_in(page, live_server)
    page.goto(f"{live_server.url}/topics/{topic.pk}/")
    direction = page.evaluate("getComputedStyle(document.querySelector('section h1')).direction")
    assert direction == "rtl"
    shot(page, "topic-rtl")


def test_admin_confirmation_pages_and_deleting_a_topic_with_videos(
    page, live_server, s3_server, bucket_keys
):
    topic = make_topic("Old course")
    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_adm_1.mp4", Body=b"x")
    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_adm_2.mp4", Body=b"y")
    item = make_stored_item(topic, "avatar_videos/avatar_adm_1.mp4", 10)
    other = make_stored_item(topic, "avatar_videos/avatar_adm_2.mp4", 10)
    log_in(page, live_server, "boss", perms=[], superuser=True)
    page.goto(f"{live_server.url}/admin/topics/contentitem/")
    assert page.locator("#site-name").inner_text() == "Content Studio admin"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

    def run_action(action: str, item_id: int) -> None:
        page.check(f"input[name=_selected_action][value='{item_id}']")
        page.select_option("select[name=action]", action)
        page.click("button[name=index]")

    run_action("regenerate_video", item.pk)
    page.wait_for_selector("text=/render credit/")
    shot(page, "admin-confirm-regenerate")
    assert not VideoJob.objects.exists()
    page.click("input[type=submit][value^='Yes, regenerate']")
    page.wait_for_selector("text=Regeneration queued for 1 video(s).")
    shot(page, "admin-changelist")

    run_action("delete_with_file", other.pk)
    page.wait_for_selector("text=/1 stored file \\(the video\\)/")
    assert bucket_keys() == ["avatar_videos/avatar_adm_1.mp4", "avatar_videos/avatar_adm_2.mp4"]
    page.click("input[type=submit][value^='Yes, delete']")
    page.wait_for_selector("text=/Deleted 1 item/")
    assert bucket_keys() == ["avatar_videos/avatar_adm_1.mp4"]

    page.goto(f"{live_server.url}/admin/avatars/videojob/")
    page.wait_for_selector(".job-state-counts")
    assert re.search(r"Queued: 1", page.locator(".job-state-counts").inner_text())
    shot(page, "admin-jobs")

    page.goto(f"{live_server.url}/admin/topics/topic/{topic.pk}/delete/")
    page.click("input[type=submit]")
    page.wait_for_selector("text=/deleted successfully/")
    assert not Topic.objects.filter(pk=topic.pk).exists()
    assert not VideoJob.objects.exists() and bucket_keys() == []


def test_a_batch_becomes_lessons_in_order_moved_from_the_keyboard_and_renamed(page, live_server):
    topic = make_topic("Plants")
    log_in(page, live_server, perms=[*AUTHOR, "change_contentitem"])
    url = f"{live_server.url}/topics/{topic.pk}/"
    page.goto(url)
    page.fill("#id_script", "Light comes first.\n\nThen water.\n\nSugar comes last.")
    page.click("text=Preview videos")
    page.click("[data-action=confirm]")
    page.wait_for_url(re.compile(rf".*/topics/{topic.pk}/\?batch=.*"))

    def lessons() -> list[tuple[str, str]]:
        cards = page.locator("article.item")
        numbers = cards.locator("[data-role=lesson-number]").all_inner_texts()
        return list(zip(numbers, cards.locator("h3.lesson-title").all_inner_texts(), strict=True))

    assert lessons() == [("Lesson 1", "Light comes first."), ("Lesson 2", "Then water."),
                         ("Lesson 3", "Sugar comes last.")]  # fmt: skip
    first = ContentItem.objects.get(title="Light comes first.")
    # Move down from the keyboard: focus the button, press Enter; focus comes back to it.
    page.click(f"#item-{first.pk} details.menu summary")
    page.focus(f"#move-down-{first.pk}")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf".*focus=move-down-{first.pk}.*"))
    assert lessons() == [("Lesson 1", "Then water."), ("Lesson 2", "Light comes first."),
                         ("Lesson 3", "Sugar comes last.")]  # fmt: skip
    page.wait_for_function(
        f"() => document.activeElement.id === 'move-down-{first.pk}'", polling=BROWSER_POLL_MS
    )
    page.keyboard.press("Enter")  # again, without touching the mouse
    page.wait_for_function(
        "() => document.querySelectorAll('h3.lesson-title')[2].textContent"
        " === 'Light comes first.'",
        polling=BROWSER_POLL_MS,
    )
    page.wait_for_function(
        f"() => document.activeElement.id === 'move-down-{first.pk}'", polling=BROWSER_POLL_MS
    )
    assert [title for _, title in lessons()] == ["Then water.", "Sugar comes last.",
                                                 "Light comes first."]  # fmt: skip
    # Rename from the card.
    page.click(f"#item-{first.pk} details.rename summary")
    page.fill(f"#title-input-{first.pk}", "  Light, then sugar  ")
    page.press(f"#title-input-{first.pk}", "Enter")
    page.wait_for_selector(f"#item-{first.pk} h3.lesson-title:text-is('Light, then sugar')")
    assert lessons()[2] == ("Lesson 3", "Light, then sugar")
    first.refresh_from_db()
    assert first.title == "Light, then sugar" and first.position == 3
    shot(page, "topic-lessons")


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


SEMICOLON_CSV = (
    "title;script\n"
    "Light;Plants turn light into sugar in their leaves.\n"
    ";;\n"
    'Broken;"half" quoted\n'
    "Water;Roots drink the water; stems carry it up.\n"
    "Air;Leaves take in carbon dioxide from the air.\n"
)


def test_a_semicolon_csv_is_previewed_with_its_skipped_rows_then_confirmed(page, live_server):
    topic = make_topic("Plants")
    log_in(page, live_server)
    page.goto(f"{live_server.url}/topics/{topic.pk}/")
    upload = {"name": "lessons.csv", "mimeType": "text/csv", "buffer": SEMICOLON_CSV.encode()}
    page.set_input_files("#id_scripts_file", files=[upload])
    page.click("text=Preview videos")
    page.wait_for_selector("text=Check before generating")
    assert "Semicolon-separated, with a header row" in page.inner_text("[data-role=dialect]")
    assert page.locator("[data-role=planned-video]").count() == 2
    skipped = page.inner_text("[data-role=skipped]")
    assert "Row 3: empty row" in skipped and "Row 4: malformed" in skipped
    assert "Row 5: malformed: 3 cells" in skipped
    assert not VideoJob.objects.exists()
    shot(page, "batch-preview")
    page.set_viewport_size({"width": 390, "height": 844})
    assert no_horizontal_scroll(page)
    shot(page, "batch-preview-phone")
    page.click("[data-action=confirm]")
    page.wait_for_selector("text=2 videos queued as lessons 1 to 2.")
    titles = page.locator("h3.lesson-title").all_inner_texts()
    assert titles == ["Light", "Air"]
    assert VideoJob.objects.count() == 2


def test_the_quota_refusal_against_the_fake_heygen(page, live_server, fake_heygen):
    from django.core.cache import cache

    cache.clear()
    fake_heygen.remaining_quota = 30  # half a credit
    topic = make_topic("Quota")
    log_in(page, live_server)
    page.goto(f"{live_server.url}/topics/{topic.pk}/")
    page.fill("#id_script", "\n\n".join(["word " * 60] * 2))  # 24 s each
    page.click("text=Preview videos")
    page.wait_for_selector("[data-role=refusal]")
    assert "HeyGen has 0 left (30 s)" in page.inner_text("[data-role=refusal]")
    assert page.locator("[data-action=confirm]").count() == 0
    assert "GET /v2/user/remaining_quota" in fake_heygen.requests_seen
    shot(page, "batch-quota-refused")
    assert not VideoJob.objects.exists()


def test_a_batch_of_twelve_stays_on_one_page_in_order_and_reaches_twelve_stored(
    page, live_server, fake_heygen
):
    from django.core.cache import cache

    cache.clear()
    topic = make_topic("Photosynthesis, a course")
    for n in range(3):
        make_stored_item(topic, f"avatar_videos/avatar_before_{n}.mp4", 1000 + n)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/topics/{topic.pk}/")
    assert page.locator("details.generate[open]").count() == 0  # folded: the topic has videos
    page.click("details.generate summary")
    scripts = [f"Lesson {n}: plants and light, part {n}." for n in range(1, 13)]
    page.fill("#id_script", "\n\n".join(scripts))
    page.click("text=Preview videos")
    assert page.locator("[data-role=planned-video]").count() == 12
    page.click("[data-action=confirm]")
    page.wait_for_url(re.compile(rf".*/topics/{topic.pk}/\?batch=.*"))
    page.wait_for_selector("text=12 videos queued as lessons 4 to 15.")
    page.evaluate("window.__sameDocument = true")
    jobs = list(VideoJob.objects.order_by("pk").values_list("pk", flat=True))
    page.wait_for_selector("#batch-summary:has-text('0 of 12 stored, 12 in progress')")
    shot(page, "topic-batch-running")
    workers = [InlineWorker(jobs[first::3]) for first in range(3)]  # three, as a cluster would
    for worker in workers:
        worker.start()
    page.wait_for_selector("#batch-summary:has-text('12 of 12 stored')", timeout=120_000)
    for worker in workers:
        worker.join(timeout=60)
    assert page.evaluate("window.__sameDocument") is True
    titles = page.locator("h3.lesson-title").all_inner_texts()
    assert titles[3:] == scripts and len(titles) == 15  # one page, in the order entered
    page.wait_for_function(
        "() => document.querySelectorAll('.video-status.stored').length == 15",
        polling=BROWSER_POLL_MS,
    )
    shot(page, "topic-course")
    page.set_viewport_size({"width": 390, "height": 844})
    assert no_horizontal_scroll(page)
    shot(page, "topic-course-phone")


def test_no_regenerate_on_a_queued_video_and_cancel_frees_its_slot(page, live_server):
    from avatars import services as generation

    topic = make_topic("Queue")
    first, second = generation.avatar_videos_generate(topic=topic, scripts=["First.", "Second."])
    log_in(page, live_server)
    page.goto(f"{live_server.url}/topics/{topic.pk}/")
    card = f"#item-{first.content_item_id}"
    page.click(f"{card} details.menu summary")
    assert page.locator(f"{card} [data-action=regenerate]").count() == 0
    assert "position 2" in page.inner_text(f"#item-{second.content_item_id} [data-role=status]")
    shot(page, "topic-queued-cancel")
    page.click(f"{card} [data-action=cancel]")
    page.wait_for_selector("text=“First.” cancelled before it rendered; no credit was used.")
    page.wait_for_selector(f"{card} .video-status.cancelled")
    assert "position 1" in page.inner_text(f"#item-{second.content_item_id} [data-role=status]")
    first.refresh_from_db()
    assert first.state == "failed" and first.provider_video_id == ""
    page.set_viewport_size({"width": 390, "height": 844})
    assert no_horizontal_scroll(page)


def test_form_errors_are_scrolled_into_view_with_focus_at_phone_width(page, live_server):
    topic = make_topic("Errors")
    for n in range(8):
        make_stored_item(topic, f"avatar_videos/avatar_err_{n}.mp4", 10)
    log_in(page, live_server)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/topics/{topic.pk}/")
    assert no_horizontal_scroll(page)
    page.click("details.generate summary")
    page.fill("#id_language", "e n")
    page.click("text=Preview videos")
    page.wait_for_function(
        "() => document.activeElement.id === 'form-errors'", polling=BROWSER_POLL_MS
    )
    top = page.evaluate("document.getElementById('form-errors').getBoundingClientRect().top")
    assert 0 <= top < 844
    assert no_horizontal_scroll(page)
    shot(page, "generate-form-errors-phone")


def test_the_avatar_and_voice_pickers_from_heygen(page, live_server, fake_heygen):
    from django.core.cache import cache

    cache.clear()
    topic = make_topic("שיעור ראשון", language="he")
    log_in(page, live_server)
    page.goto(f"{live_server.url}/topics/{topic.pk}/edit/")
    page.wait_for_selector("[data-role=avatar-picker] img")
    # The previews are images the browser really loaded from the provider's URLs.
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-role=avatar-picker] img')]"
        ".every(img => img.complete && img.naturalWidth > 0)",
        polling=BROWSER_POLL_MS,
    )
    voices = page.inner_text("[data-role=voice-picker]")
    assert "Hila" in voices and "Rachel" not in voices
    page.click("label.pick:has-text('Tyler')")
    page.click("label.pick:has-text('Hila')")
    shot(page, "topic-pickers")
    page.set_viewport_size({"width": 390, "height": 844})
    assert no_horizontal_scroll(page)
    page.click("text=Save topic")
    page.wait_for_url(f"{live_server.url}/topics/{topic.pk}/")
    topic.refresh_from_db()
    assert (topic.default_avatar_id, topic.default_voice_id) == (
        "Tyler-incasualsuit-20220721", "he-IL-hila")  # fmt: skip


def test_deleting_a_topic_in_the_studio(page, live_server, s3_server, bucket_keys):
    topic = make_topic("Old course")
    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_sd_1.mp4", Body=b"x")
    make_stored_item(topic, "avatar_videos/avatar_sd_1.mp4", 1)
    make_stored_item(topic, "avatar_videos/avatar_sd_2.mp4", 1)
    log_in(page, live_server, perms=[*AUTHOR, "delete_topic"])
    page.goto(f"{live_server.url}/topics/{topic.pk}/")
    page.click("[data-action=delete-topic]")
    page.wait_for_selector("text=/2 videos/")
    assert "2 files are deleted from storage" in page.inner_text("[data-role=what-goes]")
    page.set_viewport_size({"width": 390, "height": 844})
    assert no_horizontal_scroll(page)
    shot(page, "studio-confirm-delete-topic")
    page.click("text=Yes, delete the topic")
    page.wait_for_selector("text=Topic “Old course” deleted with its 2 videos")
    assert not Topic.objects.filter(pk=topic.pk).exists()
    assert bucket_keys() == []
    assert no_horizontal_scroll(page)


def test_every_studio_page_fits_a_phone(page, live_server):
    topic = make_topic("Narrow")
    item = make_stored_item(topic, "avatar_videos/avatar_nw_1.mp4", 1)
    log_in(page, live_server, perms=[*AUTHOR, "change_contentitem", "delete_topic"])
    page.set_viewport_size({"width": 390, "height": 844})
    base = f"{live_server.url}/topics/{topic.pk}"
    video = f"{base}/videos/{item.pk}"
    pages = [f"{live_server.url}/", f"{live_server.url}/topics/new/", f"{base}/",
             f"{base}/edit/", f"{base}/delete/", f"{video}/regenerate/", f"{video}/delete/",
             f"{video}/rename/"]  # fmt: skip
    for url in pages:
        page.goto(url)
        assert no_horizontal_scroll(page), url


def test_confirm_sends_once_however_often_it_is_clicked(page, live_server):
    topic = make_topic("Once")
    log_in(page, live_server)
    page.goto(f"{live_server.url}/topics/{topic.pk}/")
    page.fill("#id_script", "Only one render, please.")
    page.click("text=Preview videos")
    page.wait_for_selector("[data-action=confirm]")
    page.wait_for_load_state("domcontentloaded")  # its deferred confirm.js has run
    # After the page's own handler: record whether each submit was let through (and keep
    # this page, so a second one can be tried while the first "is on its way").
    sent = page.evaluate("""() => {
        const seen = [];
        window.addEventListener("submit", (event) => {
            seen.push(!event.defaultPrevented); event.preventDefault(); });
        const form = document.querySelector('[data-action=confirm]').form;
        form.requestSubmit(); form.requestSubmit(); form.requestSubmit();
        return seen;
    }""")
    assert sent == [True, False, False]
    assert page.inner_text("[data-action=confirm]") == "Requesting the renders…"
    assert not VideoJob.objects.exists()
