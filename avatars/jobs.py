"""Avatar video generation as django-q2 tasks, with the job state kept in our own table.

django-q2 does not record a worker that died (SIGKILL, OOM), so every task here is
idempotent and `VideoJob` is the truth: a re-run resumes from the provider video id it
recorded, and `recover_stalled_jobs` re-enqueues jobs whose worker stopped beating.
"""

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from avatars.errors import GENERATION_ERRORS
from avatars.models import VideoJob
from avatars.pipeline import (
    RenderOptions,
    content_data_from_result,
    generate_avatar_video,
    url_expiry,
    validate_script,
)
from topics.models import ContentItem, Topic
from topics.services import (
    content_item_create_avatar_video,
    content_item_mark_failed,
    content_item_mark_fallback,
    content_item_mark_stored,
)

logger = logging.getLogger(__name__)

RUN_TASK = "avatars.jobs.run_video_job"
State = VideoJob.State
STAGE_STATES = {
    "rendering": State.RENDERING,
    "downloading": State.DOWNLOADING,
    "uploading": State.UPLOADING,
}


def _enqueue(job_id: int) -> None:
    if settings.Q_CLUSTER.get("sync"):
        # Sync mode runs the task inline: only after the job row is committed.
        transaction.on_commit(lambda: async_task(RUN_TASK, job_id))
    else:
        # ORM broker: the task row commits (or rolls back) with the job row.
        async_task(RUN_TASK, job_id, task_name=f"video-job-{job_id}")


def request_avatar_video(
    *,
    topic: Topic,
    script: str,
    language: str = "",
    avatar_id: str = "",
    voice_id: str = "",
    content_item: ContentItem | None = None,
    max_attempts: int | None = None,
    enqueue: bool = True,
) -> VideoJob:
    """Queue a generation; a request for an item that already has a running job joins it."""
    script = validate_script(script)
    with transaction.atomic():
        if content_item is None:
            content_item = content_item_create_avatar_video(topic=topic, script=script)
        else:
            content_item = ContentItem.objects.select_for_update().get(pk=content_item.pk)
            active = content_item.video_jobs.filter(state__in=VideoJob.ACTIVE_STATES).first()
            if active:
                return active
        try:
            with transaction.atomic():
                job = VideoJob.objects.create(
                    content_item=content_item,
                    script=script,
                    language=language or topic.language,
                    avatar_id=avatar_id,
                    voice_id=voice_id,
                    provider=settings.AVATAR_PROVIDER,
                    max_attempts=max_attempts or settings.VIDEO_JOB_MAX_ATTEMPTS,
                )
        except IntegrityError:  # a concurrent request won the race: join its job
            return content_item.video_jobs.get(state__in=VideoJob.ACTIVE_STATES)
        if enqueue:
            _enqueue(job.pk)
    logger.info("video job queued", extra={"job_id": job.pk, "item_id": content_item.pk})
    return job


def _claim(job_id: int) -> VideoJob | None:
    with transaction.atomic():
        job = (
            VideoJob.objects.select_for_update()
            .select_related("content_item__topic")
            .filter(pk=job_id)
            .first()
        )
        if job is None or job.state in VideoJob.TERMINAL_STATES:
            return None
        now = timezone.now()
        stall = timedelta(seconds=settings.VIDEO_JOB_STALL_SECONDS)
        if job.state != State.QUEUED and job.heartbeat_at and now - job.heartbeat_at < stall:
            return None  # another worker is on it (a duplicate delivery)
        if job.attempts >= job.max_attempts:
            job.state = State.FAILED
            job.finished_at = now
            job.last_error = job.last_error or "The worker stopped too many times; giving up."
            job.save()
            content_item_mark_failed(content_item_id=job.content_item_id)
            return None
        job.attempts += 1
        job.state = State.RENDERING
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.next_attempt_at = None
        job.save()
        return job


def _progress_recorder(job: VideoJob):
    def record(stage: str, details: dict) -> None:
        changes = {"heartbeat_at": timezone.now()}
        if stage in STAGE_STATES:
            changes["state"] = STAGE_STATES[stage]
        if details.get("provider_video_id"):
            job.provider_video_id = details["provider_video_id"]
            changes["provider_video_id"] = details["provider_video_id"]
        if stage == "rendered":
            changes["rendered_at"] = timezone.now()
        VideoJob.objects.filter(pk=job.pk, state__in=VideoJob.ACTIVE_STATES).update(**changes)

    return record


def _finish(job: VideoJob, result: dict) -> None:
    item = job.content_item
    fallback = result["fallback"]

    def close_job() -> None:
        VideoJob.objects.filter(pk=job.pk).update(
            state=State.FALLBACK if fallback else State.STORED,
            finished_at=timezone.now(),
            provider_url_expires_at=url_expiry(result),
            last_error=result.get("storage_error", "")[:2000],
        )

    mark = content_item_mark_fallback if fallback else content_item_mark_stored
    mark(
        content_item=item,
        content_data=content_data_from_result(result, script=job.script),
        within_transaction=close_job,
    )


def _retry_delay(attempt: int) -> int:
    return min(settings.VIDEO_JOB_RETRY_BASE_SECONDS * 2 ** (attempt - 1), 900)


def _fail_or_retry(job: VideoJob, error: Exception) -> None:
    message = str(error) or error.__class__.__name__
    if getattr(error, "retryable", False) and job.attempts < job.max_attempts:
        next_run = timezone.now() + timedelta(seconds=_retry_delay(job.attempts))
        with transaction.atomic():
            VideoJob.objects.filter(pk=job.pk).update(
                state=State.QUEUED, last_error=message[:2000], next_attempt_at=next_run
            )
            Schedule.objects.create(
                name=f"retry video job {job.pk} attempt {job.attempts + 1}",
                func=RUN_TASK,
                args=f"{job.pk},",
                schedule_type=Schedule.ONCE,
                next_run=next_run,
            )
        logger.warning("video job will retry", extra={"job_id": job.pk, "error": message})
        return
    with transaction.atomic():
        VideoJob.objects.filter(pk=job.pk).update(
            state=State.FAILED, last_error=message[:2000], finished_at=timezone.now()
        )
        content_item_mark_failed(content_item_id=job.content_item_id)
    logger.warning("video job failed", extra={"job_id": job.pk, "error": message})


def run_video_job(job_id: int) -> str:
    """The django-q2 task: run (or resume) one generation job to a terminal state."""
    job = _claim(job_id)
    if job is None:
        return "skipped"
    options = RenderOptions(
        script=job.script,
        language=job.language,
        avatar_id=job.avatar_id,
        voice_id=job.voice_id,
        title=job.content_item.topic.title,
        callback_id=str(job.callback_id),
    )
    try:
        result = generate_avatar_video(
            options,
            provider_video_id=job.provider_video_id,
            on_progress=_progress_recorder(job),
        )
        _finish(job, result)
    except GENERATION_ERRORS as error:
        _fail_or_retry(job, error)
    except Exception as error:  # a bug or a database error: recorded on the job, not lost
        logger.exception("video job crashed", extra={"job_id": job.pk})
        _fail_or_retry(job, error)
    return VideoJob.objects.values_list("state", flat=True).get(pk=job.pk)


def recover_stalled_jobs() -> int:
    """Re-enqueue active jobs whose worker stopped beating (killed, OOM, redeployed)."""
    cutoff = timezone.now() - timedelta(seconds=settings.VIDEO_JOB_STALL_SECONDS)
    stalled = VideoJob.objects.filter(
        state__in=[State.RENDERING, State.DOWNLOADING, State.UPLOADING], heartbeat_at__lt=cutoff
    ).values_list("pk", flat=True)
    queued_lost = VideoJob.objects.filter(
        state=State.QUEUED, next_attempt_at__isnull=True, queued_at__lt=cutoff
    ).values_list("pk", flat=True)
    job_ids = sorted(set(stalled) | set(queued_lost))
    for job_id in job_ids:
        async_task(RUN_TASK, job_id, task_name=f"video-job-{job_id}-recovered")
    if job_ids:
        logger.warning("re-enqueued stalled video jobs", extra={"job_ids": job_ids})
    return len(job_ids)


def handle_render_event(*, callback_id: str, provider_video_id: str) -> str:
    """A provider says a render ended. Only wakes a job nobody is working on; the job then
    asks the provider itself (the event's own URL is never trusted). Idempotent."""
    try:
        uuid.UUID(callback_id)
    except ValueError:
        return "unknown"
    job = VideoJob.objects.filter(
        callback_id=callback_id, provider_video_id=provider_video_id
    ).first()
    if job is None:
        return "unknown"
    if not job.is_active:
        return "already-finished"
    stale = timezone.now() - timedelta(seconds=settings.VIDEO_JOB_STALL_SECONDS)
    if job.state == State.QUEUED and job.next_attempt_at is not None:
        return "retry-scheduled"
    if job.heartbeat_at is None or job.heartbeat_at < stale:
        async_task(RUN_TASK, job.pk, task_name=f"video-job-{job.pk}-webhook")
        return "resumed"
    return "in-progress"


def request_storage_retry(*, content_item: ContentItem) -> None:
    """Queue the copy of a fallback item's provider video into storage."""
    if content_item.status != ContentItem.Status.NEEDS_STORAGE:
        raise ValueError("Only items waiting for storage (fallback) can be retried.")
    async_task("avatars.promotion.promote_item_by_id", content_item.pk)
