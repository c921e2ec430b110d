"""Copying videos that only live at a provider URL into our storage.

Two sources: fallback rows (storage was down when the video was generated) and legacy rows
(saved before videos were stored). A provider URL expires (HeyGen: 7 days), so fallback
rows are promoted by a scheduled task in time, and marked for regeneration once expired.
"""

import logging
import time
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
from topics.models import ContentItem
from topics.services import content_item_mark_needs_regeneration, content_item_mark_stored
from videostore import ledger
from videostore.storage import VideoStorage

logger = logging.getLogger(__name__)


def _lease_renewer(owner: str):
    """Keeps the upload's ledger lease alive while the bytes flow (at most once a second)."""
    last = [0.0]

    def renew(stage: str, details: dict) -> None:
        if stage == "copying" and time.monotonic() - last[0] >= 1.0:
            last[0] = time.monotonic()
            ledger.renew_upload_lease(
                details["storage_path"], owner=owner,
                lease_seconds=settings.VIDEO_JOB_LEASE_SECONDS,
            )  # fmt: skip

    return renew


def copy_provider_video_to_storage(
    *,
    content_item: ContentItem,
    video_url: str,
    provider: VideoProvider | None = None,
    video_storage: VideoStorage | None = None,
) -> ContentItem:
    """Stream `video_url` into storage and point the item at the stored copy."""
    data = dict(content_item.content_data)
    status = RenderStatus(
        provider_video_id=str(data.get("videoId") or f"item{content_item.pk}"),
        status="completed",
        video_url=video_url,
    )
    owner = f"promote-item-{content_item.pk}-{uuid.uuid4().hex[:8]}"
    stored = store_rendered_video(
        status,
        provider=provider or get_provider(),
        video_storage=video_storage or VideoStorage(),
        on_progress=_lease_renewer(owner),
        upload_owner=owner,
        lease_seconds=settings.VIDEO_JOB_LEASE_SECONDS,
    )
    metadata = stored.as_metadata()
    data.update(metadata)
    data["videoUrl"] = metadata["fileUrl"]
    data["metadata"] = {
        **(data.get("metadata") or {}),
        "heygen_video_url": video_url,
        "storage_fallback": False,
    }
    data["metadata"].pop("storage_problem", None)
    if not data.get("duration_seconds") and metadata.get("duration_seconds"):
        data["duration_seconds"] = metadata["duration_seconds"]
    item = content_item_mark_stored(
        content_item=content_item, content_data=data, upload_owner=owner
    )
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
    """Promote one fallback item: 'stored', 'expired' (marked for regeneration) or 'failed'."""
    if url_expires_at is not None and url_expires_at <= timezone.now():
        # Only an item still without a stored video (checked under its row lock: a
        # regenerate may have stored one since this item was read).
        content_item_mark_needs_regeneration(
            content_item_id=content_item.pk, reason="the provider URL expired",
            expected_storage_path="",
        )  # fmt: skip
        return "expired"
    video_url = (content_item.content_data.get("metadata") or {}).get(
        "heygen_video_url"
    ) or content_item.content_data.get("videoUrl")
    if not video_url:
        return "failed"
    try:
        copy_provider_video_to_storage(content_item=content_item, video_url=video_url)
    except GENERATION_ERRORS as error:
        logger.warning("copy of item %s into storage failed; will retry: %s", content_item.pk,
                       error, extra={"item_id": content_item.pk, "error": str(error)})  # fmt: skip
        return "failed"
    return "stored"


def promote_fallbacks() -> dict:
    """The scheduled task: copy every fallback row into storage before its URL expires."""
    counts = {"stored": 0, "expired": 0, "failed": 0}
    for item in _fallback_items():
        counts[promote_item(item, url_expires_at=item.url_expires_at)] += 1
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
