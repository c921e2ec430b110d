"""Every item change under the item's lock, re-read: a delete racing a copy, a promotion racing
a regenerate, a regenerate during a storage outage, a broker outage while generating. Against
the fake HeyGen and the S3 server; each asserts what is left in the bucket and the table."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.utils import timezone

from avatars.inline import run_job_inline
from avatars.models import VideoJob
from avatars.promotion import promote_fallbacks, promote_item
from avatars.services import avatar_video_request
from studio.status import video_status
from tests.builders import generate_through_preview, make_topic, stored_keys
from topics.models import ContentItem
from topics.services import content_item_delete, content_item_mark_stored
from videostore import ledger
from videostore.models import UploadLedgerEntry

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.jobs]
State = VideoJob.State


def generated(topic=None, script: str = "Roots drink water.") -> ContentItem:
    job = avatar_video_request(topic=topic or make_topic(), script=script, enqueue_submit=False)
    run_job_inline(job.pk, poll_interval=0.01)
    return ContentItem.objects.get(pk=job.content_item_id)


def test_a_delete_that_read_the_row_before_a_copy_committed_removes_the_new_object(
    fake_heygen, bucket_keys
):
    """The racing order that left orphans: the delete read the item (no video yet), the copy
    committed its object, then the delete ran. The path is re-read under the lock."""
    job = avatar_video_request(topic=make_topic(), script="Stems.", enqueue_submit=False)
    read_before_the_copy = ContentItem.objects.get(pk=job.content_item_id)
    assert read_before_the_copy.storage_path == ""
    assert run_job_inline(job.pk, poll_interval=0.01).state == State.STORED
    assert len(bucket_keys()) == 3  # the video, its poster and its captions
    assert content_item_delete(content_item=read_before_the_copy)
    ledger.retry_pending_deletes()
    assert bucket_keys() == []
    assert not ContentItem.objects.exists() and not UploadLedgerEntry.objects.exists()


def test_a_copy_whose_item_was_deleted_discards_its_upload(fake_heygen, bucket_keys):
    job = avatar_video_request(topic=make_topic(), script="Seeds.", enqueue_submit=False)
    content_item_delete(content_item=ContentItem.objects.get(pk=job.content_item_id))
    assert not VideoJob.objects.filter(pk=job.pk).exists()  # the job went with its item
    assert bucket_keys() == [] and not UploadLedgerEntry.objects.exists()


def _fallback(fake_heygen, storage_link, item=None, topic=None) -> ContentItem:
    storage_link.cut()
    try:
        job = avatar_video_request(topic=topic or (item.topic if item else make_topic()),
                                   script="Flowers.", content_item=item,
                                   enqueue_submit=False)  # fmt: skip
        assert run_job_inline(job.pk, poll_interval=0.01).state == State.FALLBACK
    finally:
        storage_link.restore()
    return ContentItem.objects.get(pk=job.content_item_id)


def test_a_promotion_that_read_the_item_before_a_regenerate_stored_is_discarded(
    fake_heygen, storage_link, bucket_keys
):
    item = _fallback(fake_heygen, storage_link)
    read_by_the_promotion = ContentItem.objects.get(pk=item.pk)  # waits for render A
    job = avatar_video_request(topic=item.topic, script="Flowers, again.", content_item=item,
                               enqueue_submit=False)  # fmt: skip
    assert run_job_inline(job.pk, poll_interval=0.01).state == State.STORED  # render B stored
    regenerated = ContentItem.objects.get(pk=item.pk)
    assert promote_item(read_by_the_promotion) == "stale"
    ledger.retry_pending_deletes()
    item.refresh_from_db()
    assert item.storage_path == regenerated.storage_path  # the paid regeneration stays
    assert item.content_data["videoId"] == VideoJob.objects.get(pk=job.pk).provider_video_id
    assert bucket_keys() == stored_keys(item)
    assert not UploadLedgerEntry.objects.exists()


def test_a_regenerate_during_a_storage_outage_keeps_the_new_render_and_promotes_it(
    fake_heygen, storage_link, bucket_keys
):
    item = generated()
    old_path = item.storage_path
    item = _fallback(fake_heygen, storage_link, item=item)
    new_render = VideoJob.objects.filter(content_item=item).latest("queued_at").provider_video_id
    assert item.status == ContentItem.Status.NEEDS_STORAGE
    assert item.storage_path == old_path  # the stored video still plays meanwhile
    assert item.content_data["metadata"]["pending_video_id"] == new_render
    job = VideoJob.objects.filter(content_item=item).latest("queued_at")
    status = video_status(item, job, now=timezone.now())
    assert status.label.startswith("Waiting for storage: new render, provider link until")
    assert status.kind != "stored"

    assert promote_fallbacks() == {"stored": 1, "expired": 0, "failed": 0}
    ledger.retry_pending_deletes()
    item.refresh_from_db()
    assert item.status == ContentItem.Status.READY and item.storage_path != old_path
    assert item.content_data["videoId"] == new_render
    assert "pending_video_id" not in item.content_data["metadata"]
    assert bucket_keys() == stored_keys(item)


def test_an_expired_link_of_a_regenerate_keeps_the_stored_video(
    fake_heygen, storage_link, bucket_keys
):
    item = generated()
    old_path = item.storage_path
    item = _fallback(fake_heygen, storage_link, item=item)
    VideoJob.objects.update(provider_url_expires_at=timezone.now() - timedelta(minutes=1))
    assert promote_fallbacks()["expired"] == 1
    item.refresh_from_db()
    assert item.status == ContentItem.Status.READY and item.storage_path == old_path
    assert "expired" in item.content_data["metadata"]["storage_problem"]
    assert bucket_keys() == stored_keys(item)


def test_a_promotion_never_overwrites_a_row_that_changed_under_it(fake_heygen, storage_link):
    item = _fallback(fake_heygen, storage_link)
    stale = ContentItem.objects.get(pk=item.pk)
    ContentItem.objects.filter(pk=item.pk).update(status=ContentItem.Status.FAILED)
    with pytest.raises(Exception, match="no longer waits"):
        content_item_mark_stored(content_item=stale, content_data=stale.content_data,
                                 expected_video_id=stale.content_data["videoId"])  # fmt: skip


@pytest.fixture
def broken_broker(settings):
    """django-q2's ORM broker refuses every wake-up (a database trigger on its queue table)."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE OR REPLACE FUNCTION cs_no_broker() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'broker down'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute("CREATE TRIGGER cs_no_broker BEFORE INSERT ON django_q_ormq "
                           "FOR EACH ROW EXECUTE FUNCTION cs_no_broker()")  # fmt: skip
        else:
            cursor.execute("CREATE TRIGGER cs_no_broker BEFORE INSERT ON django_q_ormq "
                           "BEGIN SELECT RAISE(ABORT, 'broker down'); END")  # fmt: skip
    yield
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP TRIGGER IF EXISTS cs_no_broker ON django_q_ormq")
        else:
            cursor.execute("DROP TRIGGER IF EXISTS cs_no_broker")


def test_a_broker_outage_never_turns_a_committed_request_into_a_500(client, broken_broker):
    from django_q.models import OrmQ

    if "redis" in __import__("django.conf").conf.settings.Q_CLUSTER:
        pytest.skip("the ORM broker's queue table is the fault injected here")
    author = User.objects.create_user("author", password="pw")
    author.user_permissions.add(*Permission.objects.filter(
        codename__in=["view_contentitem", "add_contentitem"]))  # fmt: skip
    client.force_login(author)
    topic = make_topic()
    confirmed = generate_through_preview(client, topic, {"script": "One.\n\nTwo.",
                                                         "language": "en"})  # fmt: skip
    response = client.get(confirmed["Location"])
    assert response.status_code == 200
    assert "queued" in response.content.decode()
    assert VideoJob.objects.filter(state=State.QUEUED).count() == 2  # the rows stand
    assert not OrmQ.objects.exists()  # no wake-up went out: the sweep submits them
