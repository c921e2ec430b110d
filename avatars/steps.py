"""The short steps of a video job; none waits for the provider while it holds a worker.

    queued --submit--> rendering --check (poll batch or webhook)--> downloading
           --copy--> uploading --> stored | fallback | failed

`submit` asks the provider to render and records its video id (never waits); `resolve` looks
up a create whose answer was lost (a timeout, a killed worker, a lease that ended): the
render is adopted if the provider has it, and only a list that proves it absent lets the job
be submitted again, so one request is never paid twice; `check` asks for the status of
renders that are due and moves finished ones on; `copy` streams the video into storage and
saves the item. Each step claims its job by lease (avatars/leases.py, the only writer of job
rows) and returns an outcome; `jobs.WAKEUPS` maps outcomes to the wake-ups they need.
A terminal state is written in its own transaction, so a failing item update cannot roll it
back.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError

from avatars import leases
from avatars.errors import (
    GENERATION_ERRORS,
    RenderFailed,
    RenderSlotsBusy,
    SubmissionOutcomeUnknown,
)
from avatars.leases import LeaseLost
from avatars.models import VideoJob
from avatars.pipeline import (
    OFFLINE_PROVIDER,
    RENEW_EVERY_SECONDS,
    RenderOptions,
    build_result,
    content_data_from_result,
    fallback_allowed,
    start_render,
    store_rendered_video,
)
from avatars.providers import get_provider
from avatars.providers.base import RenderStatus
from topics.services import (
    content_item_mark_failed,
    content_item_mark_fallback,
    content_item_mark_stored,
)
from videostore.errors import StorageUnavailable
from videostore.ledger import UploadLost
from videostore.storage import VideoStorage

logger = logging.getLogger(__name__)
State = VideoJob.State
#: Until a render slot frees up, a job the provider refused for concurrency waits this long.
SLOT_WAIT_SECONDS = 5
#: A create's lease outlives the call's longest run by this much.
SUBMIT_LEASE_MARGIN_SECONDS = 10


def copy_redispatch_seconds() -> int:
    """A copy-ready job nobody has taken gets a new wake-up call after one lease period: a
    call held by a worker that was killed before it ran it is lost to the broker until the
    broker's own retry. A hint only: the claim is by lock and lease, so a duplicate call is
    harmless (and at most one per job per lease period)."""
    return settings.VIDEO_JOB_LEASE_SECONDS


def _options(job: VideoJob) -> RenderOptions:
    return RenderOptions(
        script=job.script,
        language=job.language,
        avatar_id=job.avatar_id,
        voice_id=job.voice_id,
        title=job.submission_title,
        callback_id=str(job.callback_id),
    )


def retry_delay(attempt: int) -> int:
    return min(settings.VIDEO_JOB_RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0), 900)


def fail(job: VideoJob, token: str, message: str, **changes) -> str:
    """Terminal failure: the job's state commits on its own, then the item says so."""
    try:
        leases.transition(job.pk, token=token, state=State.FAILED, last_error=message[:2000],
                          next_check_at=None, **changes)  # fmt: skip
    except LeaseLost:
        return "lost"
    logger.warning("video job %s failed: %s", job.pk, message)
    try:
        content_item_mark_failed(content_item_id=job.content_item_id)
    except Exception as error:  # the job's failure stands; the item keeps its last state
        logger.error("video job %s: item %s not marked failed: %s", job.pk,
                     job.content_item_id, error)  # fmt: skip
    return "failed"


def fail_or_retry(job: VideoJob, token: str, error: Exception, *, back_to: str,
                  **changes) -> str:  # fmt: skip
    """A retryable error waits (back in `back_to`) with backoff, counted as an attempt;
    others, or the last attempt, end the job."""
    message = str(error) or error.__class__.__name__
    attempts = job.attempts + 1
    if getattr(error, "retryable", False) and attempts < job.max_attempts:
        delay = retry_delay(attempts)
        try:
            leases.transition(job.pk, token=token, state=back_to, attempts=attempts,
                              last_error=message[:2000], retry_in=delay, **changes)  # fmt: skip
        except LeaseLost:
            return "lost"
        logger.warning("video job %s will retry in %s s (attempt %s of %s): %s", job.pk, delay,
                       attempts + 1, job.max_attempts, message)  # fmt: skip
        return "requeued" if back_to == State.QUEUED else "retry"
    return fail(job, token, message, attempts=attempts, **changes)


# --- submit ---------------------------------------------------------------------------------


def submit_lease_seconds(provider) -> float:
    """A create's lease outlives its longest call, so an expired one means the call is over."""
    return provider.max_call_seconds + SUBMIT_LEASE_MARGIN_SECONDS


def claim_submissions(token: str, *, limit: int, provider=None) -> list[VideoJob]:
    """The oldest due queued jobs, as many as render slots are free (leases.py)."""
    provider = provider or get_provider()
    return leases.claim_submissions(token, limit=limit,
                                    lease_seconds=submit_lease_seconds(provider))  # fmt: skip


def claim_next_submission(token: str, *, job_id: int | None = None, provider=None):
    """The oldest due queued job (or `job_id`) if a render slot is free (leases.py)."""
    provider = provider or get_provider()
    claimed = leases.claim_submissions(token, job_id=job_id,
                                       lease_seconds=submit_lease_seconds(provider))  # fmt: skip
    return claimed[0] if claimed else None


def _concurrently(call, jobs: list[VideoJob]) -> list:
    """`call(job)` for each job, at most VIDEO_PROVIDER_CONCURRENCY at once (provider round
    trips overlap); each result is the value or the exception it raised."""

    def guarded(job: VideoJob):
        try:
            return call(job)
        except Exception as error:  # handed back: each job's outcome is decided below
            return error

    if len(jobs) == 1:
        return [guarded(jobs[0])]
    workers = max(1, min(settings.VIDEO_PROVIDER_CONCURRENCY, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="provider") as pool:
        return list(pool.map(guarded, jobs))


def submit(job: VideoJob, token: str, provider=None) -> str:
    """Ask the provider to render one claimed job (see `submit_many`)."""
    return submit_many([job], token, provider)[job.pk]


def submit_many(jobs: list[VideoJob], token: str, provider=None) -> dict[int, str]:
    """Ask the provider to render each claimed job under its unique title, the calls
    overlapping; record the video ids in one transaction. Returns each job's outcome."""
    provider = provider or get_provider()
    outcomes: dict[int, str] = {}
    ready = []
    for job in jobs:
        if job.attempts >= job.max_attempts:  # max_attempts holds on every path
            outcomes[job.pk] = fail(job, token, f"Gave up after {job.attempts} attempts.",
                                    submission_title="")  # fmt: skip
        else:
            ready.append(job)
    results = _concurrently(lambda job: start_render(_options(job), provider=provider), ready)
    immediate = provider.name == OFFLINE_PROVIDER  # the offline renderer finishes inside create
    rate = None if immediate or not ready else leases.render_seconds_per_char()
    started = {}
    for job, result in zip(ready, results, strict=True):
        if isinstance(result, Exception):
            outcomes[job.pk] = _submit_failed(job, token, result)
            continue
        expected = rate * len(job.script) if rate is not None else None
        first_check = 0 if immediate else first_check_seconds(expected)
        started[job.pk] = {"provider_video_id": result, "render_checks": 0, "last_error": "",
                           "expected_render_seconds": expected, "pilot": False,
                           "next_check_in": first_check}  # fmt: skip
    if started and rate is None and not immediate and not settings.HEYGEN_WEBHOOK_SECRET:
        _follow_a_pilot(started)
    ours = leases.record_many(token, started)
    for job_id, changes in started.items():
        if job_id in ours:
            logger.info("video job %s: render %s started", job_id, changes["provider_video_id"])
            outcomes[job_id] = "check_now" if immediate else "submitted"
        else:  # the job's next holder looks the title up and adopts this render
            logger.error("video job %s: render %s started after the job was taken over",
                         job_id, changes["provider_video_id"])  # fmt: skip
            outcomes[job_id] = "lost"
    return outcomes


def _submit_failed(job: VideoJob, token: str, error: Exception) -> str:
    if isinstance(error, RenderSlotsBusy):
        # The provider's own cap refused it outright: no render, no attempt used.
        delay = getattr(error, "retry_after", None) or SLOT_WAIT_SECONDS
        return _back_to_queue(job, token, f"Waiting for a render slot: {error}", delay)
    if isinstance(error, SubmissionOutcomeUnknown):
        return _outcome_unknown(job, token, str(error))
    if isinstance(error, GENERATION_ERRORS):  # the provider refused it: nothing was rendered
        return fail_or_retry(job, token, error, back_to=State.QUEUED, submission_title="",
                             submission_sent_at=None)  # fmt: skip
    # A bug or a database error: the call may have been made.
    logger.error("video job %s: submit crashed: %s: %s", job.pk, error.__class__.__name__, error)
    return _outcome_unknown(job, token, f"The submission was interrupted: {error}")


def _back_to_queue(job: VideoJob, token: str, note: str, delay: float) -> str:
    try:
        leases.transition(job.pk, token=token, state=State.QUEUED, submission_title="",
                          submission_sent_at=None, last_error=note[:2000],
                          retry_in=delay)  # fmt: skip
    except LeaseLost:
        return "lost"
    return "slot_busy"


def _outcome_unknown(job: VideoJob, token: str, note: str) -> str:
    """Still rendering as far as the cap knows; looked up once the provider settled."""
    logger.warning("video job %s: create outcome unknown, will look up title %r: %s", job.pk,
                   job.submission_title, note)  # fmt: skip
    try:
        leases.transition(job.pk, token=token, last_error=note[:2000],
                          next_check_in=settings.VIDEO_SUBMIT_LOOKUP_DELAY_SECONDS)  # fmt: skip
    except LeaseLost:
        return "lost"
    return "unknown"


def _follow_a_pilot(started: dict[int, dict]) -> None:
    """No render history to time first checks from, and no webhook to say when renders end:
    one render (the pilot; none when one is in flight already) is checked often, on a short
    interval growing with its age (`_pilot_check_in`), and the others skip the fixed
    schedule's first check. When a render ends, the renders still waiting on no history are
    timed from it (`learn_from_ended`): a batch sent at once is noticed within one pilot
    interval of its end, at about one status call per render. Two hosts submitting at the
    same moment may each choose a pilot: two pilots cost a few calls, nothing else."""
    pilot = None if leases.pilot_in_flight() else next(iter(started))
    first = settings.VIDEO_POLL_INTERVAL_SECONDS
    for job_id, change in started.items():
        if job_id == pilot:
            change.update(pilot=True, next_check_in=first * PILOT_SHORTEST)
        else:  # the fixed schedule's second check (its first found nothing, mostly)
            change["next_check_in"] = first + _next_check_in_fixed(0)


#: A pilot's checks (`_follow_a_pilot`): the shortest interval, as a fraction of the first
#: interval (2 s of the default 10 s), and from then on this fraction of its age.
PILOT_SHORTEST, PILOT_GROWTH = 0.2, 0.1


def _pilot_check_in(job: VideoJob, now) -> float:
    age = (now - (job.submission_sent_at or now)).total_seconds()
    shortest = settings.VIDEO_POLL_INTERVAL_SECONDS * PILOT_SHORTEST
    return min(max(shortest, age * PILOT_GROWTH), settings.VIDEO_POLL_MAX_INTERVAL_SECONDS)


#: A learned render time is met by a first check this long after it, then short ones.
EXPECTED_MARGIN_SECONDS = 0.5
#: With the provider's webhook configured, the first check waits this much longer: the event
#: comes first and wakes the check at once, and the poll stays the net under a lost event
#: (a check a little before the end would only find the render running and ask again).
WEBHOOK_GRACE_SECONDS = 2.0


def first_check_seconds(expected: float | None) -> float:
    """The first status check: just after the render's expected end when the provider's
    recent renders tell it (later with a webhook), else the configured first interval."""
    if expected is None:
        return settings.VIDEO_POLL_INTERVAL_SECONDS
    grace = WEBHOOK_GRACE_SECONDS if settings.HEYGEN_WEBHOOK_SECRET else 0.0
    return expected + EXPECTED_MARGIN_SECONDS + grace


# --- resolve an unknown outcome -------------------------------------------------------------


def resolve(job: VideoJob, token: str, provider) -> str:
    """Find the render of a create whose answer was lost: adopt it, or requeue the job only
    when the provider's list proves the create never arrived."""
    try:
        video_id = provider.find_render(title=job.submission_title, since=job.submission_sent_at)
    except GENERATION_ERRORS as error:
        # Failed look-ups are counted (render_checks: no render to check yet); the job gives
        # up after max_attempts of them rather than hold a render slot forever.
        if not getattr(error, "retryable", False) or job.render_checks + 1 >= job.max_attempts:
            return fail(job, token, f"{error} (the request's outcome could not be checked)")
        try:
            leases.transition(job.pk, token=token, last_error=f"Look-up failed: {error}"[:2000],
                              render_checks=job.render_checks + 1,
                              next_check_in=settings.VIDEO_SUBMIT_LOOKUP_DELAY_SECONDS)  # fmt: skip
        except LeaseLost:
            return "lost"
        return "unknown"
    if video_id:
        logger.info("video job %s: render %s found by its title and adopted", job.pk, video_id)
        try:
            # Its end is seen a lease or more after the send (the wait for the call's outcome):
            # no send time, so the render time learned from recent renders ignores it.
            leases.transition(job.pk, token=token, provider_video_id=video_id, render_checks=0,
                              last_error="", submission_sent_at=None,
                              next_check_in=0)  # fmt: skip
        except LeaseLost:
            return "lost"
        return "adopted"
    if job.attempts + 1 >= job.max_attempts:
        return fail(job, token, f"The provider never received the video's request after "
                                f"{job.attempts + 1} attempts.", attempts=job.attempts + 1,
                    submission_title="")  # fmt: skip
    logger.warning("video job %s: title %r not at the provider; submitting again", job.pk,
                   job.submission_title)  # fmt: skip
    try:
        leases.requeue_unsent(
            job.pk, token=token, note="The provider never received the request; sent again."
        )
    except LeaseLost:
        return "lost"
    return "absent"


# --- check ----------------------------------------------------------------------------------


#: Short checks after a render's expected end, before the interval grows again.
SHORT_CHECKS = 3


def _next_check_in(job: VideoJob, now) -> float:
    """After a check that found the render still running: with a learned render time, the
    time of its first timed check when that is well ahead (a render timed after it was
    sent, checked on the fixed schedule before), else a few short intervals (it is a little
    late), then growing by half each time from there (not a jump to the no-history
    schedule's long interval); without one, that schedule, or a pilot's own short one
    (`_follow_a_pilot`)."""
    expected = job.expected_render_seconds
    longest = settings.VIDEO_POLL_MAX_INTERVAL_SECONDS
    if expected is not None:
        short = max(1.0, expected * 0.1)
        sent = job.submission_sent_at
        ahead = (sent - now).total_seconds() + first_check_seconds(expected) if sent else 0.0
        if ahead > short:
            return min(ahead, longest)
        return min(short * 1.5 ** max(0, job.render_checks + 1 - SHORT_CHECKS), longest)
    if job.pilot:
        return _pilot_check_in(job, now)
    return _next_check_in_fixed(job.render_checks)


def _next_check_in_fixed(render_checks: int) -> float:
    """The schedule with no history: the first interval, growing by half each check."""
    first = settings.VIDEO_POLL_INTERVAL_SECONDS
    return min(first * 1.5 ** (render_checks + 1), settings.VIDEO_POLL_MAX_INTERVAL_SECONDS)


def check(job: VideoJob, token: str, provider) -> str:
    """One status check (see `check_many`)."""
    return check_many([job], token, provider)[job.pk]


def check_many(jobs: list[VideoJob], token: str, provider) -> dict[int, str]:
    """One status check per claimed render, the calls overlapping: finished renders move on
    to the copy (freeing their render slots), the others are looked at again later; the
    common outcomes are recorded in one transaction. Returns each job's outcome."""
    return check_and_hold(jobs, token, provider, hold_at_most=0)[0]


def check_and_hold(
    jobs: list[VideoJob], token: str, provider, *, hold_at_most: int | None = None
) -> tuple[dict[int, str], dict[int, RenderStatus]]:
    """`check_many`, except that finished renders (`hold_at_most` of them; None: all) stay
    ours (outcome "copying": no wake-up, no claim of their own) and come back with their
    status and its fresh signed URL, so their copy runs next here without asking the
    provider again."""
    statuses = _concurrently(lambda job: provider.get_status(job.provider_video_id), jobs)
    outcomes: dict[int, str] = {}
    changes: dict[int, dict] = {}
    now_of = {}
    for job, status in zip(jobs, statuses, strict=True):
        # The claim's statement read the database's clock: the time of this check.
        now = now_of[job.pk] = getattr(job, "db_clock", None) or leases.db_now()
        outcome, change = _after_status(job, status, now)
        if change is None:  # a failure: recorded on its own, with its item
            outcomes[job.pk] = fail(job, token, outcome)
        else:
            outcomes[job.pk], changes[job.pk] = outcome, change
    rendered = [pk for pk, outcome in outcomes.items() if outcome == "rendered"]
    held = frozenset(rendered[:hold_at_most])
    seen = {job.pk: job.next_check_at for job in jobs}
    ours = leases.record_many(token, changes, hold=held, seen=seen)
    copies: dict[int, RenderStatus] = {}
    for job, status in zip(jobs, statuses, strict=True):
        if job.pk not in changes:
            continue
        if job.pk not in ours:
            outcomes[job.pk] = "lost"
        elif ours[job.pk]:  # the provider's event came while we checked: again, at once
            outcomes[job.pk] = "check_now"
        elif job.pk in held:
            outcomes[job.pk] = "copying"
            job.state, job.bytes_copied = State.DOWNLOADING, 0
            copies[job.pk] = status
    learn_from_ended(jobs, outcomes, now_of)
    return outcomes, copies


def learn_from_ended(jobs: list[VideoJob], outcomes: dict[int, str], now_of: dict) -> None:
    """Renders that ended with no expected time (no history when sent) teach the renders
    still waiting on none: each is due when a render of its length sent when it was would
    have ended, by the quickest of these (seen done by then: the upper bound, so one check
    finds it done; with the webhook, its grace later). A missed lesson leaves them on the
    fixed schedule: logged, not raised."""
    rates = [
        (now_of[job.pk] - job.submission_sent_at).total_seconds() / max(len(job.script), 1)
        for job in jobs
        if outcomes.get(job.pk) in ("rendered", "copying")
        and job.expected_render_seconds is None and job.submission_sent_at is not None
    ]  # fmt: skip
    if not rates:
        return
    # With the webhook, its event comes first and the poll is the net (`first_check_seconds`).
    grace = WEBHOOK_GRACE_SECONDS if settings.HEYGEN_WEBHOOK_SECRET else 0.0
    try:
        due_now = leases.time_unexpected_renders(min(rates), later_by=grace)
    except DatabaseError as error:
        logger.warning("render times not learned from %d ended renders: %s", len(rates), error)
        return
    if due_now:
        logger.info("%d renders sent with no history are due now: one like them ended after "
                    "%.3f s per character", due_now, min(rates))  # fmt: skip


def _after_status(job: VideoJob, status, now) -> tuple[str, dict | None]:
    """(outcome, changes) for one status answer; (failure message, None) for a failure."""
    if isinstance(status, Exception):
        if isinstance(status, GENERATION_ERRORS) and getattr(status, "retryable", False):
            note = f"Status check failed, will check again: {status}"
            return "rendering", _later(job, now, note)
        return str(status) or status.__class__.__name__, None
    if status.status == "failed":
        reason = status.error_message or "no reason given"
        return str(RenderFailed(f"The provider could not render the video: {reason}.")), None
    if status.status == "completed" and not status.video_url:
        return "The provider reported the render complete but gave no video URL.", None
    if status.status == "completed":
        # The copy is woken now; the sweep looks again only if nobody has taken it by then.
        return "rendered", {"state": State.DOWNLOADING, "rendered_at": render_ended(job, now),
                            "last_error": "", "wakeup_sent_at": now, "bytes_copied": 0,
                            "rendered_links": status.links(),
                            "next_check_in": copy_redispatch_seconds()}  # fmt: skip
    elapsed = (now - (job.started_at or job.queued_at)).total_seconds()
    if elapsed > settings.HEYGEN_RENDER_DEADLINE_SECONDS:
        return f"The render was still {status.status} when the deadline passed.", None
    return "rendering", _later(job, now, "")


def render_ended(job: VideoJob, seen_at):
    """When the render ended, as far as we can tell; recent render times are learned from
    it (`leases.render_seconds_per_char`), so it must not carry the polling delay (learned
    times would grow batch after batch, and the checks come later and later).

    The provider's webhook said when (`rendered_at`, recorded on arrival): that time. Found
    done by a check after one that found it running (`updated_at`: the last check's record,
    the only write while it renders): between the two, the midpoint. Found done by its first
    check, timed from the expected end: only "by then" is known, so a little before the
    expectation (a render faster than expected is then checked earlier next time). Otherwise
    (no expectation, or a check before it): when this check saw it."""
    if job.rendered_at is not None:
        return min(job.rendered_at, seen_at)
    if job.render_checks > 0 and job.updated_at and job.updated_at < seen_at:
        return job.updated_at + (seen_at - job.updated_at) / 2
    expected, sent = job.expected_render_seconds, job.submission_sent_at
    if expected is None or sent is None or seen_at < sent + timedelta(seconds=expected):
        return seen_at
    return min(seen_at, sent + timedelta(seconds=max(0.0, expected - EXPECTED_MARGIN_SECONDS)))


def _later(job: VideoJob, now, note: str) -> dict:
    # From the time the check was due, not from when a busy sweep got to it: checks do not
    # drift later by a tick each time; but never sooner than the first interval (a late sweep
    # does not poll harder).
    due = job.next_check_at if job.next_check_at and job.next_check_at <= now else now
    interval = _next_check_in(job, now)
    delay = max((due - now).total_seconds() + interval,
                min(interval, settings.VIDEO_POLL_INTERVAL_SECONDS))  # fmt: skip
    return {"render_checks": job.render_checks + 1, "last_error": note[:2000],
            "next_check_in": delay}  # fmt: skip


# --- copy -----------------------------------------------------------------------------------


class _CopyProgress:
    """Records the copy's step and bytes, and renews the job's lease (the upload's lease is
    renewed by the pipeline itself)."""

    def __init__(self, job: VideoJob, token: str):
        self.job, self.token = job, token
        # The claim just set the lease: the first renewal is due a second from now (a short
        # copy needs none, and opens no database connection on an upload thread).
        self.last = time.monotonic()

    def __call__(self, stage: str, details: dict) -> None:
        if stage == "downloading":
            # A claim for the copy (or the check that holds it) already says so: no write.
            if self.job.state != State.DOWNLOADING or self.job.bytes_copied:
                leases.renew(self.job.pk, token=self.token, bytes_copied=0,
                             state=State.DOWNLOADING)  # fmt: skip
        elif stage == "uploading":
            leases.renew(self.job.pk, token=self.token, state=State.UPLOADING,
                         bytes_total=details.get("bytes_total"))  # fmt: skip
        elif stage in ("copying", "finishing") and (
            time.monotonic() - self.last >= RENEW_EVERY_SECONDS
        ):  # the video's bytes flowing, then its poster and captions being made
            self.last = time.monotonic()
            progress = {"bytes_copied": details["bytes_copied"]} if stage == "copying" else {}
            leases.renew(self.job.pk, token=self.token, **progress)


def _close(job: VideoJob, token: str, state: str, **changes):
    """Inside the item's save transaction: end the job, only if it is still ours."""

    def close() -> None:
        leases.finish(job.pk, token=token, state=state, **changes)

    return close


#: A check's signed download URL is used by the copy right after it only while it is valid
#: this much longer (HeyGen signs them for 7 days); otherwise the copy asks for a fresh one.
URL_VALID_FOR_SECONDS = 300


def _url_still_valid(status: RenderStatus | None) -> bool:
    if status is None or not status.is_completed:
        return False
    expires = status.url_expires_at
    return expires is None or expires.timestamp() - time.time() > URL_VALID_FOR_SECONDS


def _links_of_the_check(job: VideoJob) -> RenderStatus | None:
    """The links the check that saw the render finish recorded on the job, for its first
    copy attempt (after a failed one, whatever failed, the copy asks the provider again),
    and only with a known expiry."""
    if job.last_error or job.state != State.DOWNLOADING:
        return None
    status = RenderStatus.completed_from_links(job.provider_video_id, job.rendered_links)
    return status if status is not None and status.url_expires_at is not None else None


def copy(job: VideoJob, token: str, provider=None, video_storage=None,
         status: RenderStatus | None = None) -> str:  # fmt: skip
    """Stream the rendered video into storage and save the item, or fall back / retry.
    `status`: the check's answer just before (its signed URL is used while still valid);
    else the links that check recorded on the job, on the same terms."""
    provider = provider or get_provider()
    try:
        status = status or _links_of_the_check(job)
        if not _url_still_valid(status):
            status = provider.get_status(job.provider_video_id)  # a fresh, signed URL
        if not status.is_completed:
            raise RenderFailed("The provider no longer has the rendered video; regenerate it.")
        return _store(job, token, status, provider, video_storage or VideoStorage())
    except LeaseLost:
        logger.warning("video job %s: copy stopped, another worker took the job over", job.pk)
        return "lost"
    except (UploadLost, *GENERATION_ERRORS) as error:
        return fail_or_retry(job, token, error, back_to=State.DOWNLOADING)
    except Exception as error:  # a bug or a database error: recorded on the job, not lost
        logger.exception("video job %s: copy crashed: %s", job.pk, error)
        return fail_or_retry(job, token, error, back_to=State.DOWNLOADING)


def _store(job: VideoJob, token: str, status: RenderStatus, provider, video_storage) -> str:
    item = job.content_item
    offline = provider.name == OFFLINE_PROVIDER
    try:
        unit = store_rendered_video(
            status, provider=provider, video_storage=video_storage, script=job.script,
            language=job.language, on_progress=_CopyProgress(job, token), upload_owner=token,
            lease_seconds=settings.VIDEO_JOB_LEASE_SECONDS,
        )  # fmt: skip
    except StorageUnavailable as error:
        if not fallback_allowed(status):
            raise
        result = build_result(status, language=job.language, stored=None,
                              storage_error=str(error), offline_preview=offline)  # fmt: skip
        logger.warning("video job %s: storage unavailable, provider URL kept until %s: %s",
                       job.pk, status.url_expires_at, error)  # fmt: skip
        content_item_mark_fallback(
            content_item=item,
            content_data=content_data_from_result(result, script=job.script),
            provider_url_expires_at=status.url_expires_at,
            within_transaction=_close(job, token, State.FALLBACK, last_error=str(error)[:2000],
                                      provider_url_expires_at=status.url_expires_at),
        )  # fmt: skip
        return "fallback"
    stored = unit.video
    result = build_result(status, language=job.language, stored=stored, offline_preview=offline,
                          companions=unit.companions)  # fmt: skip
    content_item_mark_stored(
        content_item=item,
        content_data=content_data_from_result(result, script=job.script),
        within_transaction=_close(job, token, State.STORED, last_error="",
                                  bytes_copied=stored.file_size),
        upload_owner=token,
    )  # fmt: skip
    logger.info("video job %s: stored %s (%d bytes) with %s", job.pk, stored.storage_path,
                stored.file_size, unit.storage_paths[1:])  # fmt: skip
    return "stored"
