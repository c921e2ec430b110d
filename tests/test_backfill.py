"""backfill_avatar_videos: legacy rows (provider URL only) are copied into storage."""

from io import StringIO

import pytest
from django.core.management import call_command

from avatars.pipeline import RenderOptions, start_render
from avatars.providers import get_provider
from tests.builders import make_topic, run_command, stored_keys
from topics.models import ContentItem
from videostore.models import UploadLedgerEntry

pytestmark = pytest.mark.django_db(transaction=True)


def legacy_item(topic, video_url: str, video_id: str = "legacy1") -> ContentItem:
    return ContentItem.objects.create(
        topic=topic,
        content_type="avatar_video",
        content_data={"script": "Old lesson", "videoUrl": video_url, "videoId": video_id},
        status=ContentItem.Status.READY,
    )


def rendered_url() -> str:
    provider = get_provider()
    video_id = start_render(RenderOptions(script="Old lesson"), provider=provider)
    status = provider.get_status(video_id)
    while not status.is_terminal:  # the fake moves on with each poll
        status = provider.get_status(video_id)
    return status.video_url


def test_legacy_rows_are_copied_where_the_url_still_works(fake_heygen, bucket_keys):
    topic = make_topic()
    working = legacy_item(topic, rendered_url())
    dead = legacy_item(topic, f"{fake_heygen.base_url}/files/gone.mp4?Expires=1&Signature=x", "x")
    out, err = StringIO(), StringIO()
    code = run_command("backfill_avatar_videos", stdout=out, stderr=err)
    assert code == 1  # one row could not be copied, and it says which
    assert "copied 1 of 2" in out.getvalue()
    assert f"item {dead.pk}" in err.getvalue()

    working.refresh_from_db()
    assert working.status == ContentItem.Status.READY
    assert bucket_keys() == stored_keys(working)
    data = working.content_data
    assert data["fileSize"] > 0 and data["storagePath"] == working.storage_path
    assert data["videoUrl"] == data["fileUrl"]
    assert data["metadata"]["heygen_video_url"].startswith(fake_heygen.base_url)
    dead.refresh_from_db()
    assert dead.storage_path == "" and dead.content_data["videoUrl"].endswith("Signature=x")
    assert not UploadLedgerEntry.objects.exists()


def test_dry_run_only_counts(fake_heygen):
    legacy_item(make_topic(), "https://files2.heygen.ai/a.mp4")
    out = StringIO()
    call_command("backfill_avatar_videos", "--dry-run", stdout=out)
    assert "1 legacy avatar video row(s)" in out.getvalue()
