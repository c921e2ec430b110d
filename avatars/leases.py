"""The one owner of `VideoJob` writes: creation, claims by lease, transitions, attempts, lease
renewal and wake-up bookkeeping, all on the database's clock.

A step claims its job with `SELECT ... FOR UPDATE SKIP LOCKED` and writes its token and a
lease; it renews the lease while it works. Every later change of that job checks, under the
row lock, that the token is still the job's (`transition`): a worker that lost its job (its
lease expired and another worker took over) changes nothing, not even a counter. Leases are
compared with the database's clock (`db_now`), never a process's: a host whose clock runs
ahead cannot take over a live job. Time only says when a lease ends; the lock and the token
decide who may write.
"""

import os
import socket
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Q, Value, When
from django.db.models.functions import Cast, Length
from django.utils import timezone

from avatars.models import VideoJob
from topics.models import ContentItem
from topics.services import content_item_mark_failed
from videostore.clock import DbNow, db_now, db_now_plus

State = VideoJob.State
#: How a cancelled job's reason starts ("Cancelled by <user>"): the status line reads it.
CANCELLED_BY = "Cancelled by "
#: The PostgreSQL advisory lock that serialises "is a render slot free?" decisions.
RENDER_SLOTS_LOCK = 0x5EED_0001


class LeaseLost(Exception):
    """The job was taken over by another worker (our lease had expired): stop, change nothing."""


def new_token() -> str:
    """A claim token naming this host and process (shown to operators as the lease holder)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_until(now: datetime, seconds: float | None = None) -> datetime:
    return now + timedelta(seconds=seconds or settings.VIDEO_JOB_LEASE_SECONDS)


def lease_is_free(now: datetime) -> Q:
    """Nobody holds the job: never claimed, released, or the holder's lease expired."""
    return Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)


def lock_render_slots() -> None:
    """Inside a transaction: one decision about render slots at a time, on every host."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RENDER_SLOTS_LOCK])
    # SQLite: write transactions are already serialised (BEGIN IMMEDIATE).


def _locked():
    """Jobs nobody holds, locked (skipping those another claim holds), each row with the
    database's clock read in the same statement (`db_clock`): no clock query of its own."""
    return (
        VideoJob.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(lease_is_free(DbNow()))
        .annotate(db_clock=DbNow())
    )


def _clock(rows) -> datetime:
    """The database's clock as the claim's statement read it (the last row's)."""
    return max(row.db_clock for row in rows)


# --- creation -------------------------------------------------------------------------------


def create_job(
    *, content_item: ContentItem, script: str, language: str, avatar_id: str, voice_id: str,
    max_attempts: int | None = None,
) -> VideoJob:  # fmt: skip
    """A queued generation of `content_item` (inside the caller's transaction)."""
    return create_jobs([(content_item, script)], language=language, avatar_id=avatar_id,
                       voice_id=voice_id, max_attempts=max_attempts)[0]  # fmt: skip


def create_jobs(
    items: list[tuple[ContentItem, str]], *, language: str, avatar_id: str, voice_id: str,
    max_attempts: int | None = None,
) -> list[VideoJob]:  # fmt: skip
    """A queued generation of each (item, script), inserted in one statement (inside the
    caller's transaction)."""
    now = timezone.now()
    return VideoJob.objects.bulk_create([
        VideoJob(content_item=content_item, script=script, language=language,
                 avatar_id=avatar_id, voice_id=voice_id, provider=settings.AVATAR_PROVIDER,
                 max_attempts=max_attempts or settings.VIDEO_JOB_MAX_ATTEMPTS,
                 state_changed_at=now)
        for content_item, script in items
    ])  # fmt: skip


# --- claims ---------------------------------------------------------------------------------


def claim(
    job_id: int, *, token: str, states: tuple[str, ...], due: bool = True, **changes
) -> VideoJob | None:
    """Take the job if it is in one of `states`, nobody holds it and (with `due`) any retry
    delay has passed; a takeover from a dead holder counts as an attempt. `changes` are
    written with the claim (a new `state` stamps `state_changed_at`)."""
    with transaction.atomic():
        jobs = _locked().filter(pk=job_id, state__in=states)
        if due:
            jobs = jobs.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=DbNow()))
        job = jobs.select_related("content_item__topic").first()
        if job is None:
            return None
        now = job.db_clock
        if job.claimed_by:  # its holder died mid-step
            job.attempts += 1
        if "state" in changes and changes["state"] != job.state:
            changes.setdefault("state_changed_at", now)
        for name, value in changes.items():
            setattr(job, name, value)
        job.claimed_by = token
        job.lease_expires_at = lease_until(now)
        job.next_check_at = job.lease_expires_at  # the sweep looks again when the lease ends
        job.wakeup_sent_at = None  # the wake-up, if any, is taken
        job.updated_at = now
        job.save(update_fields=["claimed_by", "lease_expires_at", "next_check_at", "attempts",
                                "wakeup_sent_at", "updated_at", *changes])  # fmt: skip
        return job


def submission_title(job: VideoJob) -> str:
    """A title unique to one create call of this job, echoed back by the provider's list."""
    topic = job.content_item.topic.title[:150]
    return f"{topic} [cs-{job.pk}-{job.attempts}-{uuid.uuid4().hex[:8]}]"


def claim_submissions(
    token: str, *, lease_seconds: float, limit: int = 1, job_id: int | None = None
) -> list[VideoJob]:
    """Under the render-slot lock: the oldest due queued jobs (or `job_id`), as many as there
    are free render slots (at most `limit`), claimed in one statement. Claimed jobs count as
    rendering at once (the cap holds across hosts, from before their create is sent until
    their render ends); each one's unique title and send time are recorded before the call.
    The lease outlives the whole call."""
    with transaction.atomic():
        lock_render_slots()
        free = settings.VIDEO_MAX_CONCURRENT_RENDERS - rendering_count()
        if free <= 0:
            return []
        jobs = _locked().filter(state=State.QUEUED).exclude(next_attempt_at__gt=DbNow())
        if job_id is not None:
            jobs = jobs.filter(pk=job_id)
        claimed = list(jobs.select_related("content_item__topic").order_by("queued_at", "id")
                       [: min(free, limit)])  # fmt: skip
        if not claimed:
            return []
        now = _clock(claimed)
        until = lease_until(now, max(lease_seconds, settings.VIDEO_JOB_LEASE_SECONDS))
        for job in claimed:
            job.render_checks = 0
            job.state = State.RENDERING
            job.state_changed_at = now
            job.started_at = job.started_at or now
            job.claimed_by = token
            job.lease_expires_at = job.next_check_at = until
            job.next_attempt_at = None
            job.submission_title = submission_title(job)
            job.submission_sent_at = now
            job.updated_at = now
        _write_rows(claimed, SUBMISSION_FIELDS)
        return claimed


SUBMISSION_FIELDS = ["render_checks", "state", "state_changed_at", "started_at", "claimed_by",
                     "lease_expires_at", "next_check_at", "next_attempt_at",
                     "submission_title", "submission_sent_at", "updated_at"]  # fmt: skip


#: Recent renders a render time is learned from, and the fewest that make an estimate.
RATE_SAMPLE, RATE_MIN_SAMPLE = 20, 3


def render_seconds_per_char() -> float | None:
    """The provider's typical render time per script character, the median over its recent
    renders (one query); None until there are a few."""
    recent = (
        VideoJob.objects.filter(
            provider=settings.AVATAR_PROVIDER,
            rendered_at__isnull=False,
            submission_sent_at__isnull=False,
        )  # fmt: skip
        .order_by("-rendered_at")
        .values_list("rendered_at", "submission_sent_at", Length("script"))[:RATE_SAMPLE]
    )
    rates = sorted((ended - sent).total_seconds() / max(chars, 1) for ended, sent, chars in recent)
    if len(rates) < RATE_MIN_SAMPLE:
        return None
    return rates[len(rates) // 2]


def pilot_in_flight() -> bool:
    """A pilot render (`steps._follow_a_pilot`) is still rendering."""
    return VideoJob.objects.filter(
        state=State.RENDERING, pilot=True, provider=settings.AVATAR_PROVIDER
    ).exists()


def time_unexpected_renders(seconds_per_char: float, *, later_by: float = 0.0) -> int:
    """The provider's renders sent with no expected time (no history then) get one,
    `seconds_per_char` of their script, and are due `later_by` seconds after it has passed
    since they were sent (unless due sooner). Lock, re-read, write, in one transaction: rows
    a claim or a record is writing are skipped (they keep their schedule); rows held by a
    check are moved too, and its record sees it (`record_many`: checked again at once).
    Returns how many are due now."""
    with transaction.atomic():
        jobs = list(
            VideoJob.objects.select_for_update(skip_locked=True)
            .filter(
                state=State.RENDERING,
                provider=settings.AVATAR_PROVIDER,
                expected_render_seconds__isnull=True,
                submission_sent_at__isnull=False,
            )
            .exclude(provider_video_id="")
            .annotate(db_clock=DbNow(), chars=Length("script"))
            .order_by("pk")
        )
        due_now = 0
        for job in jobs:
            job.expected_render_seconds = seconds_per_char * max(job.chars, 1)
            when = job.submission_sent_at + timedelta(
                seconds=job.expected_render_seconds + later_by
            )
            if job.next_check_at is None or when < job.next_check_at:
                job.next_check_at = when
            due_now += job.next_check_at <= job.db_clock
        _write_rows(jobs, ["expected_render_seconds", "next_check_at"])
    return due_now


def submissions_waiting() -> bool:
    """A queued job is due for submission: what a freed render slot wakes a worker for."""
    return VideoJob.objects.filter(state=State.QUEUED).exclude(next_attempt_at__gt=DbNow()).exists()


def rendering_count() -> int:
    """Renders that count against the cap: created or possibly created, not yet ended."""
    return VideoJob.objects.filter(state=State.RENDERING).count()


def claim_unknown_submissions(
    token: str, *, limit: int = 100, job_id: int | None = None
) -> list[VideoJob]:
    """Rendering jobs whose create call's outcome is unknown (timed out, its worker died or
    lost its lease) and whose look-up is due: nobody holds them, so no call is in flight."""
    with transaction.atomic():
        due = Q(next_check_at__isnull=True) | Q(next_check_at__lte=DbNow())
        jobs = (
            _locked()
            .filter(state=State.RENDERING, provider_video_id="")
            .exclude(submission_title="")
            # Due, or its holder died mid-call (a lease that ended with a holder's name on it).
            .filter(due | ~Q(claimed_by=""))
        )
        if job_id is not None:
            jobs = jobs.filter(pk=job_id)
        claimed = list(jobs.select_related("content_item__topic").order_by("id")[:limit])
        _hold(claimed, token)
    return claimed


def _write_rows(jobs: list[VideoJob], names) -> None:
    """`bulk_update` of `names` in one statement, except that a field holding the same value
    on every row (a claim's or a record's clock, a released lease, a new state: most of
    them) is written as that value, not as a CASE over the rows: Django's CASE costs
    Python time for every field and row (a chunk of 16 checks recorded 13 fields)."""
    if not jobs:
        return
    casted = connection.features.requires_casted_case_in_updates
    updates = {}
    for name in names:
        field = VideoJob._meta.get_field(name)
        values = [getattr(job, field.attname) for job in jobs]
        if all(value == values[0] for value in values[1:]):
            updates[field.attname] = values[0]
            continue
        rows = zip(jobs, values, strict=True)
        case = Case(*(When(pk=job.pk, then=Value(value, output_field=field))
                      for job, value in rows), output_field=field)  # fmt: skip
        updates[field.attname] = Cast(case, output_field=field) if casted else case
    VideoJob.objects.filter(pk__in=[job.pk for job in jobs]).update(**updates)


def _hold(claimed: list[VideoJob], token: str) -> None:
    """Write the claim of the locked rows: our token and a lease (one statement)."""
    if claimed:
        VideoJob.objects.filter(pk__in=[job.pk for job in claimed]).update(
            claimed_by=token, lease_expires_at=lease_until(_clock(claimed))
        )


def claim_due_checks(token: str, *, limit: int = 100, job_id: int | None = None) -> list[VideoJob]:
    """Rendering jobs whose check is due (or `job_id`, due now), claimed in one batch."""
    with transaction.atomic():
        jobs = _locked().filter(state=State.RENDERING).exclude(provider_video_id="")
        if job_id is not None:
            jobs = jobs.filter(pk=job_id)
        else:
            jobs = jobs.filter(next_check_at__lte=DbNow())
        claimed = list(jobs.select_related("content_item__topic").order_by("next_check_at")[:limit])
        _hold(claimed, token)
    return claimed


# --- while holding a job --------------------------------------------------------------------


def renew(job_id: int, *, token: str, **changes) -> None:
    """Extend our lease (and record progress; a `state` stamps `state_changed_at`) in one
    statement on the database's clock; LeaseLost when the job is no longer ours."""
    if "state" in changes:
        changes.setdefault("state_changed_at", DbNow())
    until = db_now_plus(settings.VIDEO_JOB_LEASE_SECONDS)
    updated = VideoJob.objects.filter(
        pk=job_id, claimed_by=token, state__in=VideoJob.ACTIVE_STATES
    ).update(lease_expires_at=until, next_check_at=until, updated_at=DbNow(), **changes)
    if not updated:
        raise LeaseLost(f"video job {job_id} was taken over by another worker")


def transition(job_id: int, *, token: str, release: bool = True, **changes) -> VideoJob:
    """Under the row lock: apply `changes` if the job is still ours; LeaseLost otherwise.
    A new `state` stamps `state_changed_at`; `release` frees the job for the next step.
    `next_check_in` / `retry_in` (seconds) schedule the next look (and the retry) from now on
    the database's clock; `attempts_delta` adds to the attempts counted."""
    with transaction.atomic():
        job = (VideoJob.objects.select_for_update().filter(pk=job_id)
               .annotate(db_clock=DbNow()).first())  # fmt: skip
        if job is None:  # its item was deleted meanwhile: nothing left to change
            raise LeaseLost(f"video job {job_id} no longer exists")
        if job.claimed_by != token or job.state not in VideoJob.ACTIVE_STATES:
            raise LeaseLost(f"video job {job_id} is no longer held by {token}")
        _apply(job, job.db_clock, changes, release)
        job.save()
        return job


def finish(job_id: int, *, token: str, state: str, **changes) -> None:
    """End a job we hold in `state` (terminal), in one statement: the UPDATE locks the row and
    writes only if the job is still ours and active, on the database's clock; LeaseLost
    otherwise. Inside the item's save transaction, so both commit or neither. The render's
    signed links go with it (`rendered_links`: needed only until the copy)."""
    now = DbNow()
    updated = VideoJob.objects.filter(
        pk=job_id, claimed_by=token, state__in=VideoJob.ACTIVE_STATES
    ).update(state=state, state_changed_at=now, finished_at=now, updated_at=now,
             claimed_by="", lease_expires_at=None, next_check_at=None, next_attempt_at=None,
             rendered_links={}, **changes)  # fmt: skip
    if not updated:
        raise LeaseLost(f"video job {job_id} is no longer held by {token}")


def _apply(job: VideoJob, now: datetime, changes: dict, release: bool) -> set[str]:
    """Set `changes` on a locked job (see `transition`); the names of the fields written."""
    changes = dict(changes)
    job.attempts += changes.pop("attempts_delta", 0)
    for name in ("next_check_in", "retry_in"):
        if name in changes:
            when = now + timedelta(seconds=changes.pop(name))
            changes["next_check_at"] = when
            if name == "retry_in":
                changes["next_attempt_at"] = when
    if "state" in changes and changes["state"] != job.state:
        changes.setdefault("state_changed_at", now)
    if changes.get("state") in VideoJob.TERMINAL_STATES:
        changes.setdefault("finished_at", now)
    for name, value in changes.items():
        setattr(job, name, value)
    if release:
        job.claimed_by = ""
        job.lease_expires_at = None
    job.updated_at = now
    return {*changes, "attempts", "claimed_by", "lease_expires_at", "updated_at"}


def record_many(
    token: str, changes: dict[int, dict], *, hold: frozenset[int] = frozenset(),
    seen: dict[int, datetime | None] | None = None,
) -> dict[int, bool]:  # fmt: skip
    """`transition` for many jobs in one transaction and two statements: each job still
    held by `token` gets its changes and is released, except those in `hold`, which we keep
    with a new lease (the next step runs here: no claim of its own, no wake-up). Returns the
    jobs that were still ours (the others were taken over: their changes are dropped), each
    mapped to whether a provider's event asked for its check meanwhile.

    `seen`: each job's `next_check_at` when it was claimed for a check. An event that came
    meanwhile moved it (`schedule_check_now`) and woke nobody, since we held the job: a job
    we found still rendering is then due at once instead of later, and maps to True (the
    caller wakes its check)."""
    if not changes:
        return {}
    with transaction.atomic():
        ours = list(VideoJob.objects.select_for_update().filter(
            pk__in=list(changes), claimed_by=token, state__in=VideoJob.ACTIVE_STATES,
        ).annotate(db_clock=DbNow()))  # fmt: skip
        if not ours:
            return {}
        now = _clock(ours)
        fields: set[str] = set()
        asked_again: dict[int, bool] = {}
        for job in ours:
            held = job.pk in hold
            change = changes[job.pk]
            asked_again[job.pk] = (
                seen is not None and job.pk in seen and job.next_check_at != seen[job.pk]
                and "state" not in change and "next_check_in" in change
            )  # fmt: skip
            if asked_again[job.pk]:
                change = {**change, "next_check_in": 0}
            fields |= _apply(job, now, change, release=not held)
            if held:  # as a claim leaves it: the sweep looks again when the lease ends
                job.lease_expires_at = job.next_check_at = lease_until(now)
                job.wakeup_sent_at = None
                fields |= {"next_check_at", "wakeup_sent_at"}
        _write_rows(ours, sorted(fields))
    return asked_again


# --- wake-up bookkeeping --------------------------------------------------------------------


def locked_for_event(*, callback_id: str, provider_video_id: str) -> VideoJob | None:
    """Inside a transaction: the job a provider's event names, its row locked, with the
    database's clock (`db_clock`); None when there is no such job."""
    return (VideoJob.objects.select_for_update()
            .filter(callback_id=callback_id, provider_video_id=provider_video_id)
            .annotate(db_clock=DbNow()).first())  # fmt: skip


def schedule_check_now(job: VideoJob, *, render_ended: bool = False) -> bool:
    """The provider says the render ended: the check of `job` (a rendering job, its row
    locked: `locked_for_event`) is due now; `render_ended` (a success event): the render
    ended now, which the render times are learned from (`steps.render_ended`), not when a
    check got to it.

    Returns whether a worker must be woken for the check: not when a check holds the job
    (under the row lock, so that check has not recorded yet). Its record sees the moved
    `next_check_at` (`record_many`): a render it found done is copied as usual, and one it
    found still running is checked again at once; no second check runs meanwhile."""
    changes = {"next_check_at": DbNow()}
    if render_ended:
        changes["rendered_at"] = DbNow()
    VideoJob.objects.filter(pk=job.pk).update(**changes)
    return job.lease_expires_at is None or job.lease_expires_at < job.db_clock


def due_copies(*, limit: int = 500) -> tuple[list[int], list[int]]:
    """Copies nobody holds that are due, split in two: (to wake, to run here).

    A copy whose holder died (its lease ended with a name on it) or whose wake-up was not
    taken within one lease (the job workers are stalled or gone: a worker killed while it
    waited for tasks can wedge a django-q2 cluster) is run by the sweep itself; any other gets
    one wake-up call. Each is left alone for a lease period, so wake-ups never pile up: at most
    one is outstanding per job."""
    with transaction.atomic():
        due = list(
            _locked()
            .filter(state__in=(State.DOWNLOADING, State.UPLOADING))
            .exclude(next_attempt_at__gt=DbNow())
            .filter(Q(next_check_at__isnull=True) | Q(next_check_at__lte=DbNow()))
            .values_list("pk", "claimed_by", "wakeup_sent_at", "db_clock")[:limit]
        )
        if not due:
            return [], []
        to_run = [pk for pk, holder, sent, _ in due if holder or sent]
        to_wake = [pk for pk, holder, sent, _ in due if not (holder or sent)]
        now = max(clock for *_, clock in due)
        later = now + timedelta(seconds=settings.VIDEO_JOB_LEASE_SECONDS)
        VideoJob.objects.filter(pk__in=to_wake).update(next_check_at=later, wakeup_sent_at=now)
        VideoJob.objects.filter(pk__in=to_run).update(next_check_at=later)
    return to_wake, to_run


def next_check_in_seconds() -> float | None:
    """Seconds (on the database's clock) until the earliest check of a render nobody holds
    is due; None when no render waits for one. A hint for the sweep's sleep."""
    due = (
        VideoJob.objects.filter(state=State.RENDERING, next_check_at__isnull=False)
        .filter(lease_is_free(DbNow()))
        .exclude(provider_video_id="")
    )
    return _seconds_until_earliest(due, "next_check_at")


def next_lease_end_in_seconds(*, ended_within: float = 0.0) -> float | None:
    """Seconds (on the database's clock) until the earliest lease of an active job ends
    (negative: it ended that long ago, at most `ended_within` seconds); None when no active
    job is held. A hint for the lease watch: a dead holder's job is taken over as its lease
    ends, not up to a tick later."""
    since = DbNow() - Value(timedelta(seconds=ended_within))
    held = VideoJob.objects.filter(
        state__in=VideoJob.ACTIVE_STATES, lease_expires_at__gte=since
    ).exclude(claimed_by="")
    return _seconds_until_earliest(held, "lease_expires_at")


def _seconds_until_earliest(jobs, field: str) -> float | None:
    """Seconds from the database's clock (read in the same statement) to the earliest
    `field` among `jobs`; None when there is none."""
    row = jobs.annotate(db_clock=DbNow()).order_by(field).values_list(field, "db_clock").first()
    return None if row is None else (row[0] - row[1]).total_seconds()


def stalled_figures() -> dict:
    """For operators: active jobs past their lease, and copy wake-ups not taken within one
    lease (the job workers are stalled or not running), with the oldest one's age."""
    now = db_now()
    lease = timedelta(seconds=settings.VIDEO_JOB_LEASE_SECONDS)
    past_lease = VideoJob.objects.filter(state__in=VideoJob.ACTIVE_STATES,
                                         lease_expires_at__lt=now).count()  # fmt: skip
    untaken = VideoJob.objects.filter(
        state__in=(State.DOWNLOADING, State.UPLOADING), wakeup_sent_at__lt=now - lease
    ).order_by("wakeup_sent_at")
    oldest = untaken.values_list("wakeup_sent_at", flat=True).first()
    return {
        "past_lease": past_lease,
        "wakeups_not_taken": untaken.count(),
        "oldest_wakeup_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
    }


def expired_leases() -> int:
    """Active jobs whose holder's lease has ended (their worker died; a takeover is due)."""
    return VideoJob.objects.filter(
        state__in=VideoJob.ACTIVE_STATES, lease_expires_at__lt=db_now()
    ).count()


def requeue_unsent(job_id: int, *, token: str, note: str) -> VideoJob:
    """A look-up proved the create never reached the provider: back to the queue (its render
    slot freed), the failed try counted as an attempt."""
    return transition(job_id, token=token, state=State.QUEUED, provider_video_id="",
                      submission_title="", submission_sent_at=None, last_error=note[:2000],
                      next_attempt_at=None, next_check_at=None, attempts_delta=1)  # fmt: skip


# --- cancel ---------------------------------------------------------------------------------


def cancel_queued(job_id: int, *, cancelled_by: str) -> VideoJob | None:
    """A person cancels a job still waiting for a render slot: under the row lock, only if
    it is still queued and nobody holds it (no create call can be in flight), it ends failed
    with "Cancelled by <user>" and its item says so; no render is requested. None when it was
    already claimed, submitted or ended."""
    with transaction.atomic():
        now = db_now()
        job = VideoJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state != State.QUEUED or job.submission_title:
            return None
        if job.claimed_by and not (job.lease_expires_at and job.lease_expires_at < now):
            return None
        reason = f"{CANCELLED_BY}{cancelled_by}"[:2000]
        _apply(job, now, {"state": State.FAILED, "last_error": reason, "next_check_at": None,
                          "next_attempt_at": None}, release=True)  # fmt: skip
        job.save()
        content_item_mark_failed(content_item_id=job.content_item_id)
    return job
