"""Health for operators: /healthz against real storage (up, then cut) and the admin's
storage health page against a seeded ledger and seeded jobs."""

import shutil
import subprocess
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from avatars.models import VideoJob
from tests.builders import make_topic
from tests.conftest import BUCKET
from tests.servers import TEST_ACCESS_KEY, TEST_SECRET_KEY, free_port, wait_for_port
from tests.test_multipart import abort_all, start_unfinished_upload
from topics.models import ContentItem
from videostore.models import UploadLedgerEntry
from videostore.runs import record_reconcile_run

pytestmark = pytest.mark.django_db(transaction=True)
PAGE = "/admin/storage-health/"


@pytest.fixture(autouse=True)
def _no_multipart_uploads(s3_server):
    abort_all(s3_server)
    yield
    abort_all(s3_server)


def assert_nothing_secret(text: str) -> None:
    for secret in (TEST_ACCESS_KEY, TEST_SECRET_KEY, "127.0.0.1", "http://", BUCKET + "/"):
        assert secret not in text


def test_healthz_answers_200_when_database_storage_and_broker_answer(client, s3_server):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["checks"]) == {"database", "storage", "broker"}
    for check in body["checks"].values():
        assert check["ok"] is True and check["latency_ms"] >= 0
    assert response["Cache-Control"].startswith("max-age=0")
    assert_nothing_secret(response.content.decode())


def test_healthz_answers_503_and_names_storage_when_the_link_is_cut(client, storage_link):
    assert client.get("/healthz").status_code == 200
    storage_link.cut()

    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing" and body["failing"] == ["storage"]
    storage = body["checks"]["storage"]
    assert storage["ok"] is False and storage["error"].startswith("Storage is unavailable")
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]
    assert_nothing_secret(response.content.decode())

    storage_link.restore()
    assert client.get("/healthz").status_code == 200


@pytest.fixture
def redis_broker(monkeypatch):
    """django-q2 pointed at a real Redis server (with a password) of the test's own."""
    from django_q.conf import Conf

    redis_server = shutil.which("redis-server")
    if not redis_server:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--requirepass", "broker-password-do-not-show"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        monkeypatch.setattr(Conf, "ORM", None)
        monkeypatch.setattr(
            Conf, "REDIS", f"redis://:broker-password-do-not-show@127.0.0.1:{port}/0"
        )
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_healthz_names_the_broker_when_redis_goes_down(client, s3_server, redis_broker):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["checks"]["broker"]["ok"] is True

    redis_broker.terminate()
    redis_broker.wait(timeout=10)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"] and body["checks"]["broker"]["ok"] is False
    assert "broker-password-do-not-show" not in response.content.decode()
    assert_nothing_secret(response.content.decode())


def test_healthz_needs_no_login_and_refuses_writes(client, s3_server):
    assert client.get("/healthz").status_code == 200  # anonymous
    assert client.post("/healthz").status_code == 405


def ledger_entry(storage_path: str, intent: str, age: timedelta, **fields) -> None:
    UploadLedgerEntry.objects.create(storage_path=storage_path, intent=intent, **fields)
    UploadLedgerEntry.objects.filter(storage_path=storage_path).update(
        created_at=timezone.now() - age
    )


def video_item(status: str = ContentItem.Status.GENERATING) -> ContentItem:
    return ContentItem.objects.create(
        topic=make_topic(), content_type=ContentItem.ContentType.AVATAR_VIDEO, status=status
    )


def job(item: ContentItem, state: str, *, queued_ago: timedelta = timedelta(0), **fields):
    created = VideoJob.objects.create(content_item=item, state=state, script="Hello", **fields)
    VideoJob.objects.filter(pk=created.pk).update(queued_at=timezone.now() - queued_ago)
    return created


@pytest.fixture
def seeded(s3_server):
    now = timezone.now()
    Intent = UploadLedgerEntry.Intent
    ledger_entry("avatar_videos/avatar_up1.mp4", Intent.UPLOAD, timedelta(hours=3))
    ledger_entry("avatar_videos/avatar_up2.mp4", Intent.UPLOAD, timedelta(minutes=5))
    ledger_entry("avatar_videos/avatar_del.mp4", Intent.DELETE, timedelta(days=2),
                 attempts=4, last_error="Storage is unavailable: could not connect.")  # fmt: skip

    # Fallbacks: the nearest expiry is that of each item's *latest* job.
    first = video_item(ContentItem.Status.NEEDS_STORAGE)
    job(first, "failed", queued_ago=timedelta(hours=2),
        provider_url_expires_at=now + timedelta(minutes=10))  # fmt: skip
    job(first, "fallback", provider_url_expires_at=now + timedelta(hours=2))
    second = video_item(ContentItem.Status.NEEDS_STORAGE)
    job(second, "fallback", provider_url_expires_at=now + timedelta(hours=1))
    expired = video_item(ContentItem.Status.NEEDS_STORAGE)
    job(expired, "fallback", provider_url_expires_at=now - timedelta(hours=1))

    # Active jobs: stalled when their lease is in the past, whatever the state.
    stalled_queued = job(video_item(), "queued", lease_expires_at=now - timedelta(minutes=1))
    stalled_uploading = job(video_item(), "uploading", claimed_by="worker-9",
                            lease_expires_at=now - timedelta(minutes=30))  # fmt: skip
    job(video_item(), "rendering", lease_expires_at=now + timedelta(minutes=5))
    job(video_item(), "stored", lease_expires_at=now - timedelta(days=1))

    record_reconcile_run(started_at=now - timedelta(minutes=1), fix=True, consistent=False,
                         problems=3, report={"orphans": 3})  # fmt: skip
    start_unfinished_upload(s3_server, "avatar_videos/avatar_half.mp4", parts=1)
    return {"now": now, "stalled": [stalled_uploading.pk, stalled_queued.pk],
            "nearest_expiry": now + timedelta(hours=1)}  # fmt: skip


def test_storage_health_page_shows_the_figures_to_staff(admin_client, seeded):
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    health = response.context["health"]

    assert (health.pending_uploads, health.pending_deletes) == (2, 1)
    assert health.now - health.oldest_pending_upload >= timedelta(hours=3)
    assert health.now - health.oldest_pending_delete >= timedelta(days=2)
    assert [entry["attempts"] for entry in health.failing_deletes] == [4]

    assert health.fallbacks_waiting == 3 and health.fallbacks_expired == 1
    assert health.fallback_nearest_expiry == seeded["now"] - timedelta(hours=1)

    per_state = {state: count for state, _, count in health.jobs_per_state}
    assert per_state == {"queued": 1, "rendering": 1, "downloading": 0, "uploading": 1,
                         "stored": 1, "fallback": 3, "failed": 1}  # fmt: skip
    assert health.stalled_jobs == 2
    assert [job["id"] for job in health.stalled_job_samples] == seeded["stalled"]

    assert health.last_run.problems == 3 and health.last_run.consistent is False
    assert health.stale_multipart_uploads == 1
    assert health.stale_multipart_samples[0].storage_path == "avatar_videos/avatar_half.mp4"

    page = response.content.decode()
    assert "Storage health" in page and "avatar_videos/avatar_half.mp4" in page
    assert 'data-figure="stalled-jobs">2<' in page
    assert 'data-figure="pending-uploads">2<' in page
    assert 'data-figure="last-run-problems">3<' in page
    assert "worker-9" in page


def test_nearest_expiry_is_that_of_the_latest_job_of_each_fallback(admin_client, seeded):
    ContentItem.objects.filter(
        status=ContentItem.Status.NEEDS_STORAGE,
        video_jobs__provider_url_expires_at__lt=seeded["now"],
    ).update(status=ContentItem.Status.FAILED)
    health = admin_client.get(PAGE).context["health"]
    assert health.fallbacks_waiting == 2 and health.fallbacks_expired == 0
    # The first item's older job expires in 10 minutes but its latest one in 2 hours.
    assert health.fallback_nearest_expiry == seeded["nearest_expiry"]


def test_storage_health_page_says_when_storage_is_unreachable(admin_client, storage_link):
    storage_link.cut()
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    assert response.context["health"].multipart_error.startswith("Storage is unavailable")
    assert "No reconcile run recorded yet." in response.content.decode()


def test_the_admin_index_links_to_the_storage_health_page(admin_client):
    assert f'href="{PAGE}"' in admin_client.get("/admin/").content.decode()


def test_anonymous_and_non_staff_users_are_sent_to_the_login(client):
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    user = User.objects.create_user("author", password="pw-12345-long")
    client.force_login(user)
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
