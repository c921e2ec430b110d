"""The previous design, kept only as the course benchmark's baseline: one django-q2 task per
video that holds its worker for the whole render (it polls the provider with `time.sleep`),
then copies the video into storage with the same pipeline functions the job engine uses."""

import time

from avatars.errors import RenderFailed
from avatars.pipeline import (
    RenderOptions,
    build_result,
    content_data_from_result,
    start_render,
    store_rendered_video,
)
from avatars.providers import get_provider
from topics.models import ContentItem
from topics.services import content_item_mark_stored
from videostore.storage import VideoStorage


def render_and_store(content_item_id: int, poll_seconds: float) -> dict:
    """Task: create the render, sleep-poll until it ends, copy it, save the item. Returns
    wall-clock times (epoch seconds) for the benchmark's render windows."""
    item = ContentItem.objects.select_related("topic").get(pk=content_item_id)
    script = item.content_data["script"]
    provider = get_provider()
    render_started = time.time()
    options = RenderOptions(script=script, language=item.topic.language, title=item.topic.title)
    provider_video_id = start_render(options, provider=provider)
    status = provider.get_status(provider_video_id)
    while not status.is_terminal:
        time.sleep(poll_seconds)  # the worker waits here: the cost being measured
        status = provider.get_status(provider_video_id)
    if not status.is_completed:
        raise RenderFailed(f"render {provider_video_id} ended {status.status}")
    rendered = time.time()
    stored = store_rendered_video(status, provider=provider, video_storage=VideoStorage())
    result = build_result(status, language=item.topic.language, stored=stored)
    content_item_mark_stored(
        content_item=item, content_data=content_data_from_result(result, script=script)
    )
    return {"render_started": render_started, "rendered": rendered, "stored": time.time()}
