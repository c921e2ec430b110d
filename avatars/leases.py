"""Claims on video jobs by lease: who works on a job, until when, and state changes under locks.

A step claims its job with `SELECT ... FOR UPDATE SKIP LOCKED` and writes its token and a
lease; it renews the lease while it works. Every later change of that job checks, under the
row lock, that the token is still the job's (`transition`): a worker that lost its job (its
lease expired and another worker took over) changes nothing. Time only says when a lease
ends; the lock and the token decide who may write.
"""

import os
import socket
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from avatars.models import VideoJob

#: The PostgreSQL advisory lock that serialises "is a render slot free?" decisions.
RENDER_SLOTS_LOCK = 0x5EED_0001


class LeaseLost(Exception):
    """The job was taken over by another worker (our lease had expired): stop, change nothing."""


def new_token() -> str:
    """A claim token naming this host and process (shown to operators as the lease holder)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_until(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=settings.VIDEO_JOB_LEASE_SECONDS)


def lease_is_free(now: datetime) -> Q:
    """Nobody holds the job: never claimed, released, or the holder's lease expired."""
    return Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)


def lock_render_slots() -> None:
    """Inside a transaction: one decision about render slots at a time, on every host."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RENDER_SLOTS_LOCK])
    # SQLite: write transactions are already serialised (BEGIN IMMEDIATE).


def claim(job_id: int, *, token: str, states: tuple[str, ...], due: bool = True) -> VideoJob | None:
    """Take the job if it is in one of `states`, nobody holds it and (with `due`) any retry
    delay has passed; a takeover from a dead holder counts as an attempt."""
    now = timezone.now()
    with transaction.atomic():
        jobs = VideoJob.objects.select_for_update(skip_locked=True, of=("self",)).filter(
            lease_is_free(now), pk=job_id, state__in=states
        )
        if due:
            jobs = jobs.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        job = jobs.select_related("content_item__topic").first()
        if job is None:
            return None
        if job.claimed_by:  # its holder died mid-step
            job.attempts += 1
        job.claimed_by = token
        job.lease_expires_at = lease_until(now)
        job.next_check_at = job.lease_expires_at  # the sweep looks again when the lease ends
        job.save(update_fields=["claimed_by", "lease_expires_at", "next_check_at", "attempts",
                                "updated_at"])  # fmt: skip
        return job


def renew(job_id: int, *, token: str, **changes) -> None:
    """Extend our lease (and record progress); LeaseLost when the job is no longer ours."""
    until = lease_until()
    updated = VideoJob.objects.filter(
        pk=job_id, claimed_by=token, state__in=VideoJob.ACTIVE_STATES
    ).update(lease_expires_at=until, next_check_at=until, updated_at=timezone.now(), **changes)
    if not updated:
        raise LeaseLost(f"video job {job_id} was taken over by another worker")


def transition(job_id: int, *, token: str, release: bool = True, **changes) -> VideoJob:
    """Under the row lock: apply `changes` if the job is still ours; LeaseLost otherwise.
    A new `state` stamps `state_changed_at`; `release` frees the job for the next step."""
    now = timezone.now()
    with transaction.atomic():
        job = VideoJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:  # its item was deleted meanwhile: nothing left to change
            raise LeaseLost(f"video job {job_id} no longer exists")
        if job.claimed_by != token or job.state not in VideoJob.ACTIVE_STATES:
            raise LeaseLost(f"video job {job_id} is no longer held by {token}")
        if "state" in changes and changes["state"] != job.state:
            changes.setdefault("state_changed_at", now)
        for name, value in changes.items():
            setattr(job, name, value)
        if release:
            job.claimed_by = ""
            job.lease_expires_at = None
        job.save()
        return job


def release_dead_submissions() -> int:
    """Jobs claimed for submission whose holder died before recording the provider's id go
    back to the queue (under lock): their render slot is freed."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            VideoJob.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state=VideoJob.State.RENDERING, provider_video_id="", lease_expires_at__lt=now)
            .values_list("pk", flat=True)
        )
        VideoJob.objects.filter(pk__in=ids).update(
            state=VideoJob.State.QUEUED,
            state_changed_at=now,
            claimed_by="",
            lease_expires_at=None,
            attempts=F("attempts") + 1,
        )
    return len(ids)
