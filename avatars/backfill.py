"""Posters and captions for videos stored before they were made: one item at a time, each
saved in its own transaction, so a run that stops is resumed by running it again (items that
have both are not selected again).

The unit's rules hold: fresh keys registered in the upload ledger before any byte, in the
video's bucket; the row gets them under its lock only if it still holds the same video,
else they are discarded. The poster is a frame of the stored video, the captions are made
from the script (the provider's links of old renders have expired).
"""

import logging
import uuid

from django.conf import settings

from avatars.companions import make_captions, make_poster, upload_poster_and_captions
from topics.errors import StaleItem
from topics.models import ContentItem
from topics.services import content_item_add_poster_and_captions
from videostore import ledger
from videostore.storage import VideoStorage

logger = logging.getLogger(__name__)

#: What `add_poster_and_captions` can report for an item.
OUTCOMES = ("added", "missing_video", "stale", "skipped")


def add_poster_and_captions(
    item: ContentItem, *, video_storage: VideoStorage | None = None,
    replace_placeholder: bool = False,
) -> str:  # fmt: skip
    """Make and store what the item's stored video lacks (poster, captions; with
    `replace_placeholder`, a placeholder poster too). Returns an OUTCOMES value; raises
    StorageUnavailable (nothing left stored) when storage fails."""
    data = item.content_data or {}
    need_poster = not item.poster_path or (
        replace_placeholder and data.get("posterSource") == "placeholder"
    )
    need_captions = not item.captions_path
    if not item.storage_path or not (need_poster or need_captions):
        return "skipped"
    storage = (video_storage or VideoStorage()).in_bucket(item.storage_bucket)
    if storage.size(item.storage_path) is None:
        return "missing_video"  # reconcile's to handle: the row dangles
    owner = f"backfill-item-{item.pk}-{uuid.uuid4().hex[:8]}"
    poster_path = storage.new_companion_path(item.storage_path, "jpg") if need_poster else ""
    captions_path = storage.new_companion_path(item.storage_path, "vtt") if need_captions else ""
    paths = [path for path in (poster_path, captions_path) if path]
    ledger.register_pending_uploads(
        dict.fromkeys(paths, f"backfill of item {item.pk}"), owner=owner,
        lease_seconds=settings.VIDEO_JOB_LEASE_SECONDS, bucket=storage.bucket,
    )  # fmt: skip
    try:
        companions = _make_and_upload(item, storage, poster_path, captions_path)
    except BaseException:
        for path in paths:
            ledger.discard_upload(path, reason="backfill did not complete")
        raise
    try:
        content_item_add_poster_and_captions(
            content_item_id=item.pk, expected_storage_path=item.storage_path,
            companion_data=companions, upload_owner=owner,
        )  # fmt: skip
    except StaleItem:
        logger.info("item %s changed during its backfill; its new poster and captions were "
                    "discarded", item.pk)  # fmt: skip
        return "stale"
    logger.info("item %s: poster and captions added: %s", item.pk, paths)
    return "added"


def _make_and_upload(item: ContentItem, storage: VideoStorage, poster_path: str,
                     captions_path: str) -> dict:  # fmt: skip
    data = item.content_data or {}
    duration = data.get("duration_seconds")
    poster = captions = None
    if poster_path:
        poster = make_poster(provider=None, thumbnail_url=None,
                             frame_source=storage.frame_source(item.storage_path),
                             duration_seconds=duration, label=item.storage_path)  # fmt: skip
    if captions_path:
        captions = make_captions(provider=None, caption_url=None,
                                 script=data.get("script") or "",
                                 language=item.topic.language, duration_seconds=duration,
                                 label=item.storage_path)  # fmt: skip
    return upload_poster_and_captions(poster, captions, poster_path=poster_path,
                                      captions_path=captions_path,
                                      video_storage=storage)  # fmt: skip
