"""Exactly one render per requested video: a create call is fenced by a title unique to it,
looked up when its answer is lost, and never sent again blindly; leases on the database's
clock. Against the fake HeyGen over HTTP and the S3 server."""

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from avatars import jobs, leases, steps
from avatars.inline import run_job_inline
from avatars.models import VideoJob
from avatars.pipeline import start_render
from avatars.providers import get_provider
from avatars.services import avatar_video_request
from tests.builders import make_topic, stored_keys
from topics.models import ContentItem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.jobs]
State = VideoJob.State


def queued(script: str = "Leaves make sugar from light.", **options) -> VideoJob:
    return avatar_video_request(topic=make_topic(), script=script, enqueue_submit=False, **options)


def stored_once(fake_heygen, job: VideoJob, bucket_keys) -> None:
    job.refresh_from_db()
    assert job.state == State.STORED, job.last_error
    assert fake_heygen.stats["renders_created"] == 1
    assert bucket_keys() == stored_keys(ContentItem.objects.get(pk=job.content_item_id))


def test_each_create_carries_a_title_unique_to_it_recorded_before_the_call(fake_heygen):
    job = queued()
    token = leases.new_token()
    claimed = steps.claim_next_submission(token)
    assert claimed.submission_title and f"cs-{job.pk}-" in claimed.submission_title
    assert claimed.submission_sent_at is not None and claimed.provider_video_id == ""
    assert steps.submit(claimed, token) == "submitted"
    (video,) = fake_heygen.videos.values()
    assert video["title"] == claimed.submission_title


def test_a_create_slower_than_the_lease_is_paid_once(settings, fake_heygen, bucket_keys):
    """The submit lease outlives the call (its deadline), so sweeps during a slow create take
    nothing over; the one render is recorded and stored."""
    settings.VIDEO_JOB_LEASE_SECONDS = 1
    settings.HEYGEN_REQUEST_TIMEOUT_SECONDS = 4
    fake_heygen.set_fault("accept_then_sleep", 2.5)
    job = queued()
    submitter = threading.Thread(target=lambda: (jobs.submit_queued_jobs(), connection.close()))
    submitter.start()
    while not VideoJob.objects.filter(pk=job.pk, state=State.RENDERING).exists():
        submitter.join(0.02)
    while submitter.is_alive():  # sweeps on other "hosts" while the create is in flight
        jobs.resolve_unknown_submissions()
        assert jobs.submit_queued_jobs() == 0
        submitter.join(0.3)
    fake_heygen.faults.clear()
    assert run_job_inline(job.pk, poll_interval=0.01).state == State.STORED
    stored_once(fake_heygen, job, bucket_keys)


@pytest.mark.parametrize("fault", ["accept_then_sleep", "accept_then_drop"])
def test_a_create_accepted_but_unanswered_is_found_and_adopted(
    settings, fake_heygen, bucket_keys, fault
):
    settings.HEYGEN_REQUEST_TIMEOUT_SECONDS = 1
    fake_heygen.set_fault(fault, 2 if fault == "accept_then_sleep" else 1)
    job = queued()
    token = leases.new_token()
    assert steps.submit(steps.claim_next_submission(token), token) == "unknown"
    job.refresh_from_db()
    assert job.state == State.RENDERING and job.provider_video_id == ""  # still holds its slot
    assert "looked up" in job.last_error
    fake_heygen.faults.clear()
    assert run_job_inline(job.pk, poll_interval=0.01).state == State.STORED
    stored_once(fake_heygen, job, bucket_keys)


def test_a_worker_killed_during_the_create_call_is_adopted_not_paid_twice(fake_heygen, bucket_keys):
    job = queued()
    dead = steps.claim_next_submission("dead-host:1:x")
    # The dead worker's create reached the provider; it died before recording the answer.
    start_render(steps._options(dead), provider=get_provider())
    VideoJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(1))
    assert jobs.resolve_unknown_submissions() == {"adopted": 1}
    job.refresh_from_db()
    assert job.provider_video_id in fake_heygen.videos and job.attempts == 0
    assert run_job_inline(job.pk, poll_interval=0.01).state == State.STORED
    stored_once(fake_heygen, job, bucket_keys)


def test_an_adopted_render_does_not_teach_the_render_time(fake_heygen):
    """Its end is seen only after the dead holder's submission lease: were it a sample, the
    next renders would be checked that much later (the chaos storm's 70 s first checks)."""
    sent = timezone.now() - timedelta(minutes=5)
    for n in range(3):  # three renders of 10 s, 10 characters of script: 1 s per character
        VideoJob.objects.filter(pk=queued("0123456789").pk).update(
            state=State.STORED, submission_sent_at=sent + timedelta(seconds=n),
            rendered_at=sent + timedelta(seconds=n + 10),
        )  # fmt: skip
    assert leases.render_seconds_per_char() == pytest.approx(1.0)
    for _ in range(3):  # as many adopted renders, each seen minutes after its send
        job = queued("0123456789")
        dead = steps.claim_next_submission("dead-host:1:x")
        assert dead.pk == job.pk
        start_render(steps._options(dead), provider=get_provider())
        VideoJob.objects.filter(pk=job.pk).update(  # sent 2 minutes ago, its holder died
            submission_sent_at=timezone.now() - timedelta(minutes=2),
            lease_expires_at=timezone.now() - timedelta(1),
        )
        assert jobs.resolve_unknown_submissions() == {"adopted": 1}
        VideoJob.objects.filter(pk=job.pk).update(state=State.STORED, rendered_at=timezone.now())
    assert leases.render_seconds_per_char() == pytest.approx(1.0)


def test_a_live_submission_is_never_taken_by_a_host_whose_clock_runs_ahead(fake_heygen):
    job = queued()
    live = steps.claim_next_submission("live-host:1:x")
    assert live.pk == job.pk
    ahead = timezone.now() + timedelta(seconds=90)
    with mock.patch("django.utils.timezone.now", return_value=ahead):
        assert jobs.resolve_unknown_submissions() == {}
        assert jobs.submit_queued_jobs() == 0
        assert jobs.check_due_renders() == {}
    job.refresh_from_db()
    assert job.claimed_by == "live-host:1:x" and job.state == State.RENDERING
    assert fake_heygen.stats["renders_created"] == 0


def test_an_unknown_outcome_holds_its_render_slot_until_resolved(settings, fake_heygen):
    settings.VIDEO_MAX_CONCURRENT_RENDERS = 1
    settings.HEYGEN_REQUEST_TIMEOUT_SECONDS = 1
    first, second = queued("One."), queued("Two.")
    fake_heygen.set_fault("accept_then_sleep", 2)
    token = leases.new_token()
    assert steps.submit(steps.claim_next_submission(token), token) == "unknown"
    fake_heygen.faults.clear()
    assert jobs.submit_queued_jobs() == 0  # the unknown create still counts against the cap
    assert fake_heygen.in_progress() <= 1
    VideoJob.objects.filter(pk=first.pk).update(next_check_at=timezone.now())
    assert jobs.resolve_unknown_submissions() == {"adopted": 1}
    assert VideoJob.objects.get(pk=second.pk).state == State.QUEUED


def test_a_create_that_never_arrived_is_sent_again_and_max_attempts_holds(settings, fake_heygen):
    """A lookup that proves absence allows a new create; each one counts, up to the cap."""
    job = queued(max_attempts=2)
    for _ in range(2):
        claimed = steps.claim_next_submission("dead-host:2:y")  # died before sending
        assert claimed is not None
        VideoJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(1))
        jobs.resolve_unknown_submissions()
    job.refresh_from_db()
    assert job.state == State.FAILED and job.attempts == 2
    assert "never received" in job.last_error
    assert fake_heygen.stats["renders_created"] == 0


def test_a_lookup_that_keeps_failing_gives_up_after_max_attempts(settings, fake_heygen):
    settings.HEYGEN_REQUEST_TIMEOUT_SECONDS = 1
    fake_heygen.set_fault("accept_then_drop", 1)
    fake_heygen.set_fault("list_500", 100)
    job = queued(max_attempts=2)
    assert run_job_inline(job.pk, poll_interval=0.01).state == State.FAILED
    job.refresh_from_db()
    assert "could not be checked" in job.last_error
    assert fake_heygen.stats["renders_created"] == 1  # never a second create


def test_an_upload_lease_is_never_given_up_by_a_host_whose_clock_runs_ahead():
    """Upload leases are on the database's clock too: a sweep on a host 90 s ahead leaves a
    live upload alone (before, every copy on such a cluster was given up and retried)."""
    from videostore import ledger
    from videostore.models import UploadLedgerEntry

    path = "avatar_videos/avatar_clock_0123abcd.mp4"
    ledger.register_pending_upload(path, reason="clock", owner="live-host:1:x", lease_seconds=60)
    ahead = timezone.now() + timedelta(seconds=90)
    with mock.patch("django.utils.timezone.now", return_value=ahead):
        assert ledger.expire_dead_uploads() == 0
        assert ledger.upload_lease_is_live(path)
    assert UploadLedgerEntry.objects.get(storage_path=path).intent == "upload"
