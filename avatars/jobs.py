"""The django-q2 tasks that run the steps of avatar video jobs, the wake-ups their outcomes
call for, and the engine's sweep.

`VideoJob` is the truth; the broker only carries wake-up calls, and a wake-up that cannot be
sent (the broker is down) is only logged: the sweep finds the due work by itself. Each task
runs one short step (avatars/steps.py) on jobs it claims by lease, so duplicate deliveries, a
worker killed at any line and any number of workers on any number of hosts are all safe.
Nothing here sleeps while the provider renders: renders are checked by `dispatch_due_work`
(the scheduled task, and `manage.py run_video_engine` every few seconds) or at once by the
provider's webhook.
"""

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django_q.tasks import async_task

from avatars import heartbeats, leases, steps
from avatars.models import VideoJob
from avatars.providers import get_provider
from videostore import ledger
from videostore.storage import VideoStorage

logger = logging.getLogger(__name__)

State = VideoJob.State
#: Jobs claimed for submission at once (their create calls overlap, VIDEO_PROVIDER_CONCURRENCY
#: at a time).
BATCH = 50
TASKS = {
    "submit": "avatars.jobs.submit_queued_jobs",
    "check": "avatars.jobs.check_render_job",
    "copy": "avatars.jobs.copy_video_job",
}

#: What each step's outcome wakes. Every outcome that frees a render slot (a render ended,
#: failed, or a create proved never to have arrived) wakes the next submission.
WAKEUPS: dict[str, tuple[str, ...]] = {
    "submitted": (),
    "check_now": ("check",),  # the offline renderer finished inside its create call
    "slot_busy": (),  # the provider's own cap: the job waits for its retry time
    "unknown": (),  # looked up when due, by the sweep
    "adopted": ("check",),
    "absent": ("submit",),
    "requeued": ("submit",),
    "rendering": (),
    "rendered": ("copy", "submit"),
    "copying": ("submit",),  # rendered, and its copy runs in the same task
    "failed": ("submit",),
    "retry": (),
    "stored": (),
    "fallback": (),
    "lost": (),
}


def enqueue(step: str, job_id: int | None = None) -> None:
    """Wake a worker for `step` once the current transaction commits (the broker may be Redis,
    outside the database: a wake-up for a row that rolled back must never go out)."""
    args = () if job_id is None else (job_id,)
    name = f"video-{step}-{job_id or 'next'}"
    transaction.on_commit(lambda: _send(TASKS[step], *args, name=name))


def enqueue_promotion(content_item_id: int) -> None:
    """Queue the copy of a fallback item's provider video into storage (after commit)."""
    transaction.on_commit(lambda: _send("avatars.promotion.promote_item_by_id", content_item_id,
                                        name=f"promote-item-{content_item_id}"))  # fmt: skip


def _send(func: str, *args, name: str) -> None:
    """A wake-up is a hint: if the broker is down, the request still stands (its rows are
    committed) and the engine's sweep finds the work on its next tick."""
    try:
        async_task(func, *args, task_name=name)
    except Exception as error:  # the broker's client raises its own types (redis, ORM)
        logger.warning("wake-up %s not sent (the sweep will do it): %s: %s", name,
                       error.__class__.__name__, error)  # fmt: skip


def wake(outcome: str, job_id: int) -> str:
    """Send the wake-ups an outcome calls for; returns the outcome."""
    wake_all({job_id: outcome})
    return outcome


def wake_all(outcomes: dict[int, str]) -> dict[str, int]:
    """The wake-ups of many outcomes, each sent once (one "submit next" for a batch, only
    when a queued job is due); returns the outcomes counted."""
    submit_next = False
    counts: dict[str, int] = {}
    for job_id, outcome in outcomes.items():
        counts[outcome] = counts.get(outcome, 0) + 1
        for step in WAKEUPS[outcome]:
            if step == "submit":
                submit_next = True
            else:
                enqueue(step, job_id)
    # A freed slot is for a queued job: without one, no task (its broker round trip and
    # empty claim); a job queued after this look wakes its own submission.
    if submit_next and leases.submissions_waiting():
        enqueue("submit")
    return counts


# --- tasks ----------------------------------------------------------------------------------


def submit_queued_jobs(limit: int = 100) -> int:
    """Task: submit queued jobs, oldest first, while render slots are free: claimed in
    batches, their create calls overlapping."""
    token = leases.new_token()
    provider = get_provider()
    submitted = 0
    while submitted < limit:
        asked = min(limit - submitted, BATCH)
        batch = steps.claim_submissions(token, limit=asked, provider=provider)
        if batch:
            wake_all(steps.submit_many(batch, token, provider))
            submitted += len(batch)
        if len(batch) < asked:  # no more due jobs, or no free slot: nothing to claim now
            break
    if submitted >= limit:  # more may wait for free slots: the next task goes on at once
        enqueue("submit")
    return submitted


def _run_each(claimed: list[VideoJob], token: str, step) -> dict:
    counts: dict[str, int] = {}
    provider = get_provider() if claimed else None
    for job in claimed:
        try:
            outcome = wake(step(job, token, provider), job.pk)
        except leases.LeaseLost:
            outcome = "lost"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _check_claimed(claimed: list[VideoJob], token: str) -> dict:
    if not claimed:
        return {}
    return wake_all(steps.check_many(claimed, token, get_provider()))


def check_render_job(job_id: int) -> dict:
    """Task: check one render now (the webhook's wake-up; the poller may race it safely).
    A finished render is copied right here, in this worker, still held from the check and
    with the check's fresh download URL: no second trip through the broker, no second claim
    and no second status call between "the render ended" and "the copy started"."""
    token = leases.new_token()
    claimed = leases.claim_due_checks(token, job_id=job_id)
    if not claimed:
        return {}
    provider = get_provider()
    outcomes, copies = steps.check_and_hold(claimed, token, provider)
    counts = wake_all(outcomes)
    jobs_by_id = {job.pk: job for job in claimed}
    for rendered, status in copies.items():
        wake(steps.copy(jobs_by_id[rendered], token, provider, status=status), rendered)
    if copies:
        counts["rendered"] = counts.pop("copying")
    return counts


def check_due_renders(limit: int = 200, run_copy=None) -> dict:
    """Check every render that is due (at most `limit`), a chunk at a time: each chunk's
    status calls overlap, then its outcomes are recorded and its finished renders handed on
    before the next chunk is claimed, so the first copies of a course start while its later
    renders are still being checked. With the engine's copy threads (`run_copy`), as many
    finished renders as it had threads free when the pass began are copied at once on them,
    with the check's fresh URL; the others are woken in the workers (the job workers, on any
    number of hosts, do the bulk of a course)."""
    counts: dict[str, int] = {}
    checked = 0
    free = run_copy.free() if hasattr(run_copy, "free") else 0
    while checked < limit:
        asked = min(limit - checked, checks_per_chunk())
        taken, outcomes, handed = _check_chunk(asked, run_copy, free)
        for outcome, n in outcomes.items():
            counts[outcome] = counts.get(outcome, 0) + n
        checked, free = checked + taken, free - handed
        if taken < asked:  # nothing more is due now
            break
    return counts


def checks_per_chunk() -> int:
    """Renders claimed and checked at once by the sweep: two rounds of overlapping status
    calls, recorded together (4 statements a chunk)."""
    return 2 * max(1, settings.VIDEO_PROVIDER_CONCURRENCY)


def _check_chunk(limit: int, run_copy, free: int) -> tuple[int, dict, int]:
    """One chunk of `check_due_renders`, at most `free` of its finished renders copied on
    `run_copy`'s threads: (renders claimed, their outcomes counted, copies handed on)."""
    token = leases.new_token()
    claimed = leases.claim_due_checks(token, limit=limit)
    if not claimed or free <= 0:
        return len(claimed), _check_claimed(claimed, token), 0
    provider = get_provider()
    outcomes, copies = steps.check_and_hold(claimed, token, provider, hold_at_most=free)
    counts = wake_all(outcomes)
    jobs_by_id = {job.pk: job for job in claimed}
    for rendered, status in copies.items():
        run_copy.run_held(jobs_by_id[rendered], token, status)
    return len(claimed), counts, len(copies)


def resolve_unknown_submissions(limit: int = 100) -> dict:
    """Look up creates whose answer was lost (their call is over: nobody holds them)."""
    token = leases.new_token()
    return _run_each(leases.claim_unknown_submissions(token, limit=limit), token, steps.resolve)


def copy_video_job(job_id: int) -> str:
    """Task: copy a rendered video into storage and save the item (long; renews its lease)."""
    token = leases.new_token()
    job = leases.claim(job_id, token=token, states=(State.DOWNLOADING, State.UPLOADING),
                       state=State.DOWNLOADING, bytes_copied=0)  # fmt: skip
    if job is None:
        return "skipped"
    return wake(steps.copy(job, token), job.pk)


def _wake_copies(run_copy=None) -> dict:
    """One wake-up per due copy; copies whose holder died or whose wake-up went untaken are
    run by `run_copy` (the engine's own threads; here, by default)."""
    to_wake, to_run = leases.due_copies()
    for job_id in to_wake:
        _send(TASKS["copy"], job_id, name=f"video-copy-{job_id}")
    if to_run:
        logger.warning(
            "video jobs %s: copies taken over by the sweep (worker died or the "
            "job workers did not take their wake-up within a lease)",
            to_run,
        )
    for job_id in to_run:
        (run_copy or copy_video_job)(job_id)
    return {"woken": len(to_wake), "taken_over": len(to_run)}


# --- the sweep ------------------------------------------------------------------------------


def dispatch_due_work(run_copy=None) -> dict:
    """The engine's sweep: wake copies that nobody holds (or run them, see `_wake_copies`),
    look up creates of unknown outcome, submit queued jobs into free slots, check due
    renders, give up dead uploads. Safe to run anywhere, any number at once."""
    # Copies first: a dead holder's copy is taken over as its lease ends (the sweep wakes
    # then), before the provider calls of the submissions and checks.
    copies = _wake_copies(run_copy)
    report = {"copies_woken": copies["woken"], "copies_taken_over": copies["taken_over"]}
    report["resolved"] = resolve_unknown_submissions()
    report["submitted"] = submit_queued_jobs()
    report["checked"] = check_due_renders(run_copy=run_copy)
    report["uploads_given_up"] = ledger.expire_dead_uploads()
    return report


def take_over_dead_holders(run_copy=None) -> dict:
    """What a holder that died leaves as its lease ends: its copy (run by `run_copy`), its
    create's look-up, its render's check. The engine's lease watch runs this beside the
    sweep, so a takeover never waits behind the sweep's submissions and their provider calls.
    Safe anywhere, any number at once (claims by lease)."""
    copies = _wake_copies(run_copy)
    return {
        "copies_taken_over": copies["taken_over"],
        "resolved": resolve_unknown_submissions(),
        "checked": check_due_renders(run_copy=run_copy),
    }


def _warm_storage() -> None:
    """A copy thread's first act: its storage clients (see SupabaseStorage.warm_up)."""
    warm_up = getattr(VideoStorage().storage, "warm_up", None)
    if warm_up is not None:
        try:
            warm_up()
        except Exception as error:  # the first copy makes them instead
            logger.warning("storage clients not made ahead: %s: %s",
                           error.__class__.__name__, error)  # fmt: skip


def warm_up_worker(proc_name: str) -> None:
    """A job worker just started: its storage clients now, so that its first copy (of a
    freshly started or recycled worker) costs what the others do. Their making took a few
    hundred ms of CPU, seconds on a busy host: the tail of render done -> playable."""
    started = time.monotonic()
    _warm_storage()
    logger.info("worker %s: storage clients made in %.2f s", proc_name,
                time.monotonic() - started)  # fmt: skip


def _warm_then_wait(started: threading.Barrier) -> None:
    _warm_storage()
    started.wait(30)


#: Takeover threads that make their storage clients when the engine starts; more start cold
#: (a whole cluster's copies taken over at once), each claiming its job before its clients.
WARM_TAKEOVER_THREADS = 2


class _CopyThreads:
    """The engine's own copy runners, each job at most once at a time, in two pools: the
    copies of renders its checks find done (threads that make their storage clients together
    as the engine starts), and copies taken over from dead holders or untaken wake-ups, in a
    pool of their own: a takeover claims its job at once, never queued behind the other
    copies nor behind the start-up's client making."""

    def __init__(self, threads: int):
        self.threads = threads
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="engine-copy",
                                       initializer=_warm_storage)  # fmt: skip
        self.takeovers = ThreadPoolExecutor(max_workers=threads + WARM_TAKEOVER_THREADS,
                                            thread_name_prefix="engine-takeover")  # fmt: skip
        self.running: dict[int, bool] = {}  # job id -> a copy of a render found done
        self.lock = threading.Lock()
        # Every thread starts now (each waits for the others), making its storage clients
        # before the first render ends rather than on that copy's path.
        started = threading.Barrier(threads)
        for _ in range(threads):
            self.pool.submit(started.wait, 30)
        # The first takeover threads too, each on a thread of its own (a takeover meanwhile
        # starts another thread: the pool has room beside them).
        takeovers_started = threading.Barrier(WARM_TAKEOVER_THREADS)
        for _ in range(WARM_TAKEOVER_THREADS):
            self.takeovers.submit(_warm_then_wait, takeovers_started)

    def free(self) -> int:
        """Threads free for the copies of renders found done (a copy handed to one starts at
        once); takeovers have their own."""
        with self.lock:
            return max(0, self.threads - sum(self.running.values()))

    def __call__(self, job_id: int) -> None:
        """Take over a copy nobody holds (its holder died, or its wake-up went untaken)."""
        if self._start(job_id, found_done=False):
            self.takeovers.submit(self._run, job_id, copy_video_job, job_id)

    def run_held(self, job: VideoJob, token: str, status) -> None:
        """Copy a render the sweep's check found done and still holds (its fresh URL)."""
        if self._start(job.pk, found_done=True):
            self.pool.submit(self._run, job.pk, self._copy_held, job, token, status)

    def shutdown(self) -> None:
        """Let the copies under way finish."""
        self.pool.shutdown(wait=True)
        self.takeovers.shutdown(wait=True)

    @staticmethod
    def _copy_held(job: VideoJob, token: str, status) -> str:
        return wake(steps.copy(job, token, status=status), job.pk)

    def _start(self, job_id: int, *, found_done: bool) -> bool:
        with self.lock:
            if job_id in self.running:
                return False
            self.running[job_id] = found_done
            return True

    def _run(self, job_id: int, step, *args) -> None:
        try:
            step(*args)
        except Exception as error:  # recorded on the job by the step; this is a bug's trace
            logger.exception("engine copy of video job %s crashed: %s", job_id, error)
        finally:
            # The thread lives on: its connection is kept for the next copy (CONN_MAX_AGE),
            # unless it broke or is too old.
            close_old_connections()
            with self.lock:
                self.running.pop(job_id, None)


def run_engine(*, tick_seconds: float, stop_after: float | None = None) -> None:
    """`manage.py run_video_engine`: dispatch due work every tick (a small process of its
    own, not a worker; django-q2's scheduler only looks every 30 s or so), and between ticks
    check renders as their checks fall due; its lease watch (a thread) takes over a dead
    holder's job as its lease ends. Copies the job workers cannot take (a dead holder's, an
    untaken wake-up's) and of renders its checks find done run on its threads."""
    started = time.monotonic()
    name = heartbeats.process_name()
    copies = _CopyThreads(settings.VIDEO_ENGINE_COPY_THREADS)
    watch = _LeaseWatch(copies)
    next_tick = started
    swept = False  # `stop_after` always lets the first sweep run (a busy host may start late)
    while not swept or stop_after is None or time.monotonic() - started < stop_after:
        swept = True
        try:
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + tick_seconds
                dispatch_due_work(run_copy=copies)
                heartbeats.record_heartbeat(heartbeats.Kind.ENGINE, name=name)
            else:  # woken for a check that fell due: only the checks
                check_due_renders(run_copy=copies)
        except Exception as error:  # a database blip: log it and keep ticking
            logger.exception("video engine tick failed: %s", error)
        sleep = _until_next_tick(next_tick - time.monotonic())
        if stop_after is not None:
            sleep = min(sleep, max(0.0, started + stop_after - time.monotonic()))
        time.sleep(sleep)
    watch.stop()
    copies.shutdown()  # a stop lets the copies it took over finish


class _LeaseWatch:
    """The engine's second thread: it sleeps until the earliest held lease ends, then takes
    over what a dead holder left (`take_over_dead_holders`), beside the sweep rather than
    behind its provider calls. It looks again every half lease period while the earliest end
    is further off (a lease taken later cannot end sooner than one period), so it always reads
    an end well before it comes, never just after (then it would miss it)."""

    def __init__(self, run_copy):
        self.run_copy = run_copy
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="engine-lease-watch", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        period = float(settings.VIDEO_JOB_LEASE_SECONDS)
        try:
            while not self.stopped.is_set():
                rest = _at_next_lease_end() - time.monotonic()
                if rest > period:
                    self.stopped.wait(period / 2)
                    continue
                if self.stopped.wait(max(rest, 0.0)):
                    break
                try:
                    take_over_dead_holders(self.run_copy)
                except Exception as error:  # a database blip: log it and watch on
                    logger.exception("video engine lease watch failed: %s", error)
        finally:
            connection.close()  # this thread's own


#: The shortest sleep of the sweep when a render's check is due before its next tick.
MIN_SLEEP_SECONDS = 0.1
#: How long after a lease ends the sweep looks (the lease must have ended on the database's
#: clock when the claim reads it).
LEASE_END_SLACK_SECONDS = 0.02


#: A held lease that ended this recently still wakes the lease watch (at once): one whose end
#: it read too late (a slow start on a busy host) or whose takeover read it a hair before
#: its end on the database's clock. Older ones are left to the sweep's tick, so a lease
#: nothing can take over yet keeps the watch looking for this long at most.
LEASE_WATCH_LOOKBACK_SECONDS = 2.0


def _at_next_lease_end() -> float:
    """When (on this process's monotonic clock) the earliest held lease ends: the lease watch
    looks then, so a dead holder's job waits for its lease and not for the tick after it. A
    live holder renews first and the watch finds nothing; never sooner than MIN_SLEEP_SECONDS."""
    try:
        ends_in = leases.next_lease_end_in_seconds(ended_within=LEASE_WATCH_LOOKBACK_SECONDS)
    except Exception as error:  # a database blip: the tick stands
        logger.warning("next lease end not read: %s", error)
        ends_in = None
    if ends_in is None:
        return float("inf")
    return time.monotonic() + max(ends_in + LEASE_END_SLACK_SECONDS, MIN_SLEEP_SECONDS)


def _until_next_tick(rest_of_tick: float) -> float:
    """The rest of the tick, or less when a render's check is due sooner (a render checked
    when its end is expected, not up to a tick later). A hint: the claim decides."""
    try:
        due_in = leases.next_check_in_seconds()
    except Exception as error:  # a database blip: the tick stands
        logger.warning("next check time not read: %s", error)
        due_in = None
    if due_in is not None:
        rest_of_tick = min(rest_of_tick, max(due_in, MIN_SLEEP_SECONDS))
    return max(0.0, rest_of_tick)


def handle_render_event(*, callback_id: str, provider_video_id: str, succeeded: bool = False
                        ) -> str:  # fmt: skip
    """A provider says a render ended: check that job now (the event's own URL is never
    trusted; the check asks the provider). Idempotent; racing the poller is safe.
    `succeeded` (a success event): it ended now, which render times are learned from."""
    try:
        uuid.UUID(callback_id)
    except ValueError:
        return "unknown"
    with transaction.atomic():
        job = leases.locked_for_event(callback_id=callback_id, provider_video_id=provider_video_id)
        if job is None:
            return "unknown"
        if not job.is_active:
            return "already-finished"
        if job.state != State.RENDERING:
            return "in-progress"
        # A worker is woken unless a check holds the job (it sees this event when it records).
        if leases.schedule_check_now(job, render_ended=succeeded):
            enqueue("check", job.pk)
    return "checking"
