"""Writes for topics and their content items. Every write in the app goes through a service."""

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from topics.cleaners import clean_content_data
from topics.models import ContentItem, GenerationRequest, Topic
from videostore import ledger
from videostore.storage import MEASURED_FIELDS, STORAGE_METADATA_FIELDS

logger = logging.getLogger(__name__)


def create_topic(*, title: str, language: str = "en", description: str = "") -> Topic:
    """Create a topic; raises ValidationError on a blank title or a malformed language."""
    topic = Topic(title=(title or "").strip(), language=(language or "").strip(),
                  description=(description or "").strip())  # fmt: skip
    topic.full_clean()
    topic.save()
    return topic


def update_topic(*, topic: Topic, title: str, language: str, description: str = "") -> Topic:
    """Edit a topic under the same rules as `create_topic`."""
    topic.title = (title or "").strip()
    topic.language = (language or "").strip()
    topic.description = (description or "").strip()
    topic.full_clean()
    topic.save()
    return topic


@dataclass
class GeneratedContent:
    """One content item produced by a generator, to be saved (or to replace an item's data)."""

    content_type: str
    content_data: dict
    status: str = ContentItem.Status.READY
    content_item_id: int | None = None


def _storage_path(content_data: dict) -> str:
    return content_data.get("storagePath", "") if isinstance(content_data, dict) else ""


def _save_item(topic: Topic, generated: GeneratedContent, cleaned: dict) -> ContentItem:
    new_path = cleaned.get("storagePath", "")
    new_bucket = cleaned.get("storageBucket", "")
    if generated.content_item_id is None:
        return ContentItem.objects.create(
            topic=topic,
            content_type=generated.content_type,
            content_data=cleaned,
            status=generated.status,
            storage_path=new_path,
            storage_bucket=new_bucket,
        )
    item = ContentItem.objects.select_for_update().get(pk=generated.content_item_id, topic=topic)
    old_path, old_bucket = item.storage_path, item.storage_bucket
    item.content_type = generated.content_type
    item.content_data = cleaned
    item.status = generated.status
    item.storage_path = new_path
    item.storage_bucket = new_bucket
    item.save()
    if old_path and (old_path, old_bucket) != (new_path, new_bucket):
        # The old object goes only once the new row has committed.
        ledger.schedule_delete(
            old_path, reason=f"replaced on content item {item.pk}", bucket=old_bucket
        )
    return item


def save_generated_topic(
    *,
    items: Sequence[GeneratedContent],
    topic: Topic | None = None,
    title: str = "",
    language: str = "en",
    description: str = "",
    within_transaction: Callable[[], None] | None = None,
    upload_owner: str | None = None,
) -> tuple[Topic, list[ContentItem]]:
    """Save a topic and its generated content items in one transaction.

    Objects the items reference were uploaded before this call (never inside a transaction);
    they are kept when the transaction commits and deleted when it rolls back. A delete that
    fails stays in the upload ledger for retry. `within_transaction` runs inside the same
    transaction (e.g. closing the job that produced the items). Must not run inside an outer
    transaction (`durable=True`): an outer rollback after our "commit" would orphan objects.
    """
    paths = [path for path in (_storage_path(g.content_data) for g in items) if path]
    # Objects a committed row already references are not new uploads: never discarded here.
    referenced = set(
        ContentItem.objects.filter(storage_path__in=paths).values_list("storage_path", flat=True)
    )
    uploaded = [path for path in paths if path not in referenced]
    try:
        with transaction.atomic(durable=True):
            # First, under row locks: the uploads are still pending and ours (a sweeper that
            # gave them up makes this fail before anything is written).
            ledger.mark_referenced(uploaded, owner=upload_owner)
            if within_transaction is not None:
                within_transaction()  # e.g. the job's row, locked before the long writes
            if topic is None:
                topic = create_topic(title=title, language=language, description=description)
            saved = [
                _save_item(topic, g, clean_content_data(g.content_type, g.content_data))
                for g in items
            ]
    except BaseException as error:
        for storage_path in uploaded:
            ledger.discard_upload(storage_path, reason="save rolled back")
        logger.warning(
            "saving generated content failed (%s: %s); uploads discarded: %s",
            error.__class__.__name__,
            error,
            uploaded,
            extra={"storage_paths": uploaded},
        )
        raise
    return topic, saved


def content_item_create_avatar_video(*, topic: Topic, script: str) -> ContentItem:
    """A new avatar video item waiting for its first generation (inside the caller's
    transaction, with the job that will fill it)."""
    item = ContentItem.objects.create(
        topic=topic,
        content_type=ContentItem.ContentType.AVATAR_VIDEO,
        content_data={"script": script},
        status=ContentItem.Status.GENERATING,
    )
    Topic.objects.filter(pk=topic.pk).update(updated_at=item.created_at)
    return item


def generation_request_claim(*, token: uuid.UUID, topic: Topic) -> tuple[GenerationRequest, bool]:
    """Inside the caller's transaction: record a generate form's token (True), or return the
    request that already used it (False). The unique index makes a concurrent post of the same
    token wait for the first transaction: it then finds the committed request, or claims the
    token itself if the first rolled back."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("generation_request_claim must run inside the items' transaction.")
    try:
        with transaction.atomic():
            return GenerationRequest.objects.create(token=token, topic=topic), True
    except IntegrityError:
        return GenerationRequest.objects.get(token=token), False


def generation_request_set_items(
    *, generation_request: GenerationRequest, item_ids: list[int]
) -> None:
    """Inside the same transaction: the items the request created."""
    generation_request.item_ids = list(item_ids)
    generation_request.save(update_fields=["item_ids"])


def _save_one(
    *,
    content_item: ContentItem,
    content_data: dict,
    status: str,
    within_transaction=None,
    upload_owner: str | None = None,
) -> ContentItem:
    _, (item,) = save_generated_topic(
        topic=content_item.topic,
        items=[
            GeneratedContent(
                content_type=ContentItem.ContentType.AVATAR_VIDEO,
                content_data=content_data,
                status=status,
                content_item_id=content_item.pk,
            )
        ],
        within_transaction=within_transaction,
        upload_owner=upload_owner,
    )
    return item


def content_item_mark_stored(
    *,
    content_item: ContentItem,
    content_data: dict,
    within_transaction: Callable[[], None] | None = None,
    upload_owner: str | None = None,
) -> ContentItem:
    """Point the item at its stored video (the object was uploaded and is in the ledger,
    pending for `upload_owner`); the item's previous object, if any, goes after commit."""
    return _save_one(
        content_item=content_item,
        content_data=content_data,
        status=ContentItem.Status.READY,
        within_transaction=within_transaction,
        upload_owner=upload_owner,
    )


def content_item_mark_fallback(
    *,
    content_item: ContentItem,
    content_data: dict,
    within_transaction: Callable[[], None] | None = None,
) -> ContentItem:
    """Storage was down: the item plays from the provider's URL until it is copied in.
    An item that already has a stored video keeps it."""
    if content_item.storage_path:
        if within_transaction is not None:
            with transaction.atomic(durable=True):
                within_transaction()
        return content_item
    return _save_one(
        content_item=content_item,
        content_data=content_data,
        status=ContentItem.Status.NEEDS_STORAGE,
        within_transaction=within_transaction,
    )


def content_item_mark_failed(*, content_item_id: int) -> bool:
    """The generation failed: a new item says so; an item with a video keeps it."""
    return bool(
        ContentItem.objects.filter(pk=content_item_id, storage_path="")
        .exclude(status=ContentItem.Status.NEEDS_STORAGE)
        .update(status=ContentItem.Status.FAILED)
    )


def content_item_mark_needs_regeneration(
    *, content_item_id: int, reason: str, expected_storage_path: str | None = None
) -> bool:
    """The item's video is gone (object missing, provider URL expired): it stops pointing at
    it and waits for a new render. Returns False when the item no longer exists, or (with
    `expected_storage_path`) no longer points at that object: checked under the row lock."""
    with transaction.atomic():
        item = ContentItem.objects.select_for_update().filter(pk=content_item_id).first()
        if item is None:
            return False
        if expected_storage_path is not None and item.storage_path != expected_storage_path:
            return False  # regenerated or replaced since it was found: not ours to touch
        data = {
            key: value
            for key, value in item.content_data.items()
            if key not in STORAGE_METADATA_FIELDS and key not in MEASURED_FIELDS
        }
        if data.get("videoUrl") and data.get("videoUrl") == item.content_data.get("fileUrl"):
            data.pop("videoUrl")
        data["duration_seconds"] = item.content_data.get("duration_seconds")
        data["metadata"] = {**(data.get("metadata") or {}), "storage_problem": reason}
        item.content_data = clean_content_data(item.content_type, data, require_video=False)
        item.storage_path = item.storage_bucket = ""
        item.status = ContentItem.Status.NEEDS_REGENERATION
        item.save(update_fields=["content_data", "storage_path", "storage_bucket", "status",
                                 "updated_at"])  # fmt: skip
    return True


def delete_content_item(*, content_item: ContentItem) -> None:
    """Delete an item; its stored object is deleted after the row's deletion commits."""
    with transaction.atomic():
        storage_path, bucket = content_item.storage_path, content_item.storage_bucket
        content_item.delete()
        if storage_path:
            ledger.schedule_delete(storage_path, reason="content item deleted", bucket=bucket)


def delete_topic(*, topic: Topic) -> int:
    """Delete a topic with its items; their stored files go after commit (through the upload
    ledger), their generation jobs with the rows (a database cascade). Returns the number of
    items deleted."""
    with transaction.atomic():
        items = list(ContentItem.objects.select_for_update().filter(topic=topic))
        for item in items:
            delete_content_item(content_item=item)
        topic.delete()
    return len(items)
