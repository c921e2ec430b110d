"""The studio's and the admin's video actions, composed from the services of both apps: one
place for what "generate", "regenerate", "retry storage" and "delete a topic" mean."""

import uuid

from django.db import transaction

from avatars import jobs
from avatars.errors import AlreadyQueued, InvalidRequest
from avatars.models import VideoJob
from topics import services as topic_services
from topics.models import ContentItem, Topic


def _queue(topic: Topic, scripts: list[str], options: dict) -> list[VideoJob]:
    if len(scripts) == 1:
        return [jobs.request_avatar_video(topic=topic, script=scripts[0], **options)]
    return jobs.request_avatar_video_batch(topic=topic, scripts=scripts, **options)


def _first_jobs(item_ids: list[int]) -> list[VideoJob]:
    """The job each item was created with (items deleted since have none)."""
    first: dict[int, VideoJob] = {}
    for job in VideoJob.objects.filter(content_item_id__in=item_ids).order_by("pk"):
        first.setdefault(job.content_item_id, job)
    return [first[item_id] for item_id in item_ids if item_id in first]


def generate_videos(
    *, topic: Topic, scripts: list[str], language: str = "", avatar_id: str = "",
    voice_id: str = "", request_token: uuid.UUID | None = None,
) -> list[VideoJob]:  # fmt: skip
    """One new item and one job per script (several in one transaction).

    With `request_token` (one per rendered form) the token is recorded in the same
    transaction as the items: a second request with it queues nothing and raises
    AlreadyQueued with the first request's jobs."""
    options = {"language": language, "avatar_id": avatar_id, "voice_id": voice_id}
    if request_token is None:
        return _queue(topic, scripts, options)
    with transaction.atomic():
        generation_request, claimed = topic_services.generation_request_claim(
            token=request_token, topic=topic
        )
        if not claimed:
            raise AlreadyQueued(
                "These videos were already queued.",
                jobs=_first_jobs(generation_request.item_ids),
            )
        queued = _queue(topic, scripts, options)
        topic_services.generation_request_set_items(
            generation_request=generation_request, item_ids=[job.content_item_id for job in queued]
        )
    return queued


def regenerate_video(*, content_item: ContentItem) -> VideoJob:
    """Render the item's script again (a render credit); the current video stays until the
    new one is stored. Joins the item's running job instead of starting a second one."""
    if content_item.content_type != ContentItem.ContentType.AVATAR_VIDEO:
        raise InvalidRequest(f"{content_item} is not an avatar video.")
    script = (content_item.content_data or {}).get("script", "")
    return jobs.request_avatar_video(
        topic=content_item.topic, script=script, content_item=content_item
    )


def retry_storage(*, content_item: ContentItem) -> bool:
    """Queue the copy of a fallback item into storage; False when there is nothing to copy."""
    if content_item.status != ContentItem.Status.NEEDS_STORAGE:
        return False
    jobs.request_storage_retry(content_item=content_item)
    return True
