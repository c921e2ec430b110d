"""The one status a person sees for an avatar video, derived from the item and its latest job.

A pure function: no queries, no clock (the caller passes `now`), no settings. The studio card,
the live progress JSON and the admin all show what `video_status` says, so two badges can
never contradict each other.
"""

from dataclasses import dataclass
from datetime import datetime

from avatars.leases import CANCELLED_BY
from avatars.models import VideoJob
from topics.models import ContentItem

State = VideoJob.State
Status = ContentItem.Status

#: Every `VideoStatus.kind`; also the CSS class of the badge.
KINDS = (
    "stored", "regenerating", "queued", "retrying", "rendering", "copying", "waiting_storage",
    "needs_regeneration", "legacy", "failed", "cancelled", "interrupted", "draft", "other",
)  # fmt: skip

BACKFILL_HINT = "Copy it into storage: .venv/bin/python manage.py backfill_avatar_videos"


@dataclass(frozen=True)
class VideoStatus:
    """What to say about a video: a badge (`label`), the running step, the next step."""

    kind: str
    label: str
    next_step: str = ""
    step: str = ""  # the job's current step while it runs ("Rendering (2 min)")
    active: bool = False  # a job is working on it: the page keeps polling
    percent: int | None = None  # of the copy to storage, when its size is known


def format_elapsed(seconds: float) -> str:
    """12 s, 2 min, 1 h 5 min."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def format_ago(moment: datetime, now: datetime) -> str:
    """just now, 2 min ago, 3 h ago, 5 days ago (the full date goes in a tooltip)."""
    seconds = (now - moment).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    return f"{days} day{'s' if days > 1 else ''} ago"


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def step_started_at(job: VideoJob) -> datetime | None:
    """When the job entered its current state (the engine records it; older rows estimate)."""
    if job.state_changed_at:
        return job.state_changed_at
    if job.state == State.QUEUED:
        return job.queued_at
    return job.started_at or job.queued_at


def copy_percent(job: VideoJob) -> int | None:
    if not job.bytes_total:
        return None
    return max(0, min(100, int(100 * (job.bytes_copied or 0) / job.bytes_total)))


def _active_step(job: VideoJob, now: datetime, queue_position: int | None) -> VideoStatus:
    started = step_started_at(job)
    elapsed = format_elapsed((now - started).total_seconds()) if started else ""
    if job.state == State.QUEUED:
        if job.next_attempt_at and job.next_attempt_at > now:
            reason = f": {job.last_error}" if job.last_error else ""
            return VideoStatus(
                "retrying",
                f"Retrying at {format_time(job.next_attempt_at)} "
                f"(attempt {job.attempts + 1} of {job.max_attempts}){reason}",
                active=True,
            )
        where = f" (position {queue_position})" if queue_position else ""
        return VideoStatus("queued", f"Waiting for a render slot{where}", active=True)
    if job.state == State.RENDERING:
        return VideoStatus("rendering", f"Rendering ({elapsed})" if elapsed else "Rendering",
                           active=True)  # fmt: skip
    percent = copy_percent(job)
    done = f"{percent}%" if percent is not None else elapsed
    label = f"Copying to storage ({done})" if done else "Copying to storage"
    return VideoStatus("copying", label, active=True, percent=percent)


def _has_current_video(item: ContentItem) -> bool:
    data = item.content_data or {}
    return bool(item.storage_path or data.get("videoUrl") or data.get("fileUrl"))


def _cancelled(job: VideoJob | None) -> bool:
    return job is not None and job.state == State.FAILED and job.last_error.startswith(CANCELLED_BY)


def _last_failure(job: VideoJob | None) -> str:
    if _cancelled(job):
        return (
            f"The regeneration was {job.last_error[0].lower()}{job.last_error[1:]}; no "
            "credit was used."
        )
    if job is not None and job.state == State.FAILED:
        return f"The last regeneration failed: {job.last_error or 'no reason recorded'}."
    return ""


def _waiting_for_storage(job: VideoJob | None, now: datetime, *, new_render: bool = False
                         ) -> VideoStatus:  # fmt: skip
    expires = job.provider_url_expires_at if job is not None else None
    if new_render:  # a regenerate's render waits; the stored video plays until it is copied
        until = f"until {format_time(expires)}" if expires else "kept"
        return VideoStatus("waiting_storage", f"Waiting for storage: new render, provider link "
                           f"{until}", next_step="The current video plays until the new one is "
                           "copied in; an editor can Retry storage.")  # fmt: skip
    if expires is not None and expires <= now:
        return VideoStatus(
            "needs_regeneration",
            f"Needs regeneration: the provider link expired at {format_time(expires)}",
            next_step="Regenerate it.",
        )
    until = (
        f"provider link until {format_time(expires)}" if expires else "playing the provider link"
    )
    next_step = _last_failure(job) or "It is copied automatically; an editor can Retry storage."
    return VideoStatus("waiting_storage", f"Waiting for storage: {until}", next_step=next_step)


def _at_rest(
    item: ContentItem, job: VideoJob | None, now: datetime, legacy_link_allowed: bool
) -> VideoStatus:
    """No job is running: the item's own state says it all."""
    data = item.content_data or {}
    if item.storage_path and item.status == Status.NEEDS_STORAGE:
        return _waiting_for_storage(job, now, new_render=True)
    if item.storage_path:
        return VideoStatus("stored", "Stored", next_step=_last_failure(job))
    if item.status == Status.NEEDS_STORAGE:
        return _waiting_for_storage(job, now)
    if item.status == Status.NEEDS_REGENERATION or (item.status == Status.READY and not
                                                    data.get("videoUrl")):  # fmt: skip
        problem = (data.get("metadata") or {}).get("storage_problem") or ""
        reason = "the provider link expired" if "expired" in problem else "the file is missing"
        return VideoStatus("needs_regeneration", f"Needs regeneration: {reason}",
                           next_step="Regenerate it.")  # fmt: skip
    if item.status == Status.READY:
        next_step = BACKFILL_HINT if legacy_link_allowed else (
            "Its host is not in AVATAR_DOWNLOAD_ALLOWED_HOSTS, so it is not played here: "
            "regenerate it, or allow the host and run backfill_avatar_videos.")  # fmt: skip
        return VideoStatus("legacy", "Not stored yet (legacy link)", next_step=next_step)
    if _cancelled(job) and not _has_current_video(item):
        return VideoStatus(
            "cancelled",
            f"{job.last_error} before it rendered",
            next_step="No credit was used. Regenerate it when you are ready.",
        )
    if item.status == Status.FAILED or (job is not None and job.state == State.FAILED):
        reason = job.last_error if job is not None and job.last_error else "no reason recorded"
        return VideoStatus("failed", f"Failed: {reason}",
                           next_step="Check the script, then regenerate.")  # fmt: skip
    if item.status == Status.GENERATING and job is not None and job.state == State.STORED:
        # A job ends stored in its item's save (one transaction): an item still generating
        # beside it was read just before that save committed (the page's two reads). Still
        # finishing, so the page keeps polling; never "interrupted".
        return VideoStatus("copying", "Copying to storage (saving)", active=True)
    if item.status == Status.GENERATING:
        return VideoStatus("interrupted", "Interrupted: no job is working on this video",
                           next_step="Regenerate it.")  # fmt: skip
    return VideoStatus("draft", "Draft: not generated yet", next_step="Regenerate it.")


def video_status(
    item: ContentItem,
    job: VideoJob | None,
    *,
    now: datetime,
    queue_position: int | None = None,
    legacy_link_allowed: bool = True,
) -> VideoStatus:
    """The status of `item` given its latest `job` (None: never generated by a job)."""
    if item.content_type != ContentItem.ContentType.AVATAR_VIDEO:
        return VideoStatus("other", item.get_status_display())
    if job is not None and job.state in VideoJob.ACTIVE_STATES:
        step = _active_step(job, now, queue_position)
        if _has_current_video(item) and item.status != Status.NEEDS_REGENERATION:
            return VideoStatus(
                "regenerating",
                "Regenerating: the current video stays until the new one is stored",
                step=step.label,
                active=True,
                percent=step.percent,
            )
        return VideoStatus(step.kind, step.label, step=step.label, active=True,
                           percent=step.percent)  # fmt: skip
    return _at_rest(item, job, now, legacy_link_allowed)
