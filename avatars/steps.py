"""The short steps of a video job; none waits for the provider while it holds a worker.

    queued --submit--> rendering --check (poll batch or webhook)--> downloading
           --copy--> uploading --> stored | fallback | failed

`submit` asks the provider to render and records its video id (never waits); `check` asks
for the status of renders that are due and moves finished ones on; `copy` streams the video
into storage and saves the item. Each step claims its job by lease (avatars/leases.py), so a
worker killed anywhere loses nothing: the next one takes over when the lease expires,
resumes from the recorded provider id (no second render) and copies again from the start.
A terminal state is written in its own transaction, so a failing item update cannot roll it
back.
"""

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from avatars import leases
from avatars.errors import GENERATION_ERRORS, RenderFailed, RenderSlotsBusy
from avatars.leases import LeaseLost
from avatars.models import VideoJob
from avatars.pipeline import (
    OFFLINE_PROVIDER,
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
from videostore import ledger
from videostore.errors import StorageUnavailable
from videostore.ledger import UploadLost
from videostore.storage import VideoStorage

logger = logging.getLogger(__name__)
State = VideoJob.State
#: Until a render slot frees up, a job the provider refused for concurrency waits this long.
SLOT_WAIT_SECONDS = 5


def copy_redispatch_seconds() -> int:
    """A copy-ready job nobody has taken gets a new wake-up call after one lease period: a
    call held by a worker that was killed before it ran it is lost to the broker until the
    broker's own retry (45 minutes). A hint only: the claim is by lock and lease, so a
    duplicate call is harmless (and at most one per job per lease period)."""
    return settings.VIDEO_JOB_LEASE_SECONDS


#: How often a copy records its progress and renews its leases.
PROGRESS_EVERY_SECONDS = 1.0

Enqueue = Callable[[str, int | None], None]


def _options(job: VideoJob) -> RenderOptions:
    return RenderOptions(
        script=job.script,
        language=job.language,
        avatar_id=job.avatar_id,
        voice_id=job.voice_id,
        title=job.content_item.topic.title,
        callback_id=str(job.callback_id),
    )


def retry_delay(attempt: int) -> int:
    return min(settings.VIDEO_JOB_RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0), 900)


def fail(job: VideoJob, token: str, message: str) -> None:
    """Terminal failure: the job's state commits on its own, then the item says so."""
    try:
        leases.transition(
            job.pk, token=token, state=State.FAILED, last_error=message[:2000],
            finished_at=timezone.now(), next_check_at=None,
        )  # fmt: skip
    except LeaseLost:
        return
    logger.warning("video job %s failed: %s", job.pk, message)
    try:
        content_item_mark_failed(content_item_id=job.content_item_id)
    except Exception as error:  # the job's failure stands; the item keeps its last state
        logger.error("video job %s: item %s not marked failed: %s", job.pk,
                     job.content_item_id, error)  # fmt: skip


def fail_or_retry(job: VideoJob, token: str, error: Exception, *, back_to: str) -> str:
    """A retryable error waits (back in `back_to`) with backoff; others end the job."""
    message = str(error) or error.__class__.__name__
    attempts = job.attempts + 1
    if getattr(error, "retryable", False) and attempts < job.max_attempts:
        next_run = timezone.now() + timedelta(seconds=retry_delay(attempts))
        try:
            leases.transition(
                job.pk, token=token, state=back_to, attempts=attempts,
                last_error=message[:2000], next_attempt_at=next_run, next_check_at=next_run,
            )  # fmt: skip
        except LeaseLost:
            return "lost"
        logger.warning("video job %s will retry at %s (attempt %s of %s): %s", job.pk,
                       next_run.isoformat(), attempts + 1, job.max_attempts, message)  # fmt: skip
        return "retry"
    VideoJob.objects.filter(pk=job.pk).update(attempts=attempts)
    fail(job, token, message)
    return "failed"


# --- submit ---------------------------------------------------------------------------------


def claim_next_submission(token: str, *, job_id: int | None = None) -> VideoJob | None:
    """Under the render-slot lock: the oldest due queued job (or `job_id`), if a slot is free.
    The claimed job counts as rendering at once, so the cap holds across hosts."""
    now = timezone.now()
    with transaction.atomic():
        leases.lock_render_slots()
        busy = VideoJob.objects.filter(state=State.RENDERING).count()
        if busy >= settings.HEYGEN_MAX_CONCURRENT_RENDERS:
            return None
        jobs = VideoJob.objects.select_for_update(skip_locked=True, of=("self",)).filter(
            leases.lease_is_free(now), state=State.QUEUED
        )
        jobs = jobs.exclude(next_attempt_at__gt=now)
        if job_id is not None:
            jobs = jobs.filter(pk=job_id)
        job = jobs.select_related("content_item__topic").order_by("queued_at", "id").first()
        if job is None:
            return None
        job.state = State.RENDERING
        job.state_changed_at = now
        job.started_at = job.started_at or now
        job.claimed_by = token
        job.lease_expires_at = leases.lease_until(now)
        job.next_attempt_at = None
        job.save()
        return job


def submit(job: VideoJob, token: str, enqueue: Enqueue) -> str:
    """Ask the provider to render; record its video id and free the worker."""
    try:
        provider = get_provider()
        video_id = start_render(_options(job), provider=provider)
    except RenderSlotsBusy as error:
        # The provider's own cap: wait for a slot; no attempt used, no failure.
        leases.transition(
            job.pk, token=token, state=State.QUEUED,
            last_error=f"Waiting for a render slot: {error}"[:2000],
            next_attempt_at=timezone.now()
            + timedelta(seconds=getattr(error, "retry_after", None) or SLOT_WAIT_SECONDS),
        )  # fmt: skip
        return "waiting"
    except GENERATION_ERRORS as error:
        return fail_or_retry(job, token, error, back_to=State.QUEUED)
    except Exception as error:  # a bug or a database error: recorded on the job, not lost
        logger.exception("video job %s: submit crashed: %s", job.pk, error)
        return fail_or_retry(job, token, error, back_to=State.QUEUED)
    immediate = provider.name == OFFLINE_PROVIDER  # the offline renderer finishes inside create
    first_check = 0 if immediate else settings.HEYGEN_POLL_INTERVAL_SECONDS
    try:
        leases.transition(
            job.pk, token=token, provider_video_id=video_id, render_checks=0, last_error="",
            next_check_at=timezone.now() + timedelta(seconds=first_check),
        )  # fmt: skip
    except LeaseLost:
        logger.error("video job %s: render %s started after the job was taken over", job.pk,
                     video_id)  # fmt: skip
        return "lost"
    logger.info("video job %s: render %s started", job.pk, video_id)
    if immediate:
        enqueue("check", job.pk)
    return "submitted"


# --- check ----------------------------------------------------------------------------------


def claim_due_checks(token: str, *, limit: int = 100, job_id: int | None = None) -> list[VideoJob]:
    """Rendering jobs whose check is due (or `job_id`, due now), claimed in one batch."""
    now = timezone.now()
    with transaction.atomic():
        jobs = VideoJob.objects.select_for_update(skip_locked=True, of=("self",)).filter(
            leases.lease_is_free(now), state=State.RENDERING
        )
        jobs = jobs.exclude(provider_video_id="")
        jobs = jobs.filter(pk=job_id) if job_id is not None else jobs.filter(next_check_at__lte=now)
        claimed = list(jobs.select_related("content_item__topic").order_by("next_check_at")[:limit])
        VideoJob.objects.filter(pk__in=[job.pk for job in claimed]).update(
            claimed_by=token, lease_expires_at=leases.lease_until(now)
        )
    return claimed


def _next_check_in(job: VideoJob) -> float:
    first = settings.HEYGEN_POLL_INTERVAL_SECONDS
    return min(first * 1.5 ** (job.render_checks + 1), settings.HEYGEN_POLL_MAX_INTERVAL_SECONDS)


def check(job: VideoJob, token: str, provider, enqueue: Enqueue) -> str:
    """One status check: a finished render moves on to the copy (and frees a render slot)."""
    try:
        status = provider.get_status(job.provider_video_id)
    except GENERATION_ERRORS as error:
        if getattr(error, "retryable", False):
            return _check_later(job, token, f"Status check failed, will check again: {error}")
        fail(job, token, str(error))
        return "failed"
    if status.status == "failed":
        reason = status.error_message or "no reason given"
        fail(job, token, str(RenderFailed(f"The provider could not render the video: {reason}.")))
        return "failed"
    if status.status == "completed" and not status.video_url:
        fail(job, token, "The provider reported the render complete but gave no video URL.")
        return "failed"
    if status.status == "completed":
        # The copy is woken now; the sweep looks again only if nobody has taken it by then.
        leases.transition(
            job.pk, token=token, state=State.DOWNLOADING, rendered_at=timezone.now(),
            next_check_at=timezone.now() + timedelta(seconds=copy_redispatch_seconds()),
            last_error="",
        )  # fmt: skip
        enqueue("copy", job.pk)
        enqueue("submit", None)  # a render slot is free
        return "rendered"
    deadline = (job.started_at or job.queued_at) + timedelta(
        seconds=settings.HEYGEN_RENDER_DEADLINE_SECONDS
    )
    if timezone.now() > deadline:
        fail(job, token, f"The render was still {status.status} when the deadline passed.")
        enqueue("submit", None)
        return "failed"
    return _check_later(job, token, "")


def _check_later(job: VideoJob, token: str, note: str) -> str:
    # From the time the check was due, not from when a busy sweep got to it: checks do not
    # drift later by a tick each time.
    now = timezone.now()
    due = job.next_check_at if job.next_check_at and job.next_check_at <= now else now
    leases.transition(
        job.pk, token=token, render_checks=job.render_checks + 1, last_error=note[:2000],
        next_check_at=max(due + timedelta(seconds=_next_check_in(job)), now),
    )  # fmt: skip
    return "rendering"


# --- copy -----------------------------------------------------------------------------------


class _CopyProgress:
    """Records the copy's step and bytes, and renews the job's and the upload's leases."""

    def __init__(self, job: VideoJob, token: str):
        self.job, self.token = job, token
        self.storage_path = ""
        self.last = 0.0

    def __call__(self, stage: str, details: dict) -> None:
        self.storage_path = details.get("storage_path") or self.storage_path
        if stage == "downloading":
            leases.renew(self.job.pk, token=self.token, bytes_copied=0, state=State.DOWNLOADING)
        elif stage == "uploading":
            leases.renew(
                self.job.pk, token=self.token, state=State.UPLOADING,
                state_changed_at=timezone.now(), bytes_total=details.get("bytes_total"),
            )  # fmt: skip
        elif stage == "copying" and time.monotonic() - self.last >= PROGRESS_EVERY_SECONDS:
            self.last = time.monotonic()
            leases.renew(self.job.pk, token=self.token, bytes_copied=details["bytes_copied"])
            ledger.renew_upload_lease(
                self.storage_path, owner=self.token,
                lease_seconds=settings.VIDEO_JOB_LEASE_SECONDS,
            )  # fmt: skip


def _close(job: VideoJob, token: str, state: str, **changes) -> Callable[[], None]:
    """Inside the item's save transaction: end the job, only if it is still ours."""

    def close() -> None:
        leases.transition(job.pk, token=token, state=state, finished_at=timezone.now(),
                          next_attempt_at=None, **changes)  # fmt: skip

    return close


def copy(job: VideoJob, token: str, provider=None, video_storage=None) -> str:
    """Stream the rendered video into storage and save the item, or fall back / retry."""
    provider = provider or get_provider()
    try:
        status = provider.get_status(job.provider_video_id)  # a fresh, signed download URL
        if not status.is_completed:
            raise RenderFailed("The provider no longer has the rendered video; regenerate it.")
        return _store(job, token, status, provider, video_storage or VideoStorage())
    except LeaseLost:
        logger.warning("video job %s: copy stopped, another worker took the job over", job.pk)
        return "lost"
    except UploadLost as error:
        return fail_or_retry(job, token, error, back_to=State.DOWNLOADING)
    except GENERATION_ERRORS as error:
        return fail_or_retry(job, token, error, back_to=State.DOWNLOADING)
    except Exception as error:  # a bug or a database error: recorded on the job, not lost
        logger.exception("video job %s: copy crashed: %s", job.pk, error)
        return fail_or_retry(job, token, error, back_to=State.DOWNLOADING)


def _store(job: VideoJob, token: str, status: RenderStatus, provider, video_storage) -> str:
    item = job.content_item
    try:
        stored = store_rendered_video(
            status, provider=provider, video_storage=video_storage,
            on_progress=_CopyProgress(job, token), upload_owner=token,
            lease_seconds=settings.VIDEO_JOB_LEASE_SECONDS,
        )  # fmt: skip
    except StorageUnavailable as error:
        if not fallback_allowed(status):
            raise
        result = build_result(status, language=job.language, stored=None,
                              storage_error=str(error),
                              offline_preview=provider.name == OFFLINE_PROVIDER)  # fmt: skip
        logger.warning("video job %s: storage unavailable, provider URL kept until %s: %s",
                       job.pk, status.url_expires_at, error)  # fmt: skip
        content_item_mark_fallback(
            content_item=item,
            content_data=content_data_from_result(result, script=job.script),
            within_transaction=_close(job, token, State.FALLBACK, last_error=str(error)[:2000],
                                      provider_url_expires_at=status.url_expires_at),
        )  # fmt: skip
        return "fallback"
    result = build_result(status, language=job.language, stored=stored,
                          offline_preview=provider.name == OFFLINE_PROVIDER)  # fmt: skip
    content_item_mark_stored(
        content_item=item,
        content_data=content_data_from_result(result, script=job.script),
        within_transaction=_close(job, token, State.STORED, last_error="",
                                  bytes_copied=stored.file_size),
        upload_owner=token,
    )  # fmt: skip
    logger.info("video job %s: stored %s (%d bytes)", job.pk, stored.storage_path,
                stored.file_size)  # fmt: skip
    return "stored"
