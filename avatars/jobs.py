"""Avatar video jobs: requests, the django-q2 tasks that run their steps, and the dispatcher.

`VideoJob` is the truth; the broker only carries wake-up calls. Each task runs one short step
(avatars/steps.py) on jobs it claims by lease, so duplicate deliveries, a worker killed at any
line and any number of workers on any number of hosts are all safe. Nothing here sleeps while
the provider renders: renders are checked by `dispatch_due_work` (the scheduled task, and
`manage.py run_video_engine` every few seconds) or at once by the provider's webhook.
"""

import logging
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from avatars import leases, steps
from avatars.errors import InvalidRequest
from avatars.models import VideoJob
from avatars.pipeline import validate_script
from avatars.providers import get_provider
from topics.models import ContentItem, Topic
from topics.services import content_item_create_avatar_video
from topics.validators import validate_language_tag, validate_title
from videostore import ledger

logger = logging.getLogger(__name__)

State = VideoJob.State
TASKS = {
    "submit": "avatars.jobs.submit_queued_jobs",
    "check": "avatars.jobs.check_render_job",
    "copy": "avatars.jobs.copy_video_job",
}


def enqueue(step: str, job_id: int | None = None) -> None:
    """Wake a worker for `step` once the current transaction commits (the broker may be Redis,
    outside the database: a wake-up for a row that rolled back must never go out)."""
    args = () if job_id is None else (job_id,)

    def send() -> None:
        async_task(TASKS[step], *args, task_name=f"video-{step}-{job_id or 'next'}")

    transaction.on_commit(send)


def _clean_language(language: str, topic: Topic) -> str:
    if not language:
        return topic.language
    from django.core.exceptions import ValidationError

    try:
        return validate_language_tag(language)
    except ValidationError as error:
        raise InvalidRequest(error.messages[0]) from error


def _clean_title(title: str) -> str:
    """A given title by the one title rule; blank: the item takes the default from its script."""
    if not (title or "").strip():
        return ""
    from django.core.exceptions import ValidationError

    try:
        return validate_title(title)
    except ValidationError as error:
        raise InvalidRequest(error.messages[0]) from error


def _create_job(content_item: ContentItem, script: str, language: str, avatar_id: str,
                voice_id: str, max_attempts: int | None) -> VideoJob:  # fmt: skip
    return VideoJob.objects.create(
        content_item=content_item,
        script=script,
        language=language,
        avatar_id=avatar_id,
        voice_id=voice_id,
        provider=settings.AVATAR_PROVIDER,
        max_attempts=max_attempts or settings.VIDEO_JOB_MAX_ATTEMPTS,
        state_changed_at=timezone.now(),
    )


def request_avatar_video(
    *,
    topic: Topic,
    script: str,
    language: str = "",
    avatar_id: str = "",
    voice_id: str = "",
    content_item: ContentItem | None = None,
    max_attempts: int | None = None,
    enqueue_submit: bool = True,
    title: str = "",
) -> VideoJob:
    """Queue a generation; a request for an item that already has a running job joins it.
    A new item is the topic's last lesson, titled `title` (blank: from the script)."""
    script = validate_script(script)
    language = _clean_language(language, topic)
    title = _clean_title(title)
    with transaction.atomic():
        if content_item is None:
            content_item = content_item_create_avatar_video(topic=topic, script=script,
                                                            title=title)  # fmt: skip
        else:
            content_item = ContentItem.objects.select_for_update().get(pk=content_item.pk)
            active = content_item.video_jobs.filter(state__in=VideoJob.ACTIVE_STATES).first()
            if active:
                return active
        try:
            with transaction.atomic():
                job = _create_job(content_item, script, language, avatar_id, voice_id,
                                  max_attempts)  # fmt: skip
        except IntegrityError:  # a concurrent request won the race: join its job
            return content_item.video_jobs.get(state__in=VideoJob.ACTIVE_STATES)
        if enqueue_submit:
            enqueue("submit")
    logger.info("video job %s queued for item %s", job.pk, content_item.pk)
    return job


def request_avatar_video_batch(
    *, topic: Topic, scripts: list[str], language: str = "", avatar_id: str = "",
    voice_id: str = "", titles: list[str] | None = None,
) -> list[VideoJob]:  # fmt: skip
    """One item and one job per script, all queued in one transaction (all or none); the
    items are the topic's next lessons in the scripts' order, titled by `titles` (a blank
    or missing title: from the script)."""
    cleaned = [validate_script(script) for script in scripts]
    if not cleaned:
        raise InvalidRequest("There is no script to generate; write at least one.")
    language = _clean_language(language, topic)
    titles = [_clean_title(title) for title in (titles or [])]
    titles += [""] * (len(cleaned) - len(titles))
    with transaction.atomic():
        jobs = [
            _create_job(
                content_item_create_avatar_video(topic=topic, script=script, title=title),
                script,
                language,
                avatar_id,
                voice_id,
                None,
            )  # fmt: skip
            for script, title in zip(cleaned, titles, strict=True)
        ]
        enqueue("submit")
    logger.info("%d video jobs queued for topic %s: %s", len(jobs), topic.pk,
                [job.pk for job in jobs])  # fmt: skip
    return jobs


def request_storage_retry(*, content_item: ContentItem) -> None:
    """Queue the copy of a fallback item's provider video into storage."""
    if content_item.status != ContentItem.Status.NEEDS_STORAGE:
        raise ValueError("Only items waiting for storage (fallback) can be retried.")
    async_task("avatars.promotion.promote_item_by_id", content_item.pk)


# --- tasks ----------------------------------------------------------------------------------


def submit_queued_jobs(limit: int = 100) -> int:
    """Task: submit queued jobs, oldest first, while render slots are free."""
    token = leases.new_token()
    submitted = 0
    while submitted < limit:
        job = steps.claim_next_submission(token)
        if job is None:
            break
        steps.submit(job, token, enqueue)
        submitted += 1
    return submitted


def _check(jobs: list[VideoJob], token: str) -> dict:
    counts: dict[str, int] = {}
    provider = get_provider() if jobs else None
    for job in jobs:
        try:
            outcome = steps.check(job, token, provider, enqueue)
        except leases.LeaseLost:
            outcome = "lost"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def check_render_job(job_id: int) -> dict:
    """Task: check one render now (the webhook's wake-up; the poller may race it safely)."""
    token = leases.new_token()
    return _check(steps.claim_due_checks(token, job_id=job_id), token)


def check_due_renders(limit: int = 200) -> dict:
    """Check every render that is due, in one batch (one status call each)."""
    token = leases.new_token()
    return _check(steps.claim_due_checks(token, limit=limit), token)


def copy_video_job(job_id: int) -> str:
    """Task: copy a rendered video into storage and save the item (long; renews its lease)."""
    token = leases.new_token()
    job = leases.claim(job_id, token=token, states=(State.DOWNLOADING, State.UPLOADING))
    if job is None:
        return "skipped"
    return steps.copy(job, token)


def _wake_copies(now) -> int:
    """Wake copies nobody holds that are due: a dead holder's (its lease ended), a retry's,
    or one whose wake-up call went missing. Each is then left alone for a while, so a backlog
    of copies waiting for a free worker is not flooded with duplicate calls."""
    with transaction.atomic():
        due = list(
            VideoJob.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(leases.lease_is_free(now), state__in=(State.DOWNLOADING, State.UPLOADING))
            .exclude(next_attempt_at__gt=now)
            .filter(Q(next_check_at__isnull=True) | Q(next_check_at__lte=now))
            .values_list("pk", flat=True)[:500]
        )
        VideoJob.objects.filter(pk__in=due).update(
            next_check_at=now + timedelta(seconds=steps.copy_redispatch_seconds())
        )
        for job_id in due:
            enqueue("copy", job_id)
    return len(due)


def dispatch_due_work() -> dict:
    """The engine's sweep: free dead submissions, submit queued jobs into free slots, check
    due renders, wake copies that nobody holds. Safe to run anywhere, any number at once."""
    now = timezone.now()
    report = {"requeued": leases.release_dead_submissions()}
    report["submitted"] = submit_queued_jobs()
    report["checked"] = check_due_renders()
    report["copies_woken"] = _wake_copies(now)
    report["uploads_given_up"] = ledger.expire_dead_uploads()
    return report


def run_engine(*, tick_seconds: float, stop_after: float | None = None) -> None:
    """`manage.py run_video_engine`: dispatch due work every tick (a small process of its
    own, not a worker; django-q2's scheduler only looks every 30 s or so)."""
    started = time.monotonic()
    while stop_after is None or time.monotonic() - started < stop_after:
        begun = time.monotonic()
        try:
            dispatch_due_work()
        except Exception as error:  # a database blip: log it and keep ticking
            logger.exception("video engine tick failed: %s", error)
        time.sleep(max(0.0, tick_seconds - (time.monotonic() - begun)))


def handle_render_event(*, callback_id: str, provider_video_id: str) -> str:
    """A provider says a render ended: check that job now (the event's own URL is never
    trusted; the check asks the provider). Idempotent; racing the poller is safe."""
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
    if job.state != State.RENDERING:
        return "in-progress"
    with transaction.atomic():
        VideoJob.objects.filter(pk=job.pk, state=State.RENDERING).update(
            next_check_at=timezone.now()
        )
        enqueue("check", job.pk)
    return "checking"


def run_job_inline(job_id: int, *, poll_interval: float | None = None) -> VideoJob:
    """Drive one job to a terminal state in this process (commands, tests): the same steps
    the workers run, with waits between render checks (a command may wait; a worker never)."""
    interval = settings.HEYGEN_POLL_INTERVAL_SECONDS if poll_interval is None else poll_interval
    token = leases.new_token()

    def no_enqueue(step: str, job_id: int | None = None) -> None:
        return None

    while True:
        job = VideoJob.objects.get(pk=job_id)
        if job.state in VideoJob.TERMINAL_STATES:
            return job
        if job.state == State.QUEUED:
            claimed = steps.claim_next_submission(token, job_id=job_id)
            if claimed is not None:
                steps.submit(claimed, token, no_enqueue)
                continue
            _wait_until(job.next_attempt_at, interval)
        elif job.state == State.RENDERING:
            claimed = steps.claim_due_checks(token, job_id=job_id)
            if claimed:
                _check(claimed, token)
            job.refresh_from_db()
            if job.state == State.RENDERING:
                _wait_until(job.next_check_at, interval, cap=interval)
        else:
            claimed = leases.claim(job_id, token=token, states=(State.DOWNLOADING, State.UPLOADING))
            if claimed is not None:
                steps.copy(claimed, token)
            else:
                _wait_until(job.next_attempt_at or job.lease_expires_at, interval)


def _wait_until(when, interval: float, cap: float | None = None) -> None:
    seconds = interval if when is None else (when - timezone.now()).total_seconds()
    seconds = max(0.05, seconds if cap is None else min(seconds, cap))
    time.sleep(seconds)
