"""How fast the engine moves a render on, counted rather than timed: status calls per
render at the fake HeyGen, SQL statements per job, and render times learned without the
polling delay."""

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from avatars import jobs, leases, steps
from avatars.models import VideoJob
from avatars.services import avatar_video_request
from tests.builders import make_topic, stored_keys
from tests.workers import wait_until
from topics.models import ContentItem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.jobs]
State = VideoJob.State


def queue(n: int = 1) -> list[VideoJob]:
    topic = make_topic()
    return [
        avatar_video_request(topic=topic, script=f"Lesson {i}: leaves.", enqueue_submit=False)
        for i in range(n)
    ]


def rendered(fake_heygen, n: int) -> list[VideoJob]:
    """n jobs submitted, their renders done at the fake (not yet checked)."""
    fake_heygen.render_seconds = 0.01
    queued = queue(n)
    assert jobs.submit_queued_jobs() == n
    time.sleep(0.05)
    return queued


def kinds(queries) -> Counter:
    """Statements by their first words (for a failing assertion's message)."""
    return Counter(" ".join(q["sql"].split()[:3])[:60] for q in queries)


def test_the_webhooks_check_copies_with_its_own_status_call(fake_heygen, bucket_keys):
    """One status call per render with the webhook: the copy in the check's task uses the
    check's fresh signed URL instead of asking again."""
    (job,) = rendered(fake_heygen, 1)
    calls_before = fake_heygen.stats["status_calls"]
    assert jobs.check_render_job(job.pk) == {"rendered": 1}
    job.refresh_from_db()
    assert job.state == State.STORED
    assert fake_heygen.stats["status_calls"] - calls_before == 1
    item = ContentItem.objects.get(pk=job.content_item_id)
    assert bucket_keys() == stored_keys(item)  # the video, its poster and captions


#: Statements one job's check and copy may take (webhook path, one task): claim and record
#: of the check (2 + 2), the ledger entry and its removal (2), the upload's progress (1), the
#: item's save (3) and the job's end (1); 29 before the check held its job for the copy and
#: writes read the database's clock themselves. Plus one for the poster and captions stored
#: with the video (their ledger entries are written with the video's, in one statement).
CHECK_AND_COPY_STATEMENTS = 13


def engine_statements(queries) -> list[dict]:
    """What the engine sends, as the course benchmark counts it: not the driver's
    transaction control, not the broker's own table (a wake-up)."""
    return [q for q in queries if q["sql"].split()[0] not in ("BEGIN", "COMMIT")
            and "django_q_" not in q["sql"]]  # fmt: skip


def test_a_check_and_its_copy_take_few_statements_per_job(monkeypatch, fake_heygen, bucket_keys):
    """Check and copy in one task: the check's claim holds the job through the copy (no
    second claim), and the database's clock is read inside the writes (no `SELECT
    clock_timestamp()` of their own)."""
    from avatars import pipeline

    monkeypatch.setattr(pipeline, "RENEW_EVERY_SECONDS", 3600)  # a copy's progress is apart
    monkeypatch.setattr(steps, "RENEW_EVERY_SECONDS", 3600)
    queued = rendered(fake_heygen, 3)
    with CaptureQueriesContext(connection) as captured:
        for job in queued:
            assert jobs.check_render_job(job.pk) == {"rendered": 1}
    assert VideoJob.objects.filter(state=State.STORED).count() == 3
    sent = engine_statements(captured.captured_queries)
    assert not [q for q in sent if q["sql"].startswith("SELECT clock_timestamp()")]
    assert len(sent) / 3 <= CHECK_AND_COPY_STATEMENTS, kinds(sent)


def test_the_sweeps_check_copies_on_the_engines_threads_without_a_wake_up(
    monkeypatch, fake_heygen, bucket_keys
):
    """Without a webhook: a render the engine's sweep finds done is copied at once on the
    engine's free copy threads, with the check's URL (one status call), not woken through
    the broker for a worker to claim later."""
    sent: list[str] = []
    monkeypatch.setattr(jobs, "_send", lambda func, *args, name: sent.append(name))
    (job,) = rendered(fake_heygen, 1)
    VideoJob.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
    calls_before = fake_heygen.stats["status_calls"]
    threads = jobs._CopyThreads(2)
    report = jobs.dispatch_due_work(run_copy=threads)
    threads.shutdown()
    assert report["checked"] == {"copying": 1}
    assert VideoJob.objects.get(pk=job.pk).state == State.STORED
    assert not [name for name in sent if name.startswith("video-copy")]
    assert fake_heygen.stats["status_calls"] - calls_before == 1


def test_the_sweep_wakes_a_worker_when_its_copy_threads_are_busy(monkeypatch, fake_heygen):
    sent: list[str] = []
    monkeypatch.setattr(jobs, "_send", lambda func, *args, name: sent.append(name))
    (job,) = rendered(fake_heygen, 1)
    VideoJob.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
    threads = jobs._CopyThreads(1)
    threads.running[-1] = True  # its one thread is copying a render found done
    assert jobs.check_due_renders(run_copy=threads) == {"rendered": 1}
    assert f"video-copy-{job.pk}" in sent
    assert VideoJob.objects.get(pk=job.pk).claimed_by == ""  # free for the woken worker
    threads.shutdown()


def woken_copy(monkeypatch, fake_heygen) -> VideoJob:
    """A render found done by the sweep while its copy threads were busy: woken for a worker
    (the wake-up itself not sent), its links recorded on the job."""
    monkeypatch.setattr(jobs, "_send", lambda func, *args, name: None)
    (job,) = rendered(fake_heygen, 1)
    VideoJob.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
    threads = jobs._CopyThreads(1)
    threads.running[-1] = True
    assert jobs.check_due_renders(run_copy=threads) == {"rendered": 1}
    threads.shutdown()
    return VideoJob.objects.get(pk=job.pk)


def test_a_woken_copy_uses_the_links_its_check_recorded(monkeypatch, fake_heygen, bucket_keys):
    """The worker's copy downloads from the signed links the check recorded (one status call
    per render, where a woken copy asked again: 1.9 per render in the course benchmark); the
    finished job keeps no links."""
    job = woken_copy(monkeypatch, fake_heygen)
    assert job.rendered_links["video_url"] and job.rendered_links["url_expires_at"]
    calls_before = fake_heygen.stats["status_calls"]
    jobs.copy_video_job(job.pk)
    job.refresh_from_db()
    assert job.state == State.STORED and job.rendered_links == {}
    assert fake_heygen.stats["status_calls"] == calls_before
    assert bucket_keys() == stored_keys(ContentItem.objects.get(pk=job.content_item_id))


@pytest.mark.parametrize("why", ["expiring", "after a failed attempt"])
def test_a_woken_copy_asks_again_when_the_links_may_not_serve(
    why, monkeypatch, fake_heygen, bucket_keys
):
    """Links that expire within 5 minutes, or a copy attempt that failed before (whatever
    failed: the links may be why): a fresh status call first."""
    job = woken_copy(monkeypatch, fake_heygen)
    if why == "expiring":
        soon = (timezone.now() + timedelta(seconds=60)).isoformat()
        VideoJob.objects.filter(pk=job.pk).update(
            rendered_links={**job.rendered_links, "url_expires_at": soon}
        )
    else:
        VideoJob.objects.filter(pk=job.pk).update(last_error="Storage is unavailable.")
    calls_before = fake_heygen.stats["status_calls"]
    jobs.copy_video_job(job.pk)
    assert VideoJob.objects.get(pk=job.pk).state == State.STORED
    assert fake_heygen.stats["status_calls"] - calls_before == 1


def test_a_render_end_is_learned_from_the_webhook_not_from_when_its_check_ran(fake_heygen):
    """The render time learned for the next renders' first checks is the provider's word
    (the webhook's arrival), not the moment a busy worker got to the check."""
    (job,) = rendered(fake_heygen, 1)
    job.refresh_from_db()
    assert jobs.handle_render_event(callback_id=str(job.callback_id),
                                    provider_video_id=job.provider_video_id,
                                    succeeded=True) == "checking"  # fmt: skip
    told = VideoJob.objects.get(pk=job.pk).rendered_at
    time.sleep(0.3)  # the workers are busy
    jobs.check_render_job(job.pk)
    job.refresh_from_db()
    assert job.state == State.STORED
    assert job.rendered_at == told
    assert (job.finished_at - job.rendered_at).total_seconds() >= 0.3


def test_a_polled_render_end_is_learned_between_the_last_two_checks(settings, fake_heygen):
    """Polled: the render ended after the check that saw it running and by the one that saw
    it done; the midpoint is learned, not the later check (the polling delay)."""
    fake_heygen.render_seconds = 3.0  # the first check comes well before, even on a busy host
    (job,) = queue(1)
    jobs.submit_queued_jobs()
    VideoJob.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
    assert jobs.check_due_renders() == {"rendering": 1}
    running_at = VideoJob.objects.get(pk=job.pk).updated_at
    time.sleep(3.2)
    VideoJob.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
    before = leases.db_now()
    assert jobs.check_due_renders() == {"rendered": 1}
    after = leases.db_now()
    job.refresh_from_db()
    assert running_at + (before - running_at) / 2 <= job.rendered_at
    assert job.rendered_at <= running_at + (after - running_at) / 2


def test_a_render_done_at_its_timed_first_check_is_learned_a_little_before_it(fake_heygen):
    """Found done by the first check, timed from the expected end: only "by then" is known.
    Learning the check's time would make each batch's checks later than the last's; a
    little before the expectation lets them come earlier when renders got faster."""
    (job,) = rendered(fake_heygen, 1)
    expected = 5.0
    sent = leases.db_now() - timedelta(seconds=expected + 1)
    VideoJob.objects.filter(pk=job.pk).update(expected_render_seconds=expected,
                                              submission_sent_at=sent,
                                              next_check_at=timezone.now())  # fmt: skip
    assert jobs.check_due_renders() == {"rendered": 1}
    job.refresh_from_db()
    learned = (job.rendered_at - job.submission_sent_at).total_seconds()
    assert learned == pytest.approx(expected - steps.EXPECTED_MARGIN_SECONDS, abs=0.01)


def test_checks_after_the_expected_end_grow_gently_not_to_the_long_interval(settings):
    """A render a little late is checked at short intervals, then intervals growing by
    half from there: not a jump to the no-history schedule's 50 s after three checks."""
    settings.VIDEO_POLL_INTERVAL_SECONDS, settings.VIDEO_POLL_MAX_INTERVAL_SECONDS = 10, 60
    job = VideoJob(expected_render_seconds=20)
    delays = []
    for checks in range(7):
        job.render_checks = checks
        delays.append(steps._next_check_in(job, timezone.now()))
    assert delays == pytest.approx([2, 2, 2, 3, 4.5, 6.75, 10.125])


def test_the_sweep_sleeps_only_until_the_next_check_is_due(settings, fake_heygen):
    """A render's check is due before the next tick: the sweep wakes for it (a hint; the
    claim decides), instead of up to a tick late."""
    (job,) = rendered(fake_heygen, 1)
    soon = leases.db_now() + timedelta(seconds=0.5)
    VideoJob.objects.filter(pk=job.pk).update(next_check_at=soon + timedelta(seconds=60))
    assert jobs._until_next_tick(2.0) == pytest.approx(2.0, abs=0.01)  # not due for long
    VideoJob.objects.filter(pk=job.pk).update(next_check_at=soon)
    assert 0.3 < jobs._until_next_tick(2.0) <= 0.5
    VideoJob.objects.filter(pk=job.pk).update(next_check_at=soon - timedelta(seconds=5))
    assert jobs._until_next_tick(2.0) == jobs.MIN_SLEEP_SECONDS


def test_the_engines_copy_threads_make_their_storage_clients_when_they_start(monkeypatch):
    """A session and a client cost seconds of CPU on a busy host: each engine copy thread
    makes its own when the engine starts, not on the first finished render's copy."""
    import threading
    from types import SimpleNamespace

    warmed: list[str] = []
    storage = SimpleNamespace(warm_up=lambda: warmed.append(threading.current_thread().name))
    monkeypatch.setattr(jobs, "VideoStorage", lambda: SimpleNamespace(storage=storage))
    threads = jobs._CopyThreads(2)
    threads.shutdown()
    assert len(set(warmed)) == 2 + jobs.WARM_TAKEOVER_THREADS  # and the first takeovers'


def test_the_lease_watch_wakes_as_the_earliest_held_lease_ends(fake_heygen):
    """Held leases: the engine's lease watch looks just after the earliest one ends (a dead
    holder's job is taken over then, not up to a tick later); ended leases and released jobs
    don't count."""
    assert jobs._at_next_lease_end() == float("inf")  # nothing held
    (job,) = rendered(fake_heygen, 1)
    ends = leases.db_now() + timedelta(seconds=0.5)
    VideoJob.objects.filter(pk=job.pk).update(claimed_by="elsewhere:1:dead", lease_expires_at=ends)
    wake_in = jobs._at_next_lease_end() - time.monotonic()
    assert 0.3 < wake_in <= 0.5 + jobs.LEASE_END_SLACK_SECONDS
    # Ended a moment ago (read late, or a takeover that came a hair early): look again now.
    VideoJob.objects.filter(pk=job.pk).update(lease_expires_at=ends - timedelta(seconds=1))
    wake_in = jobs._at_next_lease_end() - time.monotonic()
    assert 0 < wake_in <= jobs.MIN_SLEEP_SECONDS
    lookback = timedelta(seconds=jobs.LEASE_WATCH_LOOKBACK_SECONDS + 1)
    VideoJob.objects.filter(pk=job.pk).update(lease_expires_at=ends - lookback)
    assert jobs._at_next_lease_end() == float("inf")  # ended long ago: the next tick takes it


def test_a_dead_holders_copy_is_taken_over_as_its_lease_ends_not_at_the_next_tick(
    fake_heygen, settings
):
    """A copy whose holder died with 0.5 s of lease left: with a 60 s tick, only the wake at
    the lease's end can have the engine take it over within 3 s (a takeover from a dead
    holder counts an attempt; on a loaded host the copy itself may still retry)."""
    settings.VIDEO_ENGINE_COPY_THREADS = 1  # each makes its storage clients at the start
    (job,) = rendered(fake_heygen, 1)
    ends = leases.db_now() + timedelta(seconds=0.5)
    VideoJob.objects.filter(pk=job.pk).update(  # as a holder's claim and renewals leave it
        state=State.DOWNLOADING,
        claimed_by="elsewhere:1:dead",
        lease_expires_at=ends,
        next_check_at=ends,
    )
    started = time.monotonic()
    jobs.run_engine(tick_seconds=60, stop_after=3)
    job.refresh_from_db()
    assert job.attempts == 1 and job.claimed_by != "elsewhere:1:dead", (job.state, job.attempts)
    assert job.state == State.STORED or job.last_error, time.monotonic() - started


def test_the_lease_watch_takes_over_a_lease_that_ended_just_before_it_looked(
    fake_heygen, settings, monkeypatch
):
    """A watch that reads the lease's end only after it passed (its thread started late on a
    busy host; the engine's first sweep ran before the end) still takes the job over at once,
    not at the next tick (it used to look only at ends still to come, then slept half a
    lease period)."""
    settings.VIDEO_ENGINE_COPY_THREADS = 1
    (job,) = rendered(fake_heygen, 1)
    # The copy threads' start-up (storage clients made on three threads) is not what is
    # measured: on a loaded host it held the watch's first look past the look-back window.
    monkeypatch.setattr(jobs, "_warm_storage", lambda: None)
    copies = jobs._CopyThreads(1)
    ended = leases.db_now() - timedelta(seconds=0.5)
    VideoJob.objects.filter(pk=job.pk).update(
        state=State.DOWNLOADING, claimed_by="elsewhere:1:dead", lease_expires_at=ended,
        next_check_at=ended,
    )  # fmt: skip
    watch = jobs._LeaseWatch(copies)
    taken = VideoJob.objects.filter(pk=job.pk).exclude(claimed_by="elsewhere:1:dead")
    try:
        wait_until(taken.exists, timeout=5, interval=0.05,
                   message="the lease watch never took the ended lease over")  # fmt: skip
    finally:
        watch.stop()
        copies.shutdown()
    job.refresh_from_db()
    assert job.attempts == 1
    assert job.state == State.STORED or job.last_error


def test_a_dead_holders_copy_is_taken_over_while_the_sweep_waits_on_a_slow_create(
    fake_heygen, settings
):
    """The lease watch takes over beside the sweep: with the sweep's create call held 12 s
    by the provider, a copy whose holder died with 0.5 s of lease left is still stored long
    before that call answers (behind the sweep, it could not start before it)."""
    settings.VIDEO_ENGINE_COPY_THREADS = 1
    settings.HEYGEN_REQUEST_TIMEOUT_SECONDS = 20
    (copied,) = rendered(fake_heygen, 1)
    (submitted,) = queue(1)
    fake_heygen.set_fault("accept_then_sleep", 12)
    started = leases.db_now()
    ends = started + timedelta(seconds=0.5)
    VideoJob.objects.filter(pk=copied.pk).update(
        state=State.DOWNLOADING,
        claimed_by="elsewhere:1:dead",
        lease_expires_at=ends,
        next_check_at=ends,
    )
    jobs.run_engine(tick_seconds=60, stop_after=1)
    copied.refresh_from_db()
    submitted.refresh_from_db()
    assert submitted.provider_video_id  # the slow create did answer (the sweep waited on it)
    # Taken over (behind the sweep it never is: the run ends as the create answers); on a
    # loaded host the copy itself may still retry, as in the test above.
    assert copied.attempts == 1 and copied.claimed_by != "elsewhere:1:dead", copied.state
    assert copied.state == State.STORED or copied.last_error, copied.state
    if copied.state == State.STORED:
        assert (copied.state_changed_at - started).total_seconds() < 9


def test_a_takeover_claims_its_job_while_the_engines_copy_threads_still_start(
    fake_heygen, monkeypatch
):
    """A freshly started engine's copy threads make their storage clients together (seconds
    on a busy host): a copy taken over meanwhile is claimed at once, on a thread of its own,
    not queued behind that start-up (the chaos run's 2 s waits beyond a dead holder's lease)."""
    import threading

    (job,) = rendered(fake_heygen, 1)
    VideoJob.objects.filter(pk=job.pk).update(state=State.DOWNLOADING, claimed_by="",
                                              next_check_at=timezone.now())  # fmt: skip
    release = threading.Event()
    monkeypatch.setattr(jobs, "_warm_storage", lambda: release.wait(10))  # a slow start-up
    threads = jobs._CopyThreads(2)
    try:
        started = time.monotonic()
        threads(job.pk)
        while VideoJob.objects.filter(pk=job.pk, claimed_by="").exists():
            assert time.monotonic() - started < 5, "the takeover waited for the start-up"
            time.sleep(0.02)
    finally:
        release.set()
        threads.shutdown()
    assert VideoJob.objects.get(pk=job.pk).state == State.STORED


def test_a_freed_render_slot_wakes_a_submission_only_for_a_queued_job(monkeypatch, fake_heygen):
    """A render that ends frees its slot: the next submission is woken when a queued job is
    due, and no task (a broker round trip and an empty claim) is sent when none is."""
    sent: list[str] = []
    monkeypatch.setattr(jobs, "_send", lambda func, *args, name: sent.append(name) or True)
    first, second = rendered(fake_heygen, 2)
    assert jobs.wake_all({first.pk: "failed"}) == {"failed": 1}
    assert sent == []  # nothing queued
    (waiting,) = queue(1)
    VideoJob.objects.filter(pk=waiting.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    assert jobs.wake_all({second.pk: "rendered"}) == {"rendered": 1}
    assert sent == [f"video-copy-{second.pk}"]  # its retry is not due: the sweep submits it
    VideoJob.objects.filter(pk=waiting.pk).update(next_attempt_at=None)
    assert jobs.wake_all({second.pk: "copying"}) == {"copying": 1}
    assert sent == [f"video-copy-{second.pk}", "video-submit-next"]


def test_the_sweep_checks_due_renders_a_chunk_at_a_time(monkeypatch, settings, fake_heygen):
    """Many renders due at once: each chunk's outcomes are recorded and its copies handed on
    before the next chunk is claimed and asked about, so the first copies of a course start
    while its later renders are still being checked."""
    settings.VIDEO_PROVIDER_CONCURRENCY = 2  # chunks of 4
    settings.VIDEO_MAX_CONCURRENT_RENDERS = 10
    events: list[tuple] = []
    monkeypatch.setattr(
        jobs, "_send", lambda func, *args, name: events.append(("wake", name)) or True
    )
    check_and_hold = steps.check_and_hold

    def recorded(claimed, *args, **kwargs):
        events.append(("check", len(claimed)))
        return check_and_hold(claimed, *args, **kwargs)

    monkeypatch.setattr(steps, "check_and_hold", recorded)
    queued = rendered(fake_heygen, 10)
    VideoJob.objects.filter(pk__in=[job.pk for job in queued]).update(next_check_at=timezone.now())
    assert jobs.check_due_renders() == {"rendered": 10}
    checks = [n for kind, n in events if kind == "check"]
    assert checks == [4, 4, 2]
    woken_before_last_check = events[: events.index(("check", 2))]
    copies = [name for kind, name in woken_before_last_check if str(name).startswith("video-copy")]
    assert len(copies) == 8  # the first two chunks' copies, before the third chunk's calls
    assert VideoJob.objects.filter(state=State.DOWNLOADING).count() == 10


def event(job: VideoJob) -> str:
    job.refresh_from_db()
    return jobs.handle_render_event(callback_id=str(job.callback_id),
                                    provider_video_id=job.provider_video_id,
                                    succeeded=True)  # fmt: skip


def test_an_event_during_a_check_that_found_the_render_running_checks_again_at_once(
    monkeypatch, fake_heygen
):
    """The provider's event comes while a check holds the job, after its status call saw the
    render still running: no second check is woken beside it, and its record, which sees
    the event under the row lock, makes the check due now and wakes it (not a later look)."""
    sent: list[str] = []
    monkeypatch.setattr(jobs, "_send", lambda func, *args, name: sent.append(name) or True)
    fake_heygen.render_seconds = 30.0
    (job,) = queue(1)
    jobs.submit_queued_jobs()
    token = leases.new_token()
    claimed = leases.claim_due_checks(token, job_id=job.pk)
    provider = jobs.get_provider()
    statuses = [provider.get_status(held.provider_video_id) for held in claimed]
    assert statuses[0].status != "completed"
    assert event(job) == "checking"
    assert sent == []  # the check that holds the job sees the event
    monkeypatch.setattr(provider, "get_status", lambda video_id: statuses[0])
    outcomes, copies = steps.check_and_hold(claimed, token, provider)
    assert outcomes == {job.pk: "check_now"} and copies == {}
    assert jobs.wake_all(outcomes) == {"check_now": 1}
    assert sent == [f"video-check-{job.pk}"]
    job.refresh_from_db()
    assert job.state == State.RENDERING and not job.claimed_by
    assert job.next_check_at <= leases.db_now()


def test_an_event_during_a_check_that_found_the_render_done_changes_nothing(
    monkeypatch, fake_heygen, bucket_keys
):
    """The event comes while the check that found the render done holds it: the copy goes
    on as usual, and nobody is woken for a second check."""
    sent: list[str] = []
    monkeypatch.setattr(jobs, "_send", lambda func, *args, name: sent.append(name) or True)
    (job,) = rendered(fake_heygen, 1)
    token = leases.new_token()
    claimed = leases.claim_due_checks(token, job_id=job.pk)
    assert event(job) == "checking"
    assert sent == []
    outcomes, copies = steps.check_and_hold(claimed, token, jobs.get_provider())
    assert outcomes == {job.pk: "copying"} and list(copies) == [job.pk]
    assert steps.copy(claimed[0], token, status=copies[job.pk]) == "stored"
    assert VideoJob.objects.get(pk=job.pk).state == State.STORED
    assert sent == []


def test_an_event_for_a_job_nobody_holds_wakes_its_check(monkeypatch, fake_heygen):
    """A free job (or one whose holder's lease ended: a dead checker) gets a worker woken."""
    sent: list[str] = []
    monkeypatch.setattr(jobs, "_send", lambda func, *args, name: sent.append(name) or True)
    first, second = rendered(fake_heygen, 2)
    assert event(first) == "checking"
    leases.claim_due_checks(leases.new_token(), job_id=second.pk)
    VideoJob.objects.filter(pk=second.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert event(second) == "checking"
    assert sent == [f"video-check-{first.pk}", f"video-check-{second.pk}"]
    assert VideoJob.objects.filter(next_check_at__lte=leases.db_now()).count() == 2


def test_the_engine_copies_as_many_as_it_had_threads_free_when_the_pass_began(
    monkeypatch, settings, fake_heygen
):
    """Chunks do not hand the engine more than its free threads: the rest of a course's
    finished renders are woken for the job workers."""
    settings.VIDEO_PROVIDER_CONCURRENCY = 2  # chunks of 4
    settings.VIDEO_MAX_CONCURRENT_RENDERS = 10
    sent: list[str] = []
    monkeypatch.setattr(jobs, "_send", lambda func, *args, name: sent.append(name) or True)

    class Threads:
        held: list[int] = []

        def free(self) -> int:
            return 3

        def run_held(self, job, token, status) -> None:
            self.held.append(job.pk)

    threads = Threads()
    queued = rendered(fake_heygen, 10)
    VideoJob.objects.filter(pk__in=[job.pk for job in queued]).update(next_check_at=timezone.now())
    assert jobs.check_due_renders(run_copy=threads) == {"copying": 3, "rendered": 7}
    assert len(threads.held) == 3
    woken = {name for name in sent if name.startswith("video-copy")}
    assert woken == {f"video-copy-{job.pk}" for job in queued if job.pk not in threads.held}


def test_with_a_webhook_the_first_timed_check_leaves_the_event_time_to_come(settings):
    """The poll is the net under a lost event: with the webhook configured, a render's first
    check comes WEBHOOK_GRACE_SECONDS after its expected end (the event usually wakes the
    check before), without one just after it."""
    settings.HEYGEN_WEBHOOK_SECRET = ""
    assert steps.first_check_seconds(20.0) == 20.0 + steps.EXPECTED_MARGIN_SECONDS
    settings.HEYGEN_WEBHOOK_SECRET = "whsec"
    assert steps.first_check_seconds(20.0) == pytest.approx(
        20.0 + steps.EXPECTED_MARGIN_SECONDS + steps.WEBHOOK_GRACE_SECONDS
    )
    assert steps.first_check_seconds(None) == settings.VIDEO_POLL_INTERVAL_SECONDS


def _first_checks(rows: list[VideoJob]) -> dict[int, float]:
    return {job.pk: (job.next_check_at - job.submission_sent_at).total_seconds() for job in rows}


def test_with_no_history_a_pilot_render_times_the_renders_sent_with_it(settings, fake_heygen):
    """No render history and no webhook: one render of a batch (the pilot) is checked at a
    fifth of the first interval, the others skip the fixed schedule's first check. Found
    done, the pilot makes the others due at once: one status call each finds them done,
    long before their fixed check would have come."""
    settings.HEYGEN_WEBHOOK_SECRET = ""
    settings.VIDEO_POLL_INTERVAL_SECONDS, settings.VIDEO_POLL_MAX_INTERVAL_SECONDS = 4.0, 60
    fake_heygen.render_seconds = 0.5
    sent = queue(3)
    submit_seconds = _timed(jobs.submit_queued_jobs)  # the checks are timed from its record
    rows = list(VideoJob.objects.filter(pk__in=[job.pk for job in sent]).order_by("pk"))
    (pilot,) = [job for job in rows if job.pilot]
    others = [job.pk for job in rows if not job.pilot]
    first = _first_checks(rows)
    assert 0.8 <= first[pilot.pk] <= 0.8 + submit_seconds
    assert all(10 <= first[pk] <= 10 + submit_seconds for pk in others)  # 4 + 4 x 1.5
    token, provider = leases.new_token(), jobs.get_provider()
    pilot_outcome = None
    while pilot_outcome != "rendered":  # the sweep's checks: the pilot alone is due
        claimed = leases.claim_due_checks(token)
        assert [job.pk for job in claimed] in ([], [pilot.pk])
        if claimed:
            pilot_outcome = steps.check_many(claimed, token, provider)[pilot.pk]
        time.sleep(0.02)
    claimed = leases.claim_due_checks(token)
    assert sorted(job.pk for job in claimed) == others
    assert (timezone.now() - pilot.submission_sent_at).total_seconds() < 10
    assert set(steps.check_many(claimed, token, provider).values()) == {"rendered"}
    calls = {video["id"]: video["status_calls"] for video in fake_heygen.videos.values()}
    assert [calls[job.provider_video_id] for job in rows if not job.pilot] == [1, 1]
    assert 1 <= calls[pilot.provider_video_id] <= 4  # every 0.8 s for a render of 0.5 s
    learned = VideoJob.objects.filter(pk__in=others).values_list("expected_render_seconds",
                                                                 flat=True)  # fmt: skip
    assert all(0.5 <= seconds < 5 for seconds in learned)


def _timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started + 0.05


def test_a_pilot_only_without_history_without_a_webhook_and_one_at_a_time(settings, fake_heygen):
    """A second batch while the pilot renders follows it (no second pilot); with the webhook
    configured there is none (the events say when renders end)."""
    settings.HEYGEN_WEBHOOK_SECRET = ""
    settings.VIDEO_POLL_INTERVAL_SECONDS = 1.0
    fake_heygen.render_seconds = 30
    queue(1)
    assert jobs.submit_queued_jobs() == 1
    later = queue(2)
    submit_seconds = _timed(jobs.submit_queued_jobs)
    assert VideoJob.objects.filter(pilot=True).count() == 1
    rows = list(VideoJob.objects.filter(pk__in=[job.pk for job in later]))
    assert len(rows) == 2 and not any(job.pilot for job in rows)
    assert all(2.5 <= first <= 2.5 + submit_seconds for first in _first_checks(rows).values())
    VideoJob.objects.all().delete()
    settings.HEYGEN_WEBHOOK_SECRET = "whsec"
    queue(2)
    submit_seconds = _timed(jobs.submit_queued_jobs)
    rows = list(VideoJob.objects.all())
    assert len(rows) == 2 and not any(job.pilot for job in rows)
    assert all(1.0 <= first <= 1.0 + submit_seconds for first in _first_checks(rows).values())


def test_with_the_webhook_renders_timed_by_one_that_ended_leave_the_event_its_grace(
    settings, fake_heygen
):
    """Renders sent with no history, timed by one like them that ended: due when it took,
    and with the webhook configured WEBHOOK_GRACE_SECONDS later (its event comes first)."""
    settings.VIDEO_POLL_INTERVAL_SECONDS = 100  # the fixed first check: far off
    fake_heygen.render_seconds = 30
    for secret, grace in (("", 0.0), ("whsec", steps.WEBHOOK_GRACE_SECONDS)):
        VideoJob.objects.all().delete()
        settings.HEYGEN_WEBHOOK_SECRET = secret
        queue(2)
        assert jobs.submit_queued_jobs() == 2
        ended, waiting = VideoJob.objects.order_by("pk")
        took = 0.1 * len(ended.script)
        seen = ended.submission_sent_at + timedelta(seconds=took)
        steps.learn_from_ended([ended], {ended.pk: "rendered"}, {ended.pk: seen})
        waiting.refresh_from_db()
        assert waiting.expected_render_seconds == pytest.approx(0.1 * len(waiting.script))
        due_in = (waiting.next_check_at - waiting.submission_sent_at).total_seconds()
        assert due_in == pytest.approx(waiting.expected_render_seconds + grace)


def test_a_render_timed_while_a_check_holds_it_is_checked_again_at_once(settings, fake_heygen):
    """Timed by a render that ended while another worker's check holds it (its status call
    in flight): that check's record sees its moved time under the lock and, having found
    the render running, makes it due at once instead of a fixed interval later."""
    settings.HEYGEN_WEBHOOK_SECRET = ""
    settings.VIDEO_POLL_INTERVAL_SECONDS = 100
    fake_heygen.render_seconds = 30
    queue(2)
    assert jobs.submit_queued_jobs() == 2
    ended, held = VideoJob.objects.order_by("pk")
    token = leases.new_token()
    (claimed,) = leases.claim_due_checks(token, job_id=held.pk)
    seen = ended.submission_sent_at + timedelta(seconds=0.1 * len(ended.script))
    steps.learn_from_ended([ended], {ended.pk: "rendered"}, {ended.pk: seen})
    assert steps.check_many([claimed], token, jobs.get_provider()) == {held.pk: "check_now"}
    held.refresh_from_db()
    assert held.next_check_at <= leases.db_now() and held.claimed_by == ""


def test_a_render_timed_after_a_check_found_it_early_waits_for_its_expected_end(settings):
    """A render timed after it was sent (by one like it that ended) may be found running by
    a check of the fixed schedule well before that time: the next check comes at its timed
    first check, not at the short intervals meant for a render a little late (five status
    calls each for the latency scenario's renders before this)."""
    settings.HEYGEN_WEBHOOK_SECRET = "whsec"
    settings.VIDEO_POLL_MAX_INTERVAL_SECONDS = 60
    now = timezone.now()
    job = VideoJob(expected_render_seconds=20, render_checks=1,
                   submission_sent_at=now - timedelta(seconds=10))  # fmt: skip
    assert steps._next_check_in(job, now) == pytest.approx(10 + steps.first_check_seconds(20) - 20)
    job.submission_sent_at = now - timedelta(seconds=22)  # a little late: the short checks
    assert steps._next_check_in(job, now) == pytest.approx(2.0)


def test_rows_written_together_keep_each_rows_own_values_in_one_statement():
    """A record of many jobs: fields holding one value on every row are written as that value,
    the others row by row (JSON and nulls included), all in one UPDATE."""
    rows = queue(3)
    now = leases.db_now()
    for n, job in enumerate(rows):
        job.state, job.updated_at, job.lease_expires_at = State.RENDERING, now, None
        job.last_error = f"note {n}"
        job.rendered_links = {"video_url": f"https://cdn.example/{n}.mp4"} if n else {}
        job.next_check_at = now + timedelta(seconds=n) if n != 1 else None
    names = ["state", "updated_at", "lease_expires_at", "last_error", "rendered_links",
             "next_check_at"]  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        leases._write_rows(rows, names)
    assert len(queries) == 1
    for n, job in enumerate(VideoJob.objects.filter(pk__in=[j.pk for j in rows]).order_by("pk")):
        assert (job.state, job.updated_at, job.lease_expires_at) == (State.RENDERING, now, None)
        assert job.last_error == f"note {n}"
        assert job.rendered_links == ({"video_url": f"https://cdn.example/{n}.mp4"} if n else {})
        assert job.next_check_at == (now + timedelta(seconds=n) if n != 1 else None)
