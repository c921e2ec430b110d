"""Locks, not clocks: a sweep at the worst moment never deletes an object a row will reference.

A PostgreSQL trigger holds the save of a copied video (on an advisory lock the test holds)
while `reconcile_storage --fix --grace-seconds 0` runs in another process; the save then
commits and its object is still there.
"""

import contextlib
import json
import subprocess
import sys
import threading

import psycopg
import pytest
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone

from avatars import jobs
from avatars.models import VideoJob
from avatars.services import avatar_video_request
from tests.builders import make_topic, stored_keys
from tests.workers import ROOT, database_url, wait_until, worker_env
from topics.models import ContentItem
from videostore.models import UploadLedgerEntry

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.jobs,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs a second connection during a write"
    ),
]
HOLD_LOCK = 20_261_202  # the advisory lock the held save waits for


def rendered_job(fake_heygen) -> VideoJob:
    fake_heygen.render_seconds = 0.01
    job = avatar_video_request(topic=make_topic(), script="Held save.", enqueue_submit=False)
    jobs.submit_queued_jobs()
    wait_until(lambda: fake_heygen.in_progress() == 0, timeout=10, interval=0.01)
    VideoJob.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
    jobs.check_due_renders()
    job.refresh_from_db()
    assert job.state == VideoJob.State.DOWNLOADING
    return job


@contextlib.contextmanager
def held_item_updates(item_id: int):
    """Updates of the item wait, inside their transaction, until the block ends: a trigger
    takes the advisory lock that a connection of the test's own holds meanwhile."""
    holder = psycopg.connect(database_url(), autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", [HOLD_LOCK])
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION cs_hold_item() RETURNS trigger AS $$ BEGIN "
            f"PERFORM pg_advisory_xact_lock({HOLD_LOCK}); RETURN NEW; END; $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER cs_hold_item BEFORE UPDATE ON topics_contentitem FOR EACH ROW "
            f"WHEN (NEW.id = {int(item_id)}) EXECUTE FUNCTION cs_hold_item()"
        )
    try:
        yield
    finally:
        holder.close()  # the held save goes on
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS cs_hold_item ON topics_contentitem")


def save_is_held() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND objid = %s AND database = (SELECT oid FROM pg_database"
            " WHERE datname = current_database())",
            [HOLD_LOCK],
        )
        return cursor.fetchone()[0] == 1


def lease_expired(job: VideoJob) -> bool:
    return VideoJob.objects.filter(pk=job.pk, lease_expires_at__lt=Now()).exists()


def reconcile_in_another_process() -> dict:
    result = subprocess.run(
        [sys.executable, "manage.py", "reconcile_storage", "--fix", "--grace-seconds", "0",
         "--json"],
        cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_sweep_during_a_held_save_never_deletes_the_object(settings, fake_heygen, bucket_keys):
    settings.VIDEO_JOB_LEASE_SECONDS = 1  # the lease runs out while the save is held
    job = rendered_job(fake_heygen)
    outcome: list[str] = []

    def copy():
        try:
            outcome.append(jobs.copy_video_job(job.pk))
        finally:
            connection.close()

    worker = threading.Thread(target=copy)
    with held_item_updates(job.content_item_id):
        worker.start()
        wait_until(save_is_held, timeout=60, interval=0.02, message="the save was never held")
        assert bucket_keys() != []  # uploaded; the row that names it is not committed yet
        wait_until(lambda: lease_expired(job), timeout=10, interval=0.05)
        report = reconcile_in_another_process()
        assert worker.is_alive()  # the save was held all along
    worker.join(timeout=60)
    assert outcome == ["stored"]
    item = ContentItem.objects.get(pk=job.content_item_id)
    assert item.status == ContentItem.Status.READY
    assert bucket_keys() == stored_keys(item)  # the row's object survived the sweep
    assert report["deleted_orphans"] == 0
    assert not UploadLedgerEntry.objects.exists()
    job.refresh_from_db()
    assert job.state == VideoJob.State.STORED
