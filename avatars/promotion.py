"""Copying videos that only live at a provider URL into our storage.

Two sources: fallback rows (storage was down when the video was generated) and legacy rows
(saved before videos were stored). A provider URL expires (HeyGen: 7 days), so fallback
rows are promoted by a scheduled task in time, and marked for regeneration once expired.
"""

import logging
import uuid
from collections.abc import Iterator

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from avatars.errors import GENERATION_ERRORS
from avatars.models import VideoJob
from avatars.pipeline import store_rendered_video
from avatars.providers import get_provider
from avatars.providers.base import RenderStatus, VideoProvider
from topics.errors import StaleItem
from topics.models import ContentItem
from topics.objects import without_poster_and_captions
from topics.services import (
    content_item_expire_provider_link,
    content_item_mark_stored,
    content_item_waiting_render,
)
from videostore.storage import VideoStorage

logger = logging.getLogger(__name__)


def copy_provider_video_to_storage(
    *,
    content_item: ContentItem,
    video_url: str,
    provider: VideoProvider | None = None,
    video_storage: VideoStorage | None = None,
    expected_video_id: str | None = None,
) -> ContentItem:
    """Stream `video_url` into storage and point the item at the stored copy; with
    `expected_video_id`, only if the item still waits for that render when it commits
    (StaleItem otherwise: a regenerate won, and this copy is discarded)."""
    data = dict(content_item.content_data)
    metadata = dict(data.get("metadata") or {})
    video_id = metadata.pop("pending_video_id", None) or data.get("videoId")
    status = RenderStatus(
        provider_video_id=str(video_id or f"item{content_item.pk}"),
        status="completed",
        video_url=video_url,
    )
    owner = f"promote-item-{content_item.pk}-{uuid.uuid4().hex[:8]}"
    # The poster is a frame and the captions come from the script: the provider's thumbnail
    # and captions links are not kept on a fallback row.
    unit = store_rendered_video(
        status,
        provider=provider or get_provider(),
        video_storage=video_storage or VideoStorage(),
        script=data.get("script") or "",
        language=content_item.topic.language,
        upload_owner=owner,
        lease_seconds=settings.VIDEO_JOB_LEASE_SECONDS,
    )
    stored = unit.video
    stored_metadata = stored.as_metadata()
    data = without_poster_and_captions(data)
    data.update(stored_metadata)
    data.update(unit.companions)
    data["videoUrl"] = stored_metadata["fileUrl"]
    if video_id:
        data["videoId"] = video_id
    metadata.update(heygen_video_url=video_url, storage_fallback=False)
    metadata.pop("storage_problem", None)
    data["metadata"] = metadata
    if stored_metadata.get("duration_seconds"):
        data["duration_seconds"] = stored_metadata["duration_seconds"]
    item = content_item_mark_stored(content_item=content_item, content_data=data,
                                    upload_owner=owner,
                                    expected_video_id=expected_video_id)  # fmt: skip
    logger.info("provider video of item %s copied to %s", item.pk, stored.storage_path)
    return item


def _fallback_items() -> Iterator[ContentItem]:
    latest_expiry = VideoJob.objects.filter(content_item=OuterRef("pk")).order_by("-queued_at")
    return (
        ContentItem.objects.filter(
            content_type=ContentItem.ContentType.AVATAR_VIDEO,
            status=ContentItem.Status.NEEDS_STORAGE,
        )
        .select_related("topic")
        .annotate(url_expires_at=Subquery(latest_expiry.values("provider_url_expires_at")[:1]))
        .iterator(chunk_size=200)
    )


def promote_item(content_item: ContentItem, *, url_expires_at=None) -> str:
    """Promote one fallback item: 'stored', 'expired' (a stored video stays, else marked for
    regeneration), 'stale' (a regenerate or delete won meanwhile) or 'failed'."""
    if url_expires_at is not None and url_expires_at <= timezone.now():
        # Decided under the row lock: a regenerate may have stored a video since.
        content_item_expire_provider_link(content_item_id=content_item.pk,
                                          reason="provider link expired")  # fmt: skip
        return "expired"
    video_url = (content_item.content_data.get("metadata") or {}).get(
        "heygen_video_url"
    ) or content_item.content_data.get("videoUrl")
    if not video_url:
        return "failed"
    try:
        expected = content_item_waiting_render(content_item)
        copy_provider_video_to_storage(content_item=content_item, video_url=video_url,
                                       expected_video_id=expected)  # fmt: skip
    except (StaleItem, ContentItem.DoesNotExist):
        logger.info("item %s changed while its fallback was copied; copy discarded",
                    content_item.pk)  # fmt: skip
        return "stale"
    except GENERATION_ERRORS as error:
        logger.warning("copy of item %s into storage failed; will retry: %s", content_item.pk,
                       error, extra={"item_id": content_item.pk, "error": str(error)})  # fmt: skip
        return "failed"
    return "stored"


def promote_fallbacks() -> dict:
    """The scheduled task: copy every fallback row into storage before its URL expires."""
    counts = {"stored": 0, "expired": 0, "failed": 0}
    for item in _fallback_items():
        outcome = promote_item(item, url_expires_at=item.url_expires_at)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def promote_item_by_id(content_item_id: int) -> str:
    """Task form of `promote_item`, for the admin's "retry storage"."""
    item = ContentItem.objects.select_related("topic").filter(pk=content_item_id).first()
    if item is None or item.status != ContentItem.Status.NEEDS_STORAGE:
        return "skipped"
    job = item.video_jobs.order_by("-queued_at").first()
    return promote_item(item, url_expires_at=job.provider_url_expires_at if job else None)


def legacy_items():
    """Avatar video rows that hold only a provider URL, no storage metadata."""
    return (
        ContentItem.objects.filter(
            content_type=ContentItem.ContentType.AVATAR_VIDEO, storage_path=""
        )
        .exclude(status=ContentItem.Status.NEEDS_STORAGE)
        .filter(content_data__has_key="videoUrl")
        .select_related("topic")
        .order_by("pk")
    )
