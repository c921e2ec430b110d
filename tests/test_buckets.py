"""Rows know their bucket: a changed SUPABASE_STORAGE_BUCKET (or two deployments sharing a
database) never makes a stored video missing; URLs, deletes and reconcile use the row's bucket."""

import json
from io import StringIO

import pytest

from tests.builders import make_topic, run_command
from tests.conftest import BUCKET
from tests.servers import supabase_storage_settings
from tests.test_multipart import abort_all
from topics import services
from topics.models import ContentItem
from topics.selectors import video_view
from videostore import ledger
from videostore.models import UploadLedgerEntry
from videostore.storage import VideoStorage

pytestmark = pytest.mark.django_db(transaction=True)

OTHER = "media-next"


@pytest.fixture
def other_bucket(s3_server):
    s3_server.create_bucket(OTHER, public=True)
    abort_all(s3_server)
    yield OTHER
    s3_server.empty_bucket(OTHER)


def use_bucket(settings, s3_server, bucket: str) -> None:
    for key, value in supabase_storage_settings(s3_server, bucket).items():
        setattr(settings, key, value)


def store_video(topic, sample_mp4) -> ContentItem:
    """What a generation does: ledger entry, verified upload, the row with its metadata."""
    storage = VideoStorage()
    path = storage.new_storage_path("lesson")
    ledger.register_pending_upload(path, reason="test upload")
    with open(sample_mp4, "rb") as stream:
        stored = storage.upload_video(stream, "lesson.mp4", storage_path=path)
    data = {"script": "Hello", "videoUrl": stored.file_url, **stored.as_metadata()}
    _, (item,) = services.topic_save_generated(
        topic=topic,
        items=[services.GeneratedContent(content_type="avatar_video", content_data=data)],
    )
    return item


def reconcile(*args: str) -> tuple[int, dict]:
    out = StringIO()
    code = run_command("reconcile_storage", "--json", *args, stdout=out)
    return code, json.loads(out.getvalue())


def test_a_stored_video_records_its_bucket(sample_mp4):
    item = store_video(make_topic(), sample_mp4)
    assert item.storage_bucket == BUCKET and item.content_data["storageBucket"] == BUCKET
    assert not UploadLedgerEntry.objects.exists()


def test_switching_the_bucket_never_marks_an_old_video_missing(
    settings, s3_server, other_bucket, sample_mp4, bucket_keys
):
    topic = make_topic()
    item = store_video(topic, sample_mp4)
    path = item.storage_path
    use_bucket(settings, s3_server, other_bucket)
    s3_server.client().put_object(Bucket=other_bucket, Key="avatar_videos/avatar_b_1.mp4",
                                  Body=b"x")  # an orphan of the new bucket  # fmt: skip

    code, check = reconcile("--grace-seconds", "0")
    assert code == 1 and check["orphans"] == 1 and check["dangling_missing"] == 0
    assert check["rows_checked"] == 0 and check["other_buckets"] == {BUCKET: 1}
    code, fixed = reconcile("--fix", "--grace-seconds", "0")
    assert code == 0 and fixed["marked_for_regeneration"] == 0 and fixed["deleted_orphans"] == 1
    assert s3_server.keys(other_bucket) == []

    item.refresh_from_db()
    assert (item.status, item.storage_path, item.storage_bucket) == ("ready", path, BUCKET)
    assert bucket_keys() == [path]
    url = video_view(item).play_url
    assert url == f"https://test-project.supabase.co/storage/v1/object/public/{BUCKET}/{path}"

    services.content_item_delete(content_item=item)
    assert bucket_keys() == [] and not UploadLedgerEntry.objects.exists()


def test_a_row_without_a_bucket_is_in_the_configured_one(settings, s3_server, sample_mp4):
    """Rows stored before buckets were recorded: the configured bucket, checked as before."""
    item = store_video(make_topic(), sample_mp4)
    data = {k: v for k, v in item.content_data.items() if k != "storageBucket"}
    ContentItem.objects.filter(pk=item.pk).update(content_data=data, storage_bucket="")
    code, report = reconcile()
    assert code == 0 and report["rows_checked"] == 1 and report["other_buckets"] == {}
    s3_server.client().delete_object(Bucket=BUCKET, Key=item.storage_path)
    code, report = reconcile()
    assert code == 1 and report["dangling_missing"] == 1


def test_a_pending_upload_is_cleaned_up_in_its_own_bucket(
    settings, s3_server, other_bucket, bucket_keys
):
    """A worker died after writing to bucket A; the setting now says B: the sweep deletes the
    object from A, where it is."""
    path = "avatar_videos/avatar_crashed_1.mp4"
    ledger.register_pending_upload(path, reason="worker died")
    s3_server.client().put_object(Bucket=BUCKET, Key=path, Body=b"partial")
    assert UploadLedgerEntry.objects.get().bucket == BUCKET
    use_bucket(settings, s3_server, other_bucket)
    assert ledger.expire_stale_uploads(grace_seconds=0) == 1
    assert ledger.retry_pending_deletes() == {"deleted": 1, "failed": 0}
    assert bucket_keys() == [] and not UploadLedgerEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_generated_video_records_its_bucket_and_a_bucket_switch_keeps_it(
    settings, s3_server, other_bucket
):
    """The engine's own save (not a hand-made row): the row names its bucket, so after the
    setting changes reconcile checks it against its own bucket and finds nothing missing."""
    from avatars.inline import run_job_inline
    from avatars.services import avatar_video_request

    job = avatar_video_request(topic=make_topic(), script="Leaves make sugar from light.",
                               enqueue_submit=False)  # fmt: skip
    assert run_job_inline(job.pk, poll_interval=0.01).state == "stored"
    item = ContentItem.objects.get(pk=job.content_item_id)
    assert item.storage_bucket == BUCKET and item.content_data["storageBucket"] == BUCKET
    use_bucket(settings, s3_server, other_bucket)
    code, report = reconcile("--fix")
    assert report["dangling_missing"] == 0 and report["marked_for_regeneration"] == 0, report
    item.refresh_from_db()
    assert (item.status, item.storage_bucket) == ("ready", BUCKET)
