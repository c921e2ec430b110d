"""Workers killed with SIGKILL at random points; afterwards storage and database agree.

Real django-q2 workers (subprocesses) and the engine's sweep run generations against the fake
HeyGen server and the S3 server; the test kills workers at random moments and restarts them
(their jobs are taken over when the lease expires), then runs
`reconcile_storage --fix --grace-seconds 0`.
"""

import json
import random
import time
from io import StringIO

import pytest

from avatars.models import VideoJob
from avatars.services import avatar_video_request
from tests.builders import make_topic, run_command
from tests.workers import Engine, Worker, stop_all, wait_until
from topics.models import ContentItem
from topics.objects import stored_objects
from videostore.ledger import upload_lease_is_live
from videostore.models import UploadLedgerEntry

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.jobs]

RUNS = 8
MAX_KILLS = 6


def _reconcile(*args: str) -> tuple[int, dict]:
    out = StringIO()
    code = run_command("reconcile_storage", "--json", *args, stdout=out)
    return code, json.loads(out.getvalue())


@pytest.fixture
def chaos_settings(settings, fake_heygen):
    settings.VIDEO_JOB_LEASE_SECONDS = 2
    settings.VIDEO_JOB_RETRY_BASE_SECONDS = 1
    settings.VIDEO_JOB_MAX_ATTEMPTS = 6
    return settings


def test_random_worker_kills_leave_no_orphans_and_no_dangling_rows(
    chaos_settings, fake_heygen, bucket_keys
):
    chaos_settings.VIDEO_POLL_INTERVAL_SECONDS = 0.3
    fake_heygen.set_fault("slow_download", 1.5)
    rng = random.Random(20261125)
    topic = make_topic("Chaos")
    jobs = [
        avatar_video_request(topic=topic, script=f"Lesson part {n}: light and leaves.")
        for n in range(RUNS)
    ]
    kills = 0
    worker, engine = Worker(Q_WORKERS="2"), Engine()  # two copies at a time can be cut
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline:
            if not VideoJob.objects.filter(state__in=VideoJob.ACTIVE_STATES).exists():
                break
            time.sleep(rng.uniform(0.3, 2.0))
            if kills < MAX_KILLS and rng.random() < 0.6:
                worker.kill()  # its jobs are taken over once their 2-second leases expire
                kills += 1
                worker = Worker(Q_WORKERS="2")
    finally:
        stop_all(worker, engine)

    outcomes = {state: 0 for state in VideoJob.State.values}
    for job in VideoJob.objects.filter(pk__in=[j.pk for j in jobs]):
        outcomes[job.state] += 1
        assert job.state in VideoJob.TERMINAL_STATES, f"job {job.pk} stuck in {job.state}"
        if job.state == VideoJob.State.FAILED:
            assert job.last_error, "a failed job must say why"

    code, report = _reconcile("--fix", "--grace-seconds", "0")
    code_after, after = _reconcile("--grace-seconds", "0")
    print(
        f"\nchaos: runs={RUNS} kills={kills} outcomes="
        + ", ".join(f"{k}={v}" for k, v in outcomes.items() if v)
        + f" swept_orphans={report['deleted_orphans']} orphans_after={after['orphans']}"
        + f" dangling_after={after['dangling_missing'] + after['dangling_size']}"
    )
    assert code == 0 and code_after == 0
    assert after["orphans"] == 0
    assert after["dangling_missing"] == 0 and after["dangling_size"] == 0
    assert not UploadLedgerEntry.objects.exists()
    stored_items = ContentItem.objects.exclude(storage_path="")
    stored_paths = {stored.storage_path for item in stored_items for stored in stored_objects(item)}
    assert set(bucket_keys()) == stored_paths  # each video with its poster and captions
    assert len(stored_paths) == 3 * outcomes["stored"]


def test_worker_killed_mid_upload_then_reconcile_is_consistent(
    chaos_settings, fake_heygen, bucket_keys
):
    fake_heygen.set_fault("slow_download", 3.0)
    topic = make_topic("Kill mid-upload")
    job = avatar_video_request(topic=topic, script="A lesson that will be interrupted.")
    worker, engine = Worker(), Engine()
    try:
        wait_until(  # the copy has registered its upload and bytes are flowing
            lambda: (
                VideoJob.objects.get(pk=job.pk).state == VideoJob.State.UPLOADING
                and UploadLedgerEntry.objects.filter(
                    intent=UploadLedgerEntry.Intent.UPLOAD
                ).exists()
            ),
            timeout=60,
            message="the job never reached the upload stage",
        )
        engine.kill()
        worker.kill()
    finally:
        stop_all(worker, engine)
    assert UploadLedgerEntry.objects.filter(intent=UploadLedgerEntry.Intent.UPLOAD).exists()
    # While the dead worker's lease runs, its upload is not touched, whatever the grace period.
    code, report = _reconcile("--fix", "--grace-seconds", "0")
    assert UploadLedgerEntry.objects.filter(intent=UploadLedgerEntry.Intent.UPLOAD).exists()
    # The video, its poster and its captions: one unit, under one lease.
    pending = UploadLedgerEntry.objects.filter(intent=UploadLedgerEntry.Intent.UPLOAD).first()
    wait_until(  # the lease expires: the worker is dead
        lambda: not upload_lease_is_live(pending.storage_path), timeout=30, interval=0.05
    )
    code, report = _reconcile("--fix", "--grace-seconds", "0")
    assert code == 0, report
    assert bucket_keys() == []
    assert not UploadLedgerEntry.objects.exists(), list(UploadLedgerEntry.objects.values())
    item = ContentItem.objects.get(pk=job.content_item_id)
    assert item.storage_path == ""
