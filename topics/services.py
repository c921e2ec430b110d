"""Writes for topics and their content items. Every write in the app goes through a service."""

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from topics.cleaners import clean_content_data
from topics.errors import StaleItem
from topics.models import ContentItem, GenerationRequest, Topic
from topics.objects import (
    CAPTIONS,
    PATH_COLUMNS,
    POSTER,
    VIDEO,
    stored_objects,
    stored_objects_in,
    without_poster_and_captions,
)
from topics.validators import default_title, validate_title
from videostore import ledger
from videostore.locations import configured_location
from videostore.storage import MEASURED_FIELDS, STORAGE_METADATA_FIELDS

logger = logging.getLogger(__name__)


def topic_create(*, title: str, language: str = "en", description: str = "",
                 default_avatar_id: str = "", default_voice_id: str = "") -> Topic:  # fmt: skip
    """Create a topic; raises ValidationError on a blank title or a malformed language."""
    topic = Topic(title=(title or "").strip(), language=(language or "").strip(),
                  description=(description or "").strip(),
                  default_avatar_id=(default_avatar_id or "").strip(),
                  default_voice_id=(default_voice_id or "").strip())  # fmt: skip
    topic.full_clean()
    topic.save()
    return topic


def topic_update(*, topic: Topic, title: str, language: str, description: str = "",
                 default_avatar_id: str = "", default_voice_id: str = "") -> Topic:  # fmt: skip
    """Edit a topic under the same rules as `topic_create` (the default avatar and voice
    its batches use included)."""
    topic.title = (title or "").strip()
    topic.language = (language or "").strip()
    topic.description = (description or "").strip()
    topic.default_avatar_id = (default_avatar_id or "").strip()
    topic.default_voice_id = (default_voice_id or "").strip()
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
    #: Under the row lock the item must still wait for this render (promotion), else StaleItem.
    expected_video_id: str | None = None


def referenced_paths(paths: Sequence[str]) -> set[str]:
    """The paths among `paths` that a row points at (as its video, poster or captions)."""
    if not paths:
        return set()
    columns = tuple(PATH_COLUMNS.values())
    matches = Q()
    for column in columns:
        matches |= Q(**{f"{column}__in": paths})
    wanted = set(paths)
    return {path for row in ContentItem.objects.filter(matches).values_list(*columns)
            for path in row if path in wanted}  # fmt: skip


def _lock_topic_lessons(topic_id: int) -> int:
    """Lock the topic's row, so new lessons and moves in one topic take turns (a batch gets
    consecutive places: the lock holds until its transaction ends); returns the position
    after the topic's last lesson. Inside a transaction."""
    Topic.objects.select_for_update().filter(pk=topic_id).values_list("pk", flat=True).get()
    last = ContentItem.objects.filter(topic_id=topic_id).aggregate(last=Max("position"))["last"]
    return (last or 0) + 1


def _object_columns(cleaned: dict) -> dict[str, str]:
    """The path columns of a row holding `cleaned` (each mirrors its content_data key)."""
    paths = {stored.kind: stored.storage_path for stored in stored_objects_in(cleaned)}
    return {column: paths.get(kind, "") for kind, column in PATH_COLUMNS.items()}


def _schedule_deletes(item: ContentItem, *, keep: set[str] = frozenset(), reason: str) -> list:
    """Inside the transaction: the item's stored objects (but `keep`) go once it commits."""
    gone = [stored for stored in stored_objects(item) if stored.storage_path not in keep]
    for stored in gone:
        ledger.schedule_delete(stored.storage_path, reason=reason, bucket=item.storage_bucket)
    return gone


def _save_item(topic: Topic, generated: GeneratedContent, cleaned: dict) -> ContentItem:
    columns = _object_columns(cleaned)
    new_bucket = cleaned.get("storageBucket", "")
    if generated.content_item_id is None:
        return ContentItem.objects.create(
            topic=topic,
            content_type=generated.content_type,
            content_data=cleaned,
            status=generated.status,
            position=_lock_topic_lessons(topic.pk),
            storage_bucket=new_bucket,
            **columns,
        )
    item = ContentItem.objects.select_for_update().get(pk=generated.content_item_id, topic=topic)
    expected = generated.expected_video_id
    if expected is not None and content_item_waiting_render(item) != expected:
        raise StaleItem(f"content item {item.pk} no longer waits for render "
                        f"{generated.expected_video_id}")  # fmt: skip
    # The old objects (video, poster, captions) go only once the new row has committed.
    keep = set(columns.values()) if item.storage_bucket == new_bucket else set()
    _schedule_deletes(item, keep=keep, reason=f"replaced on content item {item.pk}")
    item.content_type = generated.content_type
    item.content_data = cleaned
    item.status = generated.status
    item.storage_bucket = new_bucket
    for column, path in columns.items():
        setattr(item, column, path)
    item.save()
    return item


def topic_save_generated(
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
    paths = [stored.storage_path for g in items for stored in stored_objects_in(g.content_data)]
    # Objects a committed row already references are not new uploads: never discarded here.
    referenced = referenced_paths(paths)
    uploaded = [path for path in paths if path not in referenced]
    try:
        with transaction.atomic(durable=True):
            # First, under row locks: the uploads are still pending and ours (a sweeper that
            # gave them up makes this fail before anything is written).
            ledger.mark_referenced(uploaded, owner=upload_owner)
            if within_transaction is not None:
                within_transaction()  # e.g. the job's row, locked before the long writes
            if topic is None:
                topic = topic_create(title=title, language=language, description=description)
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


def content_item_create_avatar_video(*, topic: Topic, script: str, title: str = "") -> ContentItem:
    """A new avatar video item waiting for its first generation, the topic's last lesson
    (inside the caller's transaction, with the job that will fill it: items created in one
    transaction get consecutive places). A blank title: the default, from the script."""
    return content_items_create_avatar_videos(topic=topic, lessons=[(script, title)])[0]


def content_items_create_avatar_videos(
    *, topic: Topic, lessons: list[tuple[str, str]]
) -> list[ContentItem]:
    """`content_item_create_avatar_video` for each (script, title) of `lessons`, the topic's
    next lessons in their order, inserted in one statement (a course of 100: 4 statements,
    not 500)."""
    if not lessons:
        return []
    rows = [
        ContentItem(
            topic=topic,
            content_type=ContentItem.ContentType.AVATAR_VIDEO,
            content_data={"script": script},
            status=ContentItem.Status.GENERATING,
            title=validate_title(title) if title else default_title(script),
        )
        for script, title in lessons
    ]
    with transaction.atomic():
        first = _lock_topic_lessons(topic.pk)
        for place, item in enumerate(rows, start=first):
            item.position = place
        items = ContentItem.objects.bulk_create(rows)
        Topic.objects.filter(pk=topic.pk).update(updated_at=items[-1].created_at)
    return items


def content_item_waiting_render(item: ContentItem) -> str:
    """The provider render a fallback item waits to have copied in ("" when none)."""
    if item.status != ContentItem.Status.NEEDS_STORAGE:
        return ""
    data = item.content_data or {}
    return (data.get("metadata") or {}).get("pending_video_id") or data.get("videoId") or ""


def content_item_rename(*, content_item: ContentItem, title: str) -> ContentItem:
    """Give the item a new title (the one title rule: topics.validators.validate_title);
    raises ValidationError. Only the title changes, whatever the engine does meanwhile."""
    title = validate_title(title)
    with transaction.atomic():
        item = ContentItem.objects.select_for_update().get(pk=content_item.pk)
        item.title = title
        item.save(update_fields=["title", "updated_at"])
    content_item.title = item.title
    return item


class Direction:
    """Where `content_item_move` moves a lesson."""

    UP = "up"
    DOWN = "down"
    ALL = (UP, DOWN)


def _neighbour(item: ContentItem, direction: str) -> ContentItem | None:
    """The lesson just before (up) or after (down) `item` in its topic's order."""
    siblings = ContentItem.objects.filter(topic_id=item.topic_id)
    if direction == Direction.UP:
        before = Q(position__lt=item.position) | Q(position=item.position, pk__lt=item.pk)
        return siblings.filter(before).order_by("-position", "-pk").first()
    after = Q(position__gt=item.position) | Q(position=item.position, pk__gt=item.pk)
    return siblings.filter(after).order_by("position", "pk").first()


def _number_lessons(topic_id: int) -> None:
    """Give the topic's lessons distinct positions 1..n in their current order (rows saved
    without a place share one; two shared places cannot be swapped)."""
    items = list(ContentItem.objects.filter(topic_id=topic_id).order_by("position", "pk"))
    changed = []
    for number, item in enumerate(items, start=1):
        if item.position != number:
            item.position = number
            changed.append(item)
    ContentItem.objects.bulk_update(changed, ["position"], batch_size=500)


def content_item_move(*, content_item: ContentItem, direction: str) -> bool:
    """Move a lesson one place up or down in its topic: it swaps places with its neighbour.
    Under the topic's lock (moves and new lessons of a topic take turns) and both rows'
    locks, re-read; False when there is no neighbour that way (first or last already)."""
    if direction not in Direction.ALL:
        raise ValueError(f"A lesson moves up or down, not {direction!r}.")
    with transaction.atomic():
        _lock_topic_lessons(content_item.topic_id)
        while True:  # again only when the neighbour was deleted before its lock
            item = ContentItem.objects.select_for_update().filter(pk=content_item.pk).first()
            neighbour = item and _neighbour(item, direction)
            if neighbour is None:
                return False
            neighbour = ContentItem.objects.select_for_update().filter(pk=neighbour.pk).first()
            if neighbour is not None:
                break
        shared = ContentItem.objects.filter(
            topic_id=item.topic_id, position__in={item.position, neighbour.position}
        ).count()
        if shared > 2 or item.position == neighbour.position:
            _number_lessons(item.topic_id)
            item.refresh_from_db(fields=["position"])
            neighbour.refresh_from_db(fields=["position"])
        item.position, neighbour.position = neighbour.position, item.position
        ContentItem.objects.bulk_update([item, neighbour], ["position"])
    content_item.position = item.position
    logger.info("lesson %s moved %s to position %s", item.pk, direction, item.position)
    return True


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
    expected_video_id: str | None = None,
) -> ContentItem:
    _, (item,) = topic_save_generated(
        topic=content_item.topic,
        items=[
            GeneratedContent(
                content_type=ContentItem.ContentType.AVATAR_VIDEO,
                content_data=content_data,
                status=status,
                content_item_id=content_item.pk,
                expected_video_id=expected_video_id,
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
    expected_video_id: str | None = None,
) -> ContentItem:
    """Point the item at its stored video (the object was uploaded and is in the ledger,
    pending for `upload_owner`); the item's previous object, if any, goes after commit.
    `expected_video_id`: only if, under its lock, the item still waits for that render
    (StaleItem otherwise, and the upload is discarded)."""
    return _save_one(
        content_item=content_item,
        content_data=content_data,
        status=ContentItem.Status.READY,
        within_transaction=within_transaction,
        upload_owner=upload_owner,
        expected_video_id=expected_video_id,
    )


def content_item_mark_fallback(
    *,
    content_item: ContentItem,
    content_data: dict,
    within_transaction: Callable[[], None] | None = None,
    provider_url_expires_at=None,
) -> ContentItem:
    """Storage was down: the item waits for its render to be copied in, playing the
    provider's link meanwhile. An item that already has a stored video keeps it (and plays
    it) and keeps the new render's link beside it, so the render is promoted like any other
    fallback and never lost."""
    with transaction.atomic(durable=True):
        if within_transaction is not None:
            within_transaction()  # the job's row first, as every item write does
        item = ContentItem.objects.select_for_update().get(pk=content_item.pk)
        if item.storage_path:
            data = dict(item.content_data)
            data["metadata"] = {
                **(data.get("metadata") or {}),
                "heygen_video_url": (content_data.get("metadata") or {}).get("heygen_video_url")
                or content_data.get("videoUrl"),
                "pending_video_id": content_data.get("videoId") or "",
                "storage_fallback": True,
            }
        else:
            data = content_data
        item.content_data = clean_content_data(item.content_type, data)
        item.status = ContentItem.Status.NEEDS_STORAGE
        item.save(update_fields=["content_data", "status", "updated_at"])
    return item


def content_item_mark_failed(*, content_item_id: int) -> bool:
    """The generation failed: a new item says so; an item with a video keeps it."""
    return bool(
        ContentItem.objects.filter(pk=content_item_id, storage_path="")
        .exclude(status=ContentItem.Status.NEEDS_STORAGE)
        .update(status=ContentItem.Status.FAILED)
    )


def content_item_expire_provider_link(*, content_item_id: int, reason: str) -> str:
    """A fallback's provider link expired before it was copied in: an item with a stored
    video keeps it (the new render is dropped: "ready"); one without needs regeneration.
    Decided under the row lock; "unchanged" when the item no longer waits for storage."""
    with transaction.atomic():
        item = ContentItem.objects.select_for_update().filter(pk=content_item_id).first()
        if item is None or item.status != ContentItem.Status.NEEDS_STORAGE:
            return "unchanged"
        if not item.storage_path:
            content_item_mark_needs_regeneration(content_item_id=item.pk, reason=reason,
                                                 expected_storage_path="")  # fmt: skip
            return "needs_regeneration"
        data = dict(item.content_data)
        metadata = {**(data.get("metadata") or {})}
        for name in ("pending_video_id", "heygen_video_url"):
            metadata.pop(name, None)
        metadata.update(storage_fallback=False, storage_problem=f"the new render's {reason}")
        data["metadata"] = metadata
        item.content_data = clean_content_data(item.content_type, data)
        item.status = ContentItem.Status.READY
        item.save(update_fields=["content_data", "status", "updated_at"])
    return "ready"


def content_item_mark_needs_regeneration(
    *, content_item_id: int, reason: str, expected_storage_path: str | None = None,
    expected_location: str | None = None,
) -> bool:  # fmt: skip
    """The item's video is gone (object missing, provider URL expired): it stops pointing at
    it and waits for a new render. Returns False when the item no longer exists, or (with
    `expected_storage_path` / `expected_location`) no longer points at that object there
    (moved to another storage meanwhile): checked under the row lock."""
    with transaction.atomic():
        item = ContentItem.objects.select_for_update().filter(pk=content_item_id).first()
        if item is None:
            return False
        if expected_storage_path is not None and item.storage_path != expected_storage_path:
            return False  # regenerated or replaced since it was found: not ours to touch
        if expected_location is not None and (
            (item.storage_bucket or configured_location()) != expected_location
        ):
            return False  # moved to another location since it was found
        data = {
            key: value
            for key, value in without_poster_and_captions(item.content_data).items()
            if key not in STORAGE_METADATA_FIELDS and key not in MEASURED_FIELDS
        }
        # The missing video's poster and captions go with it (after commit); the video's
        # own key is left to reconcile (it is missing, or of the wrong size: an orphan).
        _schedule_deletes(item, keep={item.storage_path}, reason=f"video {reason}")
        if data.get("videoUrl") and data.get("videoUrl") == item.content_data.get("fileUrl"):
            data.pop("videoUrl")
        data["duration_seconds"] = item.content_data.get("duration_seconds")
        data["metadata"] = {**(data.get("metadata") or {}), "storage_problem": reason}
        item.content_data = clean_content_data(item.content_type, data, require_video=False)
        item.storage_path = item.storage_bucket = item.poster_path = item.captions_path = ""
        item.status = ContentItem.Status.NEEDS_REGENERATION
        item.save(update_fields=["content_data", "storage_path", "storage_bucket", "status",
                                 "poster_path", "captions_path", "updated_at"])  # fmt: skip
    return True


def content_item_delete(*, content_item: ContentItem) -> bool:
    """Delete an item; its stored objects (video, poster, captions: `stored_objects`) are
    deleted after the row's deletion commits. They are read under the row lock (its jobs'
    rows first, in the order every save takes them): a copy that committed a moment ago has
    its objects deleted too, and a copy still running finds no row to save into and discards
    its own uploads. False: already gone."""
    with transaction.atomic():
        list(content_item.video_jobs.select_for_update().values_list("pk", flat=True))
        item = ContentItem.objects.select_for_update().filter(pk=content_item.pk).first()
        if item is None:
            return False
        _schedule_deletes(item, reason="content item deleted")
        item.delete()
    return True


def topic_delete(*, topic: Topic) -> int:
    """Delete a topic with its items; their stored files go after commit (through the upload
    ledger), their generation jobs with the rows (a database cascade). Returns the number of
    items deleted."""
    with transaction.atomic():
        # The topic's row first, as new lessons and moves take it: no lock-order deadlock.
        Topic.objects.select_for_update().filter(pk=topic.pk).values_list("pk", flat=True).first()
        # Then the items' job rows, then the items: the order every save takes them in.
        jobs = ContentItem._meta.get_field("video_jobs").related_model.objects
        list(jobs.select_for_update().filter(content_item__topic=topic).values_list("pk"))
        items = list(ContentItem.objects.select_for_update().filter(topic=topic))
        for item in items:
            content_item_delete(content_item=item)
        topic.delete()
    return len(items)


def content_item_add_poster_and_captions(
    *,
    content_item_id: int,
    expected_storage_path: str,
    companion_data: dict,
    upload_owner: str,
) -> ContentItem:
    """Give a stored video the poster and/or captions just uploaded (pending in the ledger
    for `upload_owner`): under the row lock, only if the row still points at
    `expected_storage_path` (StaleItem otherwise); a poster or captions it had are replaced
    and go after commit. On any failure the new uploads are discarded."""
    new = stored_objects_in({"storagePath": expected_storage_path, **companion_data})
    uploaded = [stored.storage_path for stored in new if stored.kind != VIDEO]
    try:
        with transaction.atomic(durable=True):
            ledger.mark_referenced(uploaded, owner=upload_owner)
            item = ContentItem.objects.select_for_update().filter(pk=content_item_id).first()
            if item is None or item.storage_path != expected_storage_path:
                raise StaleItem(f"content item {content_item_id} no longer holds "
                                f"{expected_storage_path}")  # fmt: skip
            data = {**item.content_data, **companion_data}
            item.content_data = clean_content_data(item.content_type, data)
            columns = _object_columns(item.content_data)
            _schedule_deletes(item, keep=set(columns.values()),
                              reason=f"replaced on content item {item.pk}")  # fmt: skip
            item.poster_path = columns["poster_path"]
            item.captions_path = columns["captions_path"]
            item.save(update_fields=["content_data", "poster_path", "captions_path",
                                     "updated_at"])  # fmt: skip
    except BaseException as error:
        for storage_path in uploaded:
            ledger.discard_upload(storage_path, reason="save rolled back")
        logger.warning("poster and captions of item %s not saved (%s: %s); uploads discarded: "
                       "%s", content_item_id, error.__class__.__name__, error,
                       uploaded)  # fmt: skip
        raise
    return item


def content_item_forget_missing_object(*, content_item_id: int, storage_path: str) -> bool:
    """A poster or captions object is missing from storage: the row stops pointing at it (the
    video plays without it until the backfill makes a new one). Under the row lock; False
    when the row no longer points at it."""
    with transaction.atomic():
        item = ContentItem.objects.select_for_update().filter(pk=content_item_id).first()
        if item is None:
            return False
        kinds = {stored.kind for stored in stored_objects(item)
                 if stored.storage_path == storage_path}  # fmt: skip
        if not kinds & {POSTER, CAPTIONS}:
            return False
        data = dict(item.content_data)
        prefix = "poster" if POSTER in kinds else "captions"
        data = {key: value for key, value in data.items() if not key.startswith(prefix)}
        item.content_data = clean_content_data(item.content_type, data)
        setattr(item, PATH_COLUMNS[POSTER if POSTER in kinds else CAPTIONS], "")
        item.save(update_fields=["content_data", "poster_path", "captions_path", "updated_at"])
    logger.warning("item %s forgot its missing %s %s", content_item_id, prefix, storage_path)
    return True
