"""What the studio shows of each avatar video (its card) and of each running job (the live
progress JSON): reads only, a fixed number of queries per page."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from avatars.models import VideoJob
from avatars.pipeline import OFFLINE_PROVIDER
from avatars.providers.download import host_is_allowed
from studio.status import (
    VideoStatus,
    copy_percent,
    step_started_at,
    video_status,
)
from topics.models import ContentItem
from topics.selectors import VideoView, lesson_number, video_view
from videostore.storage import VideoStorage

State = VideoJob.State

#: The steps of a generation as the page lists them, with the job states each one covers.
STEPS = (
    ("queued", "Waiting for a render slot", (State.QUEUED,)),
    ("rendering", "Rendering", (State.RENDERING,)),
    ("copying", "Copying to storage", (State.DOWNLOADING, State.UPLOADING)),
    ("done", "Done", VideoJob.TERMINAL_STATES),
)


@dataclass(frozen=True)
class VideoCard:
    """One item on the topic page, a lesson: its number in the topic (1 = first), its player
    (None when nothing may be played), its one status, and where it came from."""

    item: ContentItem
    number: int
    job: VideoJob | None
    video: VideoView | None
    status: VideoStatus
    offline_preview: bool
    file_name: str
    link_blocked: bool  # a legacy/provider link whose host is not allowed: not embedded
    steps: list[dict]  # the generation's steps while a job runs (done, current, todo)
    uploaded_at: datetime | None = None  # when the stored video was uploaded


def _latest(item: ContentItem) -> VideoJob | None:
    jobs = getattr(item, "jobs", None)
    if jobs is None:
        jobs = list(item.video_jobs.order_by("-queued_at", "-id"))
    return jobs[0] if jobs else None


def _offline(item: ContentItem) -> bool:
    """Rendered by the offline renderer (a preview, not HeyGen)."""
    metadata = (item.content_data or {}).get("metadata") or {}
    if metadata.get("offline_preview"):
        return True
    jobs = getattr(item, "jobs", None) or []
    producer = next((job for job in jobs if job.state in (State.STORED, State.FALLBACK)), None)
    return producer is not None and producer.provider == OFFLINE_PROVIDER


def queue_positions(jobs: Iterable[VideoJob]) -> dict[int, int]:
    """Position (1 = next) of each queued job among all jobs waiting for a render slot,
    oldest first; one query."""
    queued = [job for job in jobs if job is not None and job.state == State.QUEUED]
    if not queued:
        return {}
    last = max(queued, key=lambda job: (job.queued_at, job.pk))
    now = timezone.now()
    ahead = (
        VideoJob.objects.filter(state=State.QUEUED)
        .filter(Q(queued_at__lt=last.queued_at) | Q(queued_at=last.queued_at, pk__lte=last.pk))
        .exclude(next_attempt_at__gt=now)  # waiting to retry: not in the line yet
        .order_by("queued_at", "pk")
        .values_list("pk", flat=True)
    )
    order = {job_id: position for position, job_id in enumerate(ahead, start=1)}
    return {job.pk: order[job.pk] for job in queued if job.pk in order}


def legacy_link_blocked(item: ContentItem) -> bool:
    """The item plays from a provider link (nothing stored) on a host outside the download
    allow-list: no page may embed it."""
    url = (item.content_data or {}).get("videoUrl") or ""
    return not item.storage_path and bool(url) and not host_is_allowed(url)


def video_statuses(items: Iterable[ContentItem]) -> dict[int, VideoStatus]:
    """The one status of each item (by pk), its jobs prefetched newest first in `item.jobs`
    (the latest alone is enough); one query, for the queue positions."""
    items = list(items)
    latest = {item.pk: _latest(item) for item in items}
    positions = queue_positions(latest.values())
    now = timezone.now()
    statuses = {}
    for item in items:
        job = latest[item.pk]
        statuses[item.pk] = video_status(
            item,
            job,
            now=now,
            queue_position=positions.get(job.pk) if job else None,
            legacy_link_allowed=not legacy_link_blocked(item),
        )
    return statuses


def video_cards(items: Iterable[ContentItem], *, first_number: int) -> list[VideoCard]:
    """Cards for consecutive lessons, the first one numbered `first_number`, whose jobs are
    prefetched newest first in `item.jobs`."""
    items = list(items)
    storage = VideoStorage()
    statuses = video_statuses(items)
    cards = []
    for number, item in enumerate(items, start=first_number):
        job = _latest(item)
        status = statuses[item.pk]
        blocked = legacy_link_blocked(item)
        cards.append(
            VideoCard(
                item=item,
                number=number,
                job=job,
                video=None if blocked else video_view(item, storage),
                status=status,
                offline_preview=_offline(item),
                file_name=(item.content_data or {}).get("fileName") or item.storage_path,
                link_blocked=blocked,
                steps=_steps(job) if status.active else [],
                uploaded_at=_uploaded_at(item),
            )
        )
    return cards


def _uploaded_at(item: ContentItem) -> datetime | None:
    if not item.storage_path:
        return None
    value = (item.content_data or {}).get("uploadedAt") or ""
    try:
        return parse_datetime(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def batch_summary(topic_id: int, first_item_id: int, last_item_id: int) -> dict:
    """The batch of lessons `first_item_id`..`last_item_id` of a topic (made in one request:
    consecutive ids in the topic) in one line: "7 of 12 stored, 1 failed"; `done` once no
    job of it runs. A fixed number of queries."""
    # Two reads (items, then their jobs): an item read just before the save that ended its
    # job reads as still saving (studio/status.py), so the batch never reads as done early.
    jobs = VideoJob.objects.order_by("-queued_at", "-id")
    items = list(
        ContentItem.objects.filter(
            topic_id=topic_id, pk__gte=first_item_id, pk__lte=last_item_id
        ).prefetch_related(Prefetch("video_jobs", queryset=jobs, to_attr="jobs"))
    )
    kinds = [status.kind for status in video_statuses(items).values()]
    running = sum(kind in ACTIVE_KINDS for kind in kinds)
    failed = sum(kind in ("failed", "interrupted") for kind in kinds)
    cancelled = kinds.count("cancelled")
    parts = [f"{kinds.count('stored')} of {len(items)} stored"]
    parts += [f"{failed} failed"] if failed else []
    parts += [f"{cancelled} cancelled"] if cancelled else []
    parts += [f"{running} in progress"] if running else []
    return {"text": ", ".join(parts), "done": not running, "total": len(items)}


#: Status kinds of a video whose job still runs.
ACTIVE_KINDS = ("queued", "retrying", "rendering", "copying", "regenerating")


def video_card(item: ContentItem) -> VideoCard:
    """The card of one item (for the in-place refresh of a finished job)."""
    jobs = VideoJob.objects.order_by("-queued_at", "-id")
    item = (
        ContentItem.objects.select_related("topic")
        .prefetch_related(Prefetch("video_jobs", queryset=jobs, to_attr="jobs"))
        .get(pk=item.pk)
    )
    return video_cards([item], first_number=lesson_number(item))[0]


def _steps(job: VideoJob) -> list[dict]:
    current = next(i for i, (_, _, states) in enumerate(STEPS) if job.state in states)
    return [
        {
            "name": name,
            "label": label,
            "state": "done" if i < current else "current" if i == current else "todo",
        }
        for i, (name, label, _) in enumerate(STEPS)
    ]


def job_progress(jobs: list[VideoJob]) -> list[dict]:
    """The live progress of each job, as the page's script reads it."""
    jobs = [job for job in jobs if job is not None]
    positions = queue_positions(jobs)
    now = timezone.now()
    payload = []
    for job in jobs:
        item = job.content_item
        status = video_status(item, job, now=now, queue_position=positions.get(job.pk),
                              legacy_link_allowed=not legacy_link_blocked(item))  # fmt: skip
        started = step_started_at(job)
        payload.append(
            {
                "id": job.pk,
                "item_id": job.content_item_id,
                "state": job.state,
                "state_label": job.get_state_display(),
                "is_terminal": job.state in VideoJob.TERMINAL_STATES,
                "attempts": job.attempts,
                "last_error": job.last_error,
                "status": {
                    "kind": status.kind,
                    "label": status.label,
                    "step": status.step,
                    "next_step": status.next_step,
                },
                "steps": _steps(job),
                "elapsed_seconds": int((now - started).total_seconds()) if started else None,
                "queue_position": positions.get(job.pk),
                "bytes_copied": job.bytes_copied,
                "bytes_total": job.bytes_total,
                "percent": copy_percent(job),
            }
        )
    return payload
