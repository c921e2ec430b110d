"""Reads that join content items with their generation jobs (for the studio and the admin)."""

from django.core.paginator import Page
from django.db.models import Prefetch

from avatars.models import VideoJob
from topics import selectors as topic_selectors
from topics.models import Topic


def topic_videos_page(topic: Topic, page_number) -> Page:
    """A page of the topic's items, each with its jobs (newest first) in `item.jobs`."""
    items = topic.content_items.prefetch_related(
        Prefetch("video_jobs", queryset=VideoJob.objects.order_by("-queued_at"), to_attr="jobs")
    )
    return topic_selectors.topic_items_page(topic, page_number, items=items)
