"""The save use case: one transaction; uploaded objects kept on commit, deleted on rollback."""

import pytest
from django.db import DatabaseError, transaction

from tests.builders import make_stored_item, make_topic, stored_video_data
from tests.conftest import BUCKET
from tests.faults import failing_content_item_writes
from topics.models import ContentItem, Topic
from topics.services import GeneratedContent, content_item_delete, topic_save_generated
from videostore import ledger
from videostore.models import UploadLedgerEntry

pytestmark = pytest.mark.django_db(transaction=True)

BODY = b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 64


def uploaded(s3_server, key: str) -> GeneratedContent:
    """An object uploaded the way the pipeline does it: ledger entry first, then the bytes."""
    ledger.register_pending_upload(key)
    s3_server.client().put_object(Bucket=BUCKET, Key=key, Body=BODY)
    return GeneratedContent(
        content_type="avatar_video", content_data=stored_video_data(key, len(BODY))
    )


def test_commit_keeps_the_object_and_clears_the_ledger(s3_server, bucket_keys):
    generated = uploaded(s3_server, "avatar_videos/avatar_ok_1.mp4")
    topic, (item,) = topic_save_generated(title="Cells", language="en", items=[generated])
    assert Topic.objects.get() == topic
    assert item.storage_path == "avatar_videos/avatar_ok_1.mp4"
    assert item.content_data["fileSize"] == len(BODY)
    assert bucket_keys() == ["avatar_videos/avatar_ok_1.mp4"]
    assert not UploadLedgerEntry.objects.exists()


def test_db_failure_after_upload_deletes_the_object(s3_server, bucket_keys):
    generated = uploaded(s3_server, "avatar_videos/avatar_dbfail.mp4")
    with failing_content_item_writes(), pytest.raises(DatabaseError, match="injected"):
        topic_save_generated(title="Cells", items=[generated])
    assert bucket_keys() == []
    assert not Topic.objects.exists() and not ContentItem.objects.exists()
    assert not UploadLedgerEntry.objects.exists()


def test_invalid_content_data_rolls_back_and_deletes_the_object(s3_server, bucket_keys):
    generated = uploaded(s3_server, "avatar_videos/avatar_bad.mp4")
    generated.content_data["fileSize"] = "big"
    with pytest.raises(ValueError, match="fileSize"):
        topic_save_generated(title="Cells", items=[generated])
    assert bucket_keys() == [] and not Topic.objects.exists()


def test_storage_down_during_rollback_delete_is_recorded_and_retried(
    storage_link, s3_server, bucket_keys
):
    generated = uploaded(s3_server, "avatar_videos/avatar_rbfail.mp4")
    storage_link.cut()
    with failing_content_item_writes(), pytest.raises(DatabaseError):
        topic_save_generated(title="Cells", items=[generated])

    entry = UploadLedgerEntry.objects.get()
    assert entry.storage_path == "avatar_videos/avatar_rbfail.mp4"
    assert entry.intent == UploadLedgerEntry.Intent.DELETE
    assert entry.attempts == 1 and "unavailable" in entry.last_error.lower()
    assert bucket_keys() == ["avatar_videos/avatar_rbfail.mp4"]  # not lost track of
    assert not ContentItem.objects.exists()

    assert ledger.retry_pending_deletes() == {"deleted": 0, "failed": 1}  # still down
    storage_link.restore()
    assert ledger.retry_pending_deletes() == {"deleted": 1, "failed": 0}
    assert bucket_keys() == [] and not UploadLedgerEntry.objects.exists()


def test_replacing_a_video_deletes_the_old_object_after_commit(s3_server, bucket_keys):
    topic = make_topic()
    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_old.mp4", Body=BODY)
    item = make_stored_item(topic, "avatar_videos/avatar_old.mp4", len(BODY))
    generated = uploaded(s3_server, "avatar_videos/avatar_new.mp4")
    generated.content_item_id = item.pk
    topic_save_generated(topic=topic, items=[generated])
    item.refresh_from_db()
    assert item.storage_path == "avatar_videos/avatar_new.mp4"
    assert bucket_keys() == ["avatar_videos/avatar_new.mp4"]
    assert not UploadLedgerEntry.objects.exists()


def test_failed_replacement_keeps_the_old_object_and_row(s3_server, bucket_keys):
    topic = make_topic()
    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_keep.mp4", Body=BODY)
    item = make_stored_item(topic, "avatar_videos/avatar_keep.mp4", len(BODY))
    generated = uploaded(s3_server, "avatar_videos/avatar_new2.mp4")
    generated.content_item_id = item.pk
    with failing_content_item_writes(), pytest.raises(DatabaseError):
        topic_save_generated(topic=topic, items=[generated])
    item.refresh_from_db()
    assert item.storage_path == "avatar_videos/avatar_keep.mp4"
    assert bucket_keys() == ["avatar_videos/avatar_keep.mp4"]


def test_saving_inside_an_outer_transaction_is_refused_and_cleaned_up(s3_server, bucket_keys):
    generated = uploaded(s3_server, "avatar_videos/avatar_nested.mp4")
    with pytest.raises(RuntimeError), transaction.atomic():
        topic_save_generated(title="Cells", items=[generated])
    assert bucket_keys() == []


def test_delete_with_file_removes_the_object_after_commit(s3_server, bucket_keys):
    topic = make_topic()
    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_del.mp4", Body=BODY)
    item = make_stored_item(topic, "avatar_videos/avatar_del.mp4", len(BODY))
    content_item_delete(content_item=item)
    assert bucket_keys() == [] and not ContentItem.objects.exists()
    assert not UploadLedgerEntry.objects.exists()
