"""Generation services: what "generate", "regenerate" and "retry storage" mean, for the
studio, the admin and the commands. The script and the language are checked here, once, at
the door; the rows are written with their jobs in one transaction, and the workers are woken
only after it commits."""

import logging
import uuid

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from avatars import jobs, leases
from avatars.errors import AlreadyQueued, InvalidRequest
from avatars.models import VideoJob
from topics import services as topic_services
from topics import validators
from topics.models import ContentItem, Topic
from topics.services import content_item_create_avatar_video, content_items_create_avatar_videos

logger = logging.getLogger(__name__)


def _clean_script(script: str) -> str:
    """The one script rule (topics/validators.py), as the error generation callers handle."""
    try:
        return validators.validate_script(script)
    except ValidationError as error:
        raise InvalidRequest(error.messages[0]) from error


def _clean_language(language: str, topic: Topic) -> str:
    if not language:
        return topic.language
    try:
        return validators.validate_language_tag(language)
    except ValidationError as error:
        raise InvalidRequest(error.messages[0]) from error


def _clean_title(title: str) -> str:
    """A given title by the one title rule; blank: the item takes the default from its script."""
    if not (title or "").strip():
        return ""
    try:
        return validators.validate_title(title)
    except ValidationError as error:
        raise InvalidRequest(error.messages[0]) from error


def avatar_video_request(
    *,
    topic: Topic,
    script: str,
    language: str = "",
    avatar_id: str = "",
    voice_id: str = "",
    content_item: ContentItem | None = None,
    max_attempts: int | None = None,
    enqueue_submit: bool = True,
    title: str = "",
) -> VideoJob:
    """Queue a generation; a request for an item that already has a running job joins it.
    A new item is the topic's last lesson, titled `title` (blank: from the script)."""
    script = _clean_script(script)
    language = _clean_language(language, topic)
    title = _clean_title(title)
    options = {"script": script, "language": language,
               "avatar_id": avatar_id or topic.default_avatar_id,
               "voice_id": voice_id or topic.default_voice_id,
               "max_attempts": max_attempts}  # fmt: skip
    with transaction.atomic():
        if content_item is None:
            content_item = content_item_create_avatar_video(topic=topic, script=script,
                                                            title=title)  # fmt: skip
        else:
            content_item = ContentItem.objects.select_for_update().get(pk=content_item.pk)
            active = content_item.video_jobs.filter(state__in=VideoJob.ACTIVE_STATES).first()
            if active:
                return active
        try:
            with transaction.atomic():
                job = leases.create_job(content_item=content_item, **options)
        except IntegrityError:  # a concurrent request won the race: join its job
            return content_item.video_jobs.get(state__in=VideoJob.ACTIVE_STATES)
        if enqueue_submit:
            jobs.enqueue("submit")
    logger.info("video job %s queued for item %s", job.pk, content_item.pk)
    return job


def avatar_video_request_batch(
    *, topic: Topic, scripts: list[str], language: str = "", avatar_id: str = "",
    voice_id: str = "", titles: list[str] | None = None,
) -> list[VideoJob]:  # fmt: skip
    """One item and one job per script, all queued in one transaction (all or none); the
    items are the topic's next lessons in the scripts' order, titled by `titles` (a blank
    or missing title: from the script)."""
    cleaned = [_clean_script(script) for script in scripts]
    if not cleaned:
        raise InvalidRequest("There is no script to generate; write at least one.")
    language = _clean_language(language, topic)
    titles = [_clean_title(title) for title in (titles or [])]
    titles += [""] * (len(cleaned) - len(titles))
    options = {"language": language, "avatar_id": avatar_id or topic.default_avatar_id,
               "voice_id": voice_id or topic.default_voice_id}  # fmt: skip
    with transaction.atomic():
        items = content_items_create_avatar_videos(
            topic=topic, lessons=list(zip(cleaned, titles, strict=True))
        )
        created = leases.create_jobs(list(zip(items, cleaned, strict=True)), **options)
        jobs.enqueue("submit")
    logger.info("%d video jobs queued for topic %s: %s", len(created), topic.pk,
                [job.pk for job in created])  # fmt: skip
    return created


def avatar_videos_generate(
    *, topic: Topic, scripts: list[str], language: str = "", avatar_id: str = "",
    voice_id: str = "", titles: list[str] | None = None,
    request_token: uuid.UUID | None = None,
) -> list[VideoJob]:  # fmt: skip
    """One new item and one job per script (several in one transaction): the topic's next
    lessons in the scripts' order, titled by `titles` (blank or missing: from the script).

    With `request_token` (one per rendered form) the token is recorded in the same
    transaction as the items: a second request with it queues nothing and raises
    AlreadyQueued with the first request's jobs."""
    options = {"language": language, "avatar_id": avatar_id, "voice_id": voice_id}
    if request_token is None:
        return _queue(topic, scripts, titles, options)
    with transaction.atomic():
        generation_request, claimed = topic_services.generation_request_claim(
            token=request_token, topic=topic
        )
        if not claimed:
            raise AlreadyQueued(
                "These videos were already queued.",
                jobs=_first_jobs(generation_request.item_ids),
            )
        queued = _queue(topic, scripts, titles, options)
        topic_services.generation_request_set_items(
            generation_request=generation_request, item_ids=[job.content_item_id for job in queued]
        )
    return queued


def _queue(topic: Topic, scripts: list[str], titles: list[str] | None,
           options: dict) -> list[VideoJob]:  # fmt: skip
    if len(scripts) == 1:
        title = (titles or [""])[0]
        return [avatar_video_request(topic=topic, script=scripts[0], title=title, **options)]
    return avatar_video_request_batch(topic=topic, scripts=scripts, titles=titles, **options)


def _first_jobs(item_ids: list[int]) -> list[VideoJob]:
    """The job each item was created with (items deleted since have none)."""
    first: dict[int, VideoJob] = {}
    for job in VideoJob.objects.filter(content_item_id__in=item_ids).order_by("pk"):
        first.setdefault(job.content_item_id, job)
    return [first[item_id] for item_id in item_ids if item_id in first]


def avatar_video_regenerate(*, content_item: ContentItem) -> VideoJob:
    """Render the item's script again (a render credit); the current video stays until the
    new one is stored. Joins the item's running job instead of starting a second one."""
    if content_item.content_type != ContentItem.ContentType.AVATAR_VIDEO:
        raise InvalidRequest(f"{content_item} is not an avatar video.")
    script = (content_item.content_data or {}).get("script", "")
    return avatar_video_request(topic=content_item.topic, script=script, content_item=content_item)


def avatar_video_retry_storage(*, content_item: ContentItem) -> bool:
    """Queue the copy of a fallback item into storage; False when there is nothing to copy."""
    if content_item.status != ContentItem.Status.NEEDS_STORAGE:
        return False
    jobs.enqueue_promotion(content_item.pk)
    return True
