"""The whole pipeline on real components: fake HeyGen over HTTP, the S3 server, the database.

Each fault test asserts what is left in the bucket and in the table.
"""

import hashlib
import json
import re
from datetime import datetime
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command

from avatars import leases, steps
from avatars.errors import RenderFailed
from avatars.inline import run_job_inline
from avatars.models import VideoJob
from avatars.pipeline import build_result
from avatars.providers import get_provider
from avatars.services import avatar_video_request
from tests.builders import make_topic, stored_keys
from tests.conftest import BUCKET
from tests.faults import failing_content_item_writes
from topics.models import ContentItem
from videostore.models import UploadLedgerEntry
from videostore.storage import StoredVideo

pytestmark = pytest.mark.django_db(transaction=True)


def generate_command(topic_id: int, script: str = "Plants turn light into sugar.") -> dict:
    out = StringIO()
    call_command(
        "generate_avatar_video", "--topic-id", str(topic_id), "--script", script,
        "--language", "en", "--json", stdout=out,
    )  # fmt: skip
    return json.loads(out.getvalue())


def test_command_stores_the_video_with_metadata_matching_the_object(fake_heygen, s3_server):
    topic = make_topic()
    item = generate_command(topic.pk)
    data = item["content_data"]
    assert item["status"] == "ready" and item["job"]["state"] == "stored"
    head = s3_server.client().head_object(Bucket=BUCKET, Key=data["storagePath"])
    body = s3_server.client().get_object(Bucket=BUCKET, Key=data["storagePath"])["Body"].read()
    assert head["ContentLength"] == data["fileSize"] == len(body)
    assert hashlib.sha256(body).hexdigest() == data["checksum"]
    assert body[4:8] == b"ftyp"
    assert (
        data["fileUrl"]
        == data["videoUrl"]
        == (
            f"https://test-project.supabase.co/storage/v1/object/public/{BUCKET}/{data['storagePath']}"
        )
    )
    assert data["storagePath"].startswith("avatar_videos/avatar_")
    assert data["fileType"] == "video/mp4" and data["uploadedAt"].endswith("Z")
    assert (data["width"], data["height"]) == (320, 180) and data["duration_seconds"] > 0
    assert data["metadata"]["storage_fallback"] is False
    assert data["metadata"]["heygen_video_url"].startswith(fake_heygen.base_url)
    assert ContentItem.objects.get().storage_path == data["storagePath"]
    assert not UploadLedgerEntry.objects.exists()


def test_result_has_the_original_shape(fake_heygen):
    job = avatar_video_request(topic=make_topic(), script="Hello class", language="he",
                               enqueue_submit=False)  # fmt: skip
    job = run_job_inline(job.pk, poll_interval=0.01)
    provider = get_provider()
    status = provider.get_status(job.provider_video_id)
    data = ContentItem.objects.get(pk=job.content_item_id).content_data
    stored = StoredVideo(
        file_url=data["fileUrl"], file_name=data["fileName"], file_size=data["fileSize"],
        file_type=data["fileType"], storage_path=data["storagePath"],
        uploaded_at=datetime.fromisoformat(data["uploadedAt"]), checksum=data["checksum"],
        duration_seconds=data["duration_seconds"], width=data["width"], height=data["height"],
    )  # fmt: skip
    result = build_result(status, language=job.language, stored=stored)
    expected = {
        "videoUrl",
        "videoId",
        "language",
        "duration_seconds",
        "status",
        "fallback",
        "fileUrl",
        "fileName",
        "fileSize",
        "fileType",
        "storagePath",
        "uploadedAt",
    }
    assert expected <= set(result)
    assert result["language"] == "he" and result["status"] == "completed"
    assert set(result["metadata"]) >= {"heygen_video_url", "storage_fallback", "storage_metadata"}
    assert result["metadata"]["storage_metadata"]["storagePath"] == result["storagePath"]


def test_provider_429_waits_for_a_render_slot_then_stores(fake_heygen, bucket_keys):
    fake_heygen.set_fault("generate_429", 2)
    item = generate_command(make_topic().pk)
    assert item["status"] == "ready"
    assert item["job"]["state"] == "stored"
    assert bucket_keys() == stored_keys(ContentItem.objects.get())


@pytest.mark.parametrize(
    ("fault", "value", "message"),
    [
        ("generate_500", 10, "HeyGen kept failing (HTTP 500)"),
        ("slow", 2, "HeyGen could not be reached"),  # slower than the 1 s timeout below
        ("render_failed", True, "Video is too long"),
        ("quota", True, "quota or credits exhausted"),
        ("invalid_avatar", True, "does not accept this avatar or voice"),
        ("truncated_body", True, "truncated"),
        ("html_body", True, "not an MP4"),
        ("wrong_content_length", True, "truncated"),
    ],
)
def test_provider_and_download_faults_fail_clearly_and_leave_nothing(
    fake_heygen, bucket_keys, settings, fault, value, message
):
    if fault == "slow":
        settings.HEYGEN_REQUEST_TIMEOUT_SECONDS = 1
    fake_heygen.set_fault(fault, value)
    topic = make_topic()
    with pytest.raises(CommandError, match=re.escape(message)):
        generate_command(topic.pk)
    assert bucket_keys() == []
    assert not UploadLedgerEntry.objects.exists()
    item = ContentItem.objects.get()
    assert item.status == ContentItem.Status.FAILED and item.storage_path == ""
    job = VideoJob.objects.get()
    assert job.state == VideoJob.State.FAILED and message.split()[0] in job.last_error


def test_render_failed_raises_the_providers_message(fake_heygen):
    fake_heygen.set_fault("render_failed")
    job = avatar_video_request(topic=make_topic(), script="Too long", enqueue_submit=False)
    job = run_job_inline(job.pk, poll_interval=0.01)
    assert job.state == VideoJob.State.FAILED
    with pytest.raises(RenderFailed, match="Video is too long"):
        raise RenderFailed(job.last_error)


def test_storage_down_during_upload_gives_a_fallback_row(fake_heygen, storage_link, bucket_keys):
    storage_link.cut()
    item = generate_command(make_topic().pk)
    data = item["content_data"]
    assert item["status"] == "needs_storage" and item["job"]["state"] == "fallback"
    assert data["videoUrl"].startswith(fake_heygen.base_url)
    assert data["metadata"]["storage_fallback"] is True
    assert "storagePath" not in data and "fileUrl" not in data
    job = VideoJob.objects.get()
    assert job.provider_url_expires_at is not None
    assert "unavailable" in job.last_error.lower()
    storage_link.restore()
    assert bucket_keys() == []
    # The provider URL still works: the video is not lost.
    assert requests.get(data["videoUrl"], timeout=10).content[4:8] == b"ftyp"


def test_fallback_row_is_promoted_into_storage(fake_heygen, storage_link, bucket_keys):
    from avatars.promotion import promote_fallbacks

    storage_link.cut()
    item_id = generate_command(make_topic().pk)["id"]
    storage_link.restore()
    assert promote_fallbacks() == {"stored": 1, "expired": 0, "failed": 0}
    item = ContentItem.objects.get(pk=item_id)
    assert item.status == ContentItem.Status.READY
    assert bucket_keys() == stored_keys(item)
    assert item.content_data["metadata"]["storage_fallback"] is False
    assert not UploadLedgerEntry.objects.filter(intent="upload").exists()


def test_expired_fallback_is_marked_for_regeneration(fake_heygen, storage_link):
    from datetime import timedelta

    from django.utils import timezone

    from avatars.promotion import promote_fallbacks

    storage_link.cut()
    item_id = generate_command(make_topic().pk)["id"]
    VideoJob.objects.update(provider_url_expires_at=timezone.now() - timedelta(minutes=1))
    assert promote_fallbacks()["expired"] == 1
    assert ContentItem.objects.get(pk=item_id).status == ContentItem.Status.NEEDS_REGENERATION


def test_database_failure_during_the_save_leaves_the_bucket_empty(fake_heygen, bucket_keys):
    topic = make_topic()
    with failing_content_item_writes(), pytest.raises(CommandError, match="injected"):
        generate_command(topic.pk)
    assert bucket_keys() == []
    assert not UploadLedgerEntry.objects.exists()
    assert ContentItem.objects.get().storage_path == ""


def test_regenerate_replaces_the_object_and_deletes_the_old_one(fake_heygen, bucket_keys):
    topic = make_topic()
    first = generate_command(topic.pk)
    item = ContentItem.objects.get(pk=first["id"])
    job = avatar_video_request(topic=topic, script="A second take.", content_item=item,
                               enqueue_submit=False)  # fmt: skip
    assert run_job_inline(job.pk, poll_interval=0.05).state == "stored"
    item.refresh_from_db()
    assert item.storage_path != first["content_data"]["storagePath"]
    assert bucket_keys() == stored_keys(item)


def test_a_second_regenerate_joins_the_running_job(fake_heygen):
    topic = make_topic()
    job = avatar_video_request(topic=topic, script="One", enqueue_submit=False)
    again = avatar_video_request(
        topic=topic, script="Two", content_item=job.content_item, enqueue_submit=False
    )
    assert again.pk == job.pk
    assert VideoJob.objects.count() == 1


def test_offline_provider_needs_no_key(settings, bucket_keys):
    settings.AVATAR_PROVIDER = "local"
    settings.OFFLINE_VIDEO_WIDTH, settings.OFFLINE_VIDEO_HEIGHT = 320, 180
    item = generate_command(make_topic().pk, "Offline lesson")
    assert item["status"] == "ready"
    assert item["content_data"]["width"] == 320
    assert bucket_keys() == stored_keys(ContentItem.objects.get())


def test_unknown_topic_and_empty_script_are_clear_errors(fake_heygen):
    with pytest.raises(CommandError, match="Topic 999 does not exist"):
        generate_command(999)
    with pytest.raises(CommandError, match="script is empty"):
        generate_command(make_topic().pk, "   ")


def test_offline_job_retries_after_a_storage_outage(settings, storage_link, bucket_keys):
    from videostore import ledger

    settings.AVATAR_PROVIDER = "local"
    settings.OFFLINE_VIDEO_WIDTH, settings.OFFLINE_VIDEO_HEIGHT = 320, 180
    job = avatar_video_request(
        topic=make_topic(), script="Offline", enqueue_submit=False, max_attempts=2
    )
    storage_link.cut()
    token = leases.new_token()
    steps.submit(steps.claim_next_submission(token), token)
    (rendering,) = leases.claim_due_checks(token, job_id=job.pk)
    assert steps.check(rendering, token, get_provider()) == "rendered"
    copying = leases.claim(job.pk, token=token, states=("downloading",))
    # No provider URL to fall back on (the offline renderer's files): retry later.
    assert steps.copy(copying, token) == "retry"
    assert VideoJob.objects.get(pk=job.pk).state == "downloading"
    storage_link.restore()
    VideoJob.objects.filter(pk=job.pk).update(next_attempt_at=None)
    assert run_job_inline(job.pk, poll_interval=0.05).state == "stored"
    ledger.retry_pending_deletes()  # the first attempt's cleanup, deferred by the outage
    item = ContentItem.objects.get()
    assert bucket_keys() == stored_keys(item)
    assert not UploadLedgerEntry.objects.exists()
