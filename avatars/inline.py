"""Driving one job to its end in this process (commands, tests): the same claims and steps
the workers run, with waits between them (a command may wait; a worker never does)."""

import time

from django.conf import settings

from avatars import leases, steps
from avatars.models import VideoJob
from avatars.providers import get_provider

State = VideoJob.State


def run_job_inline(job_id: int, *, poll_interval: float | None = None) -> VideoJob:
    """Run job `job_id` until it is stored, falls back or fails; returns it."""
    interval = settings.VIDEO_POLL_INTERVAL_SECONDS if poll_interval is None else poll_interval
    token = leases.new_token()
    provider = get_provider()
    while True:
        job = VideoJob.objects.get(pk=job_id)
        if job.state in VideoJob.TERMINAL_STATES:
            return job
        if job.state == State.QUEUED:
            claimed = steps.claim_next_submission(token, job_id=job_id, provider=provider)
            if claimed is not None:
                steps.submit(claimed, token, provider)
                continue
            _wait_until(job.next_attempt_at, interval)
        elif job.state == State.RENDERING:
            _advance_render(job, token, provider)
            job.refresh_from_db()
            if job.state == State.RENDERING:
                _wait_until(job.next_check_at, interval, cap=interval)
        else:
            claimed = leases.claim(job_id, token=token, states=(State.DOWNLOADING, State.UPLOADING))
            if claimed is not None:
                steps.copy(claimed, token, provider)
            else:
                _wait_until(job.next_attempt_at or job.lease_expires_at, interval)


def _advance_render(job: VideoJob, token: str, provider) -> None:
    if job.provider_video_id:
        for claimed in leases.claim_due_checks(token, job_id=job.pk):
            steps.check(claimed, token, provider)
        return
    for claimed in leases.claim_unknown_submissions(token, job_id=job.pk):
        steps.resolve(claimed, token, provider)


def _wait_until(when, interval: float, cap: float | None = None) -> None:
    seconds = interval if when is None else (when - leases.db_now()).total_seconds()
    seconds = max(0.05, seconds if cap is None else min(seconds, cap))
    time.sleep(seconds)
