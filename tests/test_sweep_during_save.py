"""Locks, not clocks: a sweep at the worst moment never deletes an object a row will reference.

A PostgreSQL trigger holds the save of a copied video for seconds while
`reconcile_storage --fix --grace-seconds 0` runs in another process; the save then commits
and its object is still there.
"""

import json
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from avatars import jobs
from avatars.models import VideoJob
from avatars.services import avatar_video_request
from tests.builders import make_topic, stored_keys
from tests.workers import ROOT, wait_until, worker_env
from topics.models import ContentItem
from videostore.models import UploadLedgerEntry

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.jobs,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs a second connection during a write"
    ),
]
HOLD_SECONDS = 4


def rendered_job(fake_heygen) -> VideoJob:
    fake_heygen.render_seconds = 0.01
    job = avatar_video_request(topic=make_topic(), script="Held save.", enqueue_submit=False)
    jobs.submit_queued_jobs()
    time.sleep(0.05)
    VideoJob.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
    jobs.check_due_renders()
    job.refresh_from_db()
    assert job.state == VideoJob.State.DOWNLOADING
    return job


def hold_item_updates(seconds: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION cs_hold_item() RETURNS trigger AS $$ BEGIN "
            f"PERFORM pg_sleep({seconds}); RETURN NEW; END; $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER cs_hold_item BEFORE UPDATE ON topics_contentitem "
            "FOR EACH ROW EXECUTE FUNCTION cs_hold_item()"
        )


def release_item_updates() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS cs_hold_item ON topics_contentitem")


def reconcile_in_another_process() -> dict:
    result = subprocess.run(
        [sys.executable, "manage.py", "reconcile_storage", "--fix", "--grace-seconds", "0",
         "--json"],
        cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_sweep_during_a_held_save_never_deletes_the_object(settings, fake_heygen, bucket_keys):
    settings.VIDEO_JOB_LEASE_SECONDS = 1  # the lease may even run out while the save is held
    job = rendered_job(fake_heygen)
    outcome: list[str] = []
    hold_item_updates(HOLD_SECONDS)

    def copy():
        try:
            outcome.append(jobs.copy_video_job(job.pk))
        finally:
            connection.close()

    worker = threading.Thread(target=copy)
    try:
        worker.start()
        wait_until(lambda: bucket_keys() != [], timeout=30, message="the upload never finished")
        time.sleep(1.5)  # the save is now held inside its transaction, its lease expired
        report = reconcile_in_another_process()
        worker.join(timeout=60)
    finally:
        release_item_updates()
    assert outcome == ["stored"]
    item = ContentItem.objects.get(pk=job.content_item_id)
    assert item.status == ContentItem.Status.READY
    assert bucket_keys() == stored_keys(item)  # the row's object survived the sweep
    assert report["deleted_orphans"] == 0
    assert not UploadLedgerEntry.objects.exists()
    job.refresh_from_db()
    assert job.state == VideoJob.State.STORED
