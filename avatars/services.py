"""The studio's and the admin's video actions, composed from the services of both apps: one
place for what "generate", "regenerate", "retry storage" and "delete a topic" mean."""

from avatars import jobs
from avatars.errors import InvalidRequest
from avatars.models import VideoJob
from topics.models import ContentItem, Topic


def generate_videos(
    *, topic: Topic, scripts: list[str], language: str = "", avatar_id: str = "",
    voice_id: str = "", titles: list[str] | None = None,
) -> list[VideoJob]:  # fmt: skip
    """One new item and one job per script (several in one transaction): the topic's next
    lessons in the scripts' order, titled by `titles` (blank or missing: from the script)."""
    options = {"language": language, "avatar_id": avatar_id, "voice_id": voice_id}
    if len(scripts) == 1:
        title = (titles or [""])[0]
        return [jobs.request_avatar_video(topic=topic, script=scripts[0], title=title, **options)]
    return jobs.request_avatar_video_batch(topic=topic, scripts=scripts, titles=titles, **options)


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
