"""The job engine step by step, against the fake HeyGen server and the S3 server over HTTP."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from avatars import jobs, leases, steps
from avatars.inline import run_job_inline
from avatars.models import VideoJob
from avatars.providers import get_provider
from avatars.services import avatar_video_request
from tests.builders import make_topic, stored_keys
from tests.workers import wait_until
from topics.models import ContentItem
from videostore.models import UploadLedgerEntry

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.jobs]
State = VideoJob.State


def no_enqueue(step, job_id=None):
    return None


def queue(n: int = 1, topic=None) -> list[VideoJob]:
    topic = topic or make_topic()
    return [
        avatar_video_request(topic=topic, script=f"Lesson {i}: leaves.", enqueue_submit=False)
        for i in range(n)
    ]


def make_due(job: VideoJob) -> None:
    time.sleep(0.05)  # longer than the fake's shortest render
    VideoJob.objects.filter(pk=job.pk).update(next_check_at=timezone.now())


def test_each_step_moves_the_job_on_and_frees_the_worker(fake_heygen, bucket_keys):
    (job,) = queue()
    assert job.state == State.QUEUED
    assert jobs.submit_queued_jobs() == 1
    job.refresh_from_db()
    assert job.state == State.RENDERING and job.provider_video_id
    assert job.claimed_by == "" and job.lease_expires_at is None  # nobody waits on the render
    assert fake_heygen.stats["renders_created"] == 1

    VideoJob.objects.filter(pk=job.pk).update(next_check_at=timezone.now() + timedelta(hours=1))
    assert jobs.check_due_renders() == {}  # not due: not even asked
    for _ in range(5):  # the fake walks pending -> processing -> completed, one poll a step
        make_due(job)
        checked_at = timezone.now()
        jobs.check_due_renders()
        job.refresh_from_db()
        if job.state != State.RENDERING:
            break
        assert job.next_check_at > checked_at  # backoff: the next look is scheduled
    assert job.state == State.DOWNLOADING and job.rendered_at

    assert jobs.copy_video_job(job.pk) == "stored"
    job.refresh_from_db()
    item = ContentItem.objects.get(pk=job.content_item_id)
    assert job.state == State.STORED and job.bytes_copied == item.content_data["fileSize"]
    assert item.status == ContentItem.Status.READY
    assert bucket_keys() == stored_keys(item)
    assert not UploadLedgerEntry.objects.exists()
    assert jobs.copy_video_job(job.pk) == "skipped"  # a duplicate delivery changes nothing
    assert fake_heygen.stats["renders_created"] == 1


def test_completed_without_a_video_url_is_a_clear_failure(fake_heygen, bucket_keys):
    fake_heygen.set_fault("no_video_url")
    (job,) = queue()
    job = run_job_inline(job.pk, poll_interval=0.01)
    assert job.state == State.FAILED
    assert "no video URL" in job.last_error
    assert ContentItem.objects.get(pk=job.content_item_id).status == ContentItem.Status.FAILED
    assert bucket_keys() == []


def test_render_slots_cap_the_jobs_in_rendering_oldest_first(settings, fake_heygen):
    settings.VIDEO_MAX_CONCURRENT_RENDERS = 2
    queued = queue(5)
    assert jobs.submit_queued_jobs() == 2
    rendering = VideoJob.objects.filter(state=State.RENDERING)
    assert sorted(rendering.values_list("pk", flat=True)) == [queued[0].pk, queued[1].pk]
    assert jobs.submit_queued_jobs() == 0  # no slot: the others wait as rows, not in a worker
    assert fake_heygen.in_progress() == 2
    fake_heygen.render_seconds = 0.01  # the first two finish
    make_due(queued[0])
    make_due(queued[1])
    jobs.check_due_renders()
    assert jobs.submit_queued_jobs() == 2
    assert VideoJob.objects.filter(state=State.RENDERING).count() == 2
    assert VideoJob.objects.get(pk=queued[4].pk).state == State.QUEUED


def test_a_concurrency_429_puts_the_job_back_without_an_attempt(settings, fake_heygen):
    settings.VIDEO_MAX_CONCURRENT_RENDERS = 5
    fake_heygen.max_concurrent = 1  # the provider's own plan cap is lower than ours
    queue(2)
    started = timezone.now()
    assert jobs.submit_queued_jobs() == 2
    # The two creates overlap: whichever the provider took first renders, the other waits.
    (rendering,) = VideoJob.objects.filter(state=State.RENDERING)
    (waiting,) = VideoJob.objects.filter(state=State.QUEUED)
    assert rendering.provider_video_id and waiting.attempts == 0
    assert "render slot" in waiting.last_error and waiting.next_attempt_at > started
    assert fake_heygen.stats["renders_created"] == 1
    assert fake_heygen.stats["concurrency_429"] == 1


def test_webhook_and_poller_racing_advance_a_job_once(fake_heygen):
    fake_heygen.render_seconds = 0.01
    (job,) = queue()
    jobs.submit_queued_jobs()
    job.refresh_from_db()
    make_due(job)
    outcomes: dict[str, dict] = {}
    barrier = threading.Barrier(2)

    def run(name, check):
        barrier.wait()
        try:
            outcomes[name] = check()
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=("webhook", lambda: jobs.check_render_job(job.pk))),
        threading.Thread(target=run, args=("poller", jobs.check_due_renders)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rendered = sum(outcome.get("rendered", 0) for outcome in outcomes.values())
    assert rendered == 1
    job.refresh_from_db()
    # The webhook's task copies the render it saw end in the same task; the poller wakes a
    # worker for the copy.
    expected = State.STORED if outcomes["webhook"].get("rendered") else State.DOWNLOADING
    assert job.state == expected
    assert fake_heygen.stats["renders_created"] == 1


def test_a_dead_workers_copy_is_taken_over_once_its_lease_expires(fake_heygen, bucket_keys):
    (job,) = queue()
    jobs.submit_queued_jobs()
    job.refresh_from_db()
    fake_heygen.render_seconds = 0.01
    make_due(job)
    jobs.check_due_renders()
    dead = leases.claim(job.pk, token="dead-host:1:x", states=(State.DOWNLOADING,))
    assert dead is not None
    assert jobs.copy_video_job(job.pk) == "skipped"  # the lease is live: hands off
    ended = timezone.now() - timedelta(1)
    VideoJob.objects.filter(pk=job.pk).update(lease_expires_at=ended, next_check_at=ended)
    # The sweep takes the dead worker's copy over itself, once (a worker's death may have
    # wedged its cluster: a wake-up would wait there).
    taken: list[int] = []
    assert jobs._wake_copies(taken.append) == {"woken": 0, "taken_over": 1}
    assert jobs._wake_copies(taken.append) == {"woken": 0, "taken_over": 0}
    assert taken == [job.pk]
    assert jobs.copy_video_job(job.pk) == "stored"
    job.refresh_from_db()
    assert job.attempts == 1  # the takeover counts
    assert fake_heygen.stats["renders_created"] == 1  # resumed from the recorded id
    with pytest.raises(leases.LeaseLost):  # the dead worker, were it to wake, changes nothing
        leases.transition(job.pk, token="dead-host:1:x", state=State.FAILED)
    assert bucket_keys() == stored_keys(ContentItem.objects.get(pk=job.content_item_id))


def test_a_submitter_that_died_before_recording_the_id_frees_its_slot(settings, fake_heygen):
    settings.VIDEO_MAX_CONCURRENT_RENDERS = 1
    (job,) = queue()
    claimed = steps.claim_next_submission("dead-host:2:y")
    assert claimed.pk == job.pk
    assert jobs.submit_queued_jobs() == 0
    VideoJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(1))
    assert jobs.resolve_unknown_submissions()["absent"] == 1
    assert jobs.submit_queued_jobs() == 1


def _fail_item_updates():
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE OR REPLACE FUNCTION cs_fail_item() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'items table refuses updates'; END; $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER cs_fail_item BEFORE UPDATE ON topics_contentitem "
                "FOR EACH ROW EXECUTE FUNCTION cs_fail_item()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER cs_fail_item BEFORE UPDATE ON topics_contentitem "
                "BEGIN SELECT RAISE(ABORT, 'items table refuses updates'); END"
            )


def _drop_trigger():
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP TRIGGER IF EXISTS cs_fail_item ON topics_contentitem")
        else:
            cursor.execute("DROP TRIGGER IF EXISTS cs_fail_item")


def test_a_failing_item_update_cannot_leave_the_job_unfinished(settings, fake_heygen, bucket_keys):
    settings.VIDEO_JOB_MAX_ATTEMPTS = 1
    (job,) = queue()
    _fail_item_updates()
    try:
        job = run_job_inline(job.pk, poll_interval=0.01)
    finally:
        _drop_trigger()
    assert job.state == State.FAILED
    assert "refuses updates" in job.last_error
    assert bucket_keys() == []  # the uploaded object went with the rolled back save
    assert not UploadLedgerEntry.objects.filter(intent="upload").exists()


def test_the_engine_sweep_runs_the_whole_course_without_a_worker_waiting(settings, fake_heygen):
    settings.VIDEO_MAX_CONCURRENT_RENDERS = 3
    fake_heygen.render_seconds = 0.01
    queued = queue(4)
    report = jobs.dispatch_due_work()
    assert report["submitted"] == 3
    wait_until(lambda: fake_heygen.in_progress() == 0, timeout=10, interval=0.01)
    VideoJob.objects.update(next_check_at=timezone.now())
    for job in VideoJob.objects.filter(state=State.RENDERING):
        assert jobs.check_render_job(job.pk) == {"rendered": 1}
    for job in VideoJob.objects.filter(state=State.DOWNLOADING):
        assert jobs.copy_video_job(job.pk) == "stored"
    jobs.dispatch_due_work()
    last = VideoJob.objects.get(pk=queued[3].pk)
    assert last.state == State.RENDERING
    assert run_job_inline(last.pk, poll_interval=0.01).state == State.STORED
    assert get_provider().name == "heygen"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks")
def test_a_claim_locks_only_its_job_not_the_shared_topic(fake_heygen):
    """Jobs of one course share a topic row: a claim must not lock (nor skip over) it."""
    fake_heygen.render_seconds = 0.01
    first, second = queue(2)
    jobs.submit_queued_jobs()
    for job in (first, second):
        make_due(job)
    jobs.check_due_renders()
    holding, release = threading.Event(), threading.Event()

    def hold_first_claim():
        try:
            from django.db import transaction

            from topics.models import Topic

            with transaction.atomic():  # e.g. an author saving the topic, or another claim
                VideoJob.objects.select_for_update().get(pk=first.pk)
                Topic.objects.select_for_update().get(pk=first.content_item.topic_id)
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=hold_first_claim)
    thread.start()
    try:
        assert holding.wait(10)
        claimed = leases.claim(second.pk, token="worker-b:2:z", states=(State.DOWNLOADING,))
        assert claimed is not None and claimed.pk == second.pk
        assert leases.claim(first.pk, token="worker-b:2:z", states=(State.DOWNLOADING,)) is None
    finally:
        release.set()
        thread.join()


def test_deleting_the_item_during_its_copy_leaves_nothing_behind(fake_heygen, bucket_keys):
    from topics.services import content_item_delete

    fake_heygen.render_seconds = 0.01
    (job,) = queue()
    jobs.submit_queued_jobs()
    make_due(job)
    jobs.check_due_renders()
    token = leases.new_token()
    claimed = leases.claim(job.pk, token=token, states=(State.DOWNLOADING,))
    content_item_delete(content_item=ContentItem.objects.get(pk=job.content_item_id))
    assert steps.copy(claimed, token) == "lost"  # the job went with its item
    assert bucket_keys() == []
    assert not UploadLedgerEntry.objects.exists()


def test_one_wake_up_per_copy_and_an_untaken_one_is_run_by_the_sweep(settings, fake_heygen):
    """Liveness whatever the job workers do: a copy gets one wake-up; if no worker takes it
    within a lease (a stalled or missing cluster), the sweep runs it; wake-ups never pile up."""
    settings.VIDEO_JOB_LEASE_SECONDS = 1
    fake_heygen.render_seconds = 0.01
    (job,) = queue()
    jobs.submit_queued_jobs()
    make_due(VideoJob.objects.get(pk=job.pk))
    assert jobs.check_due_renders() == {"rendered": 1}  # its wake-up is sent (and lost here)
    taken: list[int] = []
    assert jobs._wake_copies(taken.append) == {"woken": 0, "taken_over": 0}  # not yet due
    assert leases.stalled_figures()["wakeups_not_taken"] == 0
    wait_until(  # one lease: the untaken wake-up counts as stalled
        lambda: leases.stalled_figures()["wakeups_not_taken"] == 1, timeout=5, interval=0.05
    )
    # Due at the wake-up's lease end, read by the same clock a moment apart: taken over once.
    wait_until(lambda: jobs._wake_copies(taken.append)["taken_over"] == 1, timeout=5,
               interval=0.05)  # fmt: skip
    assert jobs._wake_copies(taken.append) == {"woken": 0, "taken_over": 0}
    assert taken == [job.pk]
    assert jobs.copy_video_job(job.pk) == "stored"
    assert leases.stalled_figures() == {"past_lease": 0, "wakeups_not_taken": 0,
                                        "oldest_wakeup_seconds": None}  # fmt: skip


def test_the_first_check_comes_when_recent_renders_say_it_ends(settings, fake_heygen):
    """Without a webhook, a render's first status check is timed from the provider's recent
    renders (seconds per script character), then short checks: not a fixed first interval."""
    settings.VIDEO_POLL_INTERVAL_SECONDS = 10
    done = queue(3)
    now = timezone.now()
    for job in done:  # three past renders of 20 s for their scripts' length
        VideoJob.objects.filter(pk=job.pk).update(
            state=State.STORED, provider="heygen", submission_sent_at=now - timedelta(seconds=60),
            rendered_at=now - timedelta(seconds=40),
        )  # fmt: skip
    (job,) = queue()
    started = time.monotonic()
    assert jobs.submit_queued_jobs() == 1
    submit_seconds = time.monotonic() - started  # the create call's time counts too
    job.refresh_from_db()
    assert job.expected_render_seconds == pytest.approx(20, rel=0.2)
    first = (job.next_check_at - job.submission_sent_at).total_seconds()
    expected = job.expected_render_seconds + steps.EXPECTED_MARGIN_SECONDS
    assert expected - 0.5 <= first <= expected + submit_seconds + 0.5, (first, submit_seconds)
    assert steps._next_check_in(job, job.next_check_at) == pytest.approx(
        max(1.0, job.expected_render_seconds / 10)
    )
