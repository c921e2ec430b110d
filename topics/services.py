"""Writes for topics and their content items. Every write in the app goes through a service."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.db import transaction

from avatars import ledger
from topics.cleaners import clean_content_data
from topics.models import ContentItem, Topic

logger = logging.getLogger(__name__)


def create_topic(*, title: str, language: str = "en", description: str = "") -> Topic:
    """Create a topic."""
    return Topic.objects.create(title=title.strip(), language=language, description=description)


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
    if generated.content_item_id is None:
        return ContentItem.objects.create(
            topic=topic,
            content_type=generated.content_type,
            content_data=cleaned,
            status=generated.status,
            storage_path=new_path,
        )
    item = ContentItem.objects.select_for_update().get(pk=generated.content_item_id, topic=topic)
    old_path = item.storage_path
    item.content_type = generated.content_type
    item.content_data = cleaned
    item.status = generated.status
    item.storage_path = new_path
    item.save()
    if old_path and old_path != new_path:
        # The old object goes only once the new row has committed.
        ledger.schedule_delete(old_path, reason=f"replaced on content item {item.pk}")
    return item


def save_generated_topic(
    *,
    items: Sequence[GeneratedContent],
    topic: Topic | None = None,
    title: str = "",
    language: str = "en",
    description: str = "",
    within_transaction: Callable[[], None] | None = None,
) -> tuple[Topic, list[ContentItem]]:
    """Save a topic and its generated content items in one transaction.

    Objects the items reference were uploaded before this call (never inside a transaction);
    they are kept when the transaction commits and deleted when it rolls back. A delete that
    fails stays in the upload ledger for retry. `within_transaction` runs inside the same
    transaction (e.g. closing the job that produced the items). Must not run inside an outer
    transaction (`durable=True`): an outer rollback after our "commit" would orphan objects.
    """
    uploaded = [path for path in (_storage_path(g.content_data) for g in items) if path]
    try:
        with transaction.atomic(durable=True):
            if topic is None:
                topic = create_topic(title=title, language=language, description=description)
            saved = [
                _save_item(topic, g, clean_content_data(g.content_type, g.content_data))
                for g in items
            ]
            ledger.mark_referenced(uploaded)
            if within_transaction is not None:
                within_transaction()
    except BaseException:
        for storage_path in uploaded:
            ledger.discard_upload(storage_path, reason="save rolled back")
        logger.exception("saving generated content failed", extra={"storage_paths": uploaded})
        raise
    return topic, saved


def delete_content_item(*, content_item: ContentItem) -> None:
    """Delete an item; its stored object is deleted after the row's deletion commits."""
    with transaction.atomic():
        storage_path = content_item.storage_path
        content_item.delete()
        if storage_path:
            ledger.schedule_delete(storage_path, reason="content item deleted")
