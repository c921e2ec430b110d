"""Reads for the studio pages: a fixed number of queries whatever the number of items."""

from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet

from topics.models import ContentItem, Topic
from topics.objects import PATH_COLUMNS
from videostore.storage import VideoStorage

#: Lessons per page of a topic: a course of 50 on one page, a batch never split for long.
ITEMS_PER_PAGE = 50
TOPICS_PER_PAGE = 25


def topic_list(*, query: str = "") -> QuerySet[Topic]:
    topics = Topic.objects.annotate(item_count=Count("content_items"))
    if query:
        topics = topics.filter(title__icontains=query)
    # A GROUP BY query drops Meta.ordering: name it, so pages never overlap or skip.
    return topics.order_by("-updated_at", "-id")


def topic_contents(topic: Topic) -> dict:
    """What deleting the topic takes with it: its lessons and their files in storage (each
    video with its poster and captions)."""
    items = topic.content_items.all()
    files = sum(items.exclude(**{column: ""}).count() for column in PATH_COLUMNS.values())
    return {"items": items.count(), "videos": items.exclude(storage_path="").count(),
            "files": files}  # fmt: skip


def topic_items_page(topic: Topic, page_number, *, items: QuerySet | None = None) -> Page:
    """A page of the topic's items in lesson order, first lesson first (`items` narrows or
    prefetches)."""
    items = topic.content_items.all() if items is None else items
    return Paginator(items.order_by("position", "pk"), ITEMS_PER_PAGE).get_page(page_number)


def lesson_number(item: ContentItem) -> int:
    """The item's number among its topic's lessons (1 = first), as the studio shows it."""
    before = Q(position__lt=item.position) | Q(position=item.position, pk__lt=item.pk)
    return ContentItem.objects.filter(before, topic_id=item.topic_id).count() + 1


def lesson_page_number(item: ContentItem) -> int:
    """The page of the topic's lessons that shows this item."""
    return (lesson_number(item) - 1) // ITEMS_PER_PAGE + 1


@dataclass(frozen=True)
class VideoView:
    """What a page shows of an avatar video; `play_url` is safe to put in a page."""

    play_url: str
    script: str
    file_size: int | None
    duration_seconds: float | None
    width: int | None
    height: int | None
    uploaded_at: str
    fallback: bool
    stored: bool
    #: The poster's URL (public or signed, like the video's); "" when it has none yet.
    poster_url: str = ""
    #: The captions' language (BCP 47) when the video has captions; served same-origin by
    #: the studio (a <track> from another origin needs CORS on storage).
    captions_language: str = ""


def poster_url(item: ContentItem, video_storage: VideoStorage | None = None) -> str:
    """Where a page loads the item's poster (public or signed, like its video); "" when it
    has none yet."""
    if not item.poster_path:
        return ""
    storage = (video_storage or VideoStorage()).in_bucket(item.storage_bucket)
    return storage.public_or_signed_url(item.poster_path)


def video_view(item: ContentItem, video_storage: VideoStorage | None = None) -> VideoView | None:
    """Stored videos play from storage (public URL or a fresh signature); fallback and legacy
    rows play from the provider URL they hold; rows without any URL have no player."""
    data = item.content_data or {}
    poster = ""
    if item.storage_path:
        storage = (video_storage or VideoStorage()).in_bucket(item.storage_bucket)
        play_url = storage.public_or_signed_url(item.storage_path)
        poster = poster_url(item, storage)
    else:
        play_url = data.get("videoUrl") or ""
    if not play_url:
        return None
    return VideoView(
        play_url=play_url,
        script=data.get("script", ""),
        file_size=data.get("fileSize"),
        duration_seconds=data.get("duration_seconds"),
        width=data.get("width"),
        height=data.get("height"),
        uploaded_at=data.get("uploadedAt", ""),
        fallback=bool((data.get("metadata") or {}).get("storage_fallback"))
        or item.status == ContentItem.Status.NEEDS_STORAGE,
        stored=bool(item.storage_path),
        poster_url=poster,
        captions_language=(data.get("captionsLanguage") or item.topic.language)
        if item.storage_path and item.captions_path
        else "",
    )


def items_without_poster_or_captions(*, placeholders: bool = False) -> QuerySet[ContentItem]:
    """Stored videos that lack a poster or captions (with `placeholders`, also those whose
    poster is the placeholder), oldest first: the backfill's work list."""
    missing = Q(poster_path="") | Q(captions_path="")
    if placeholders:
        missing |= Q(content_data__posterSource="placeholder")
    return (
        ContentItem.objects.filter(content_type=ContentItem.ContentType.AVATAR_VIDEO)
        .exclude(storage_path="")
        .filter(missing)
        .select_related("topic")
        .order_by("pk")
    )
