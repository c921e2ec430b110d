"""Writes for topics and their content items. Every write in the app goes through a service."""

from topics.models import Topic


def create_topic(*, title: str, language: str = "en", description: str = "") -> Topic:
    """Create a topic."""
    return Topic.objects.create(title=title.strip(), language=language, description=description)
