"""The data migration that makes existing videos lessons: titles from their scripts (the
default rule) and places in creation order, topic by topic."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from topics.validators import UNTITLED, default_title

BEFORE = [("topics", "0004_language_tag")]
AFTER = [("topics", "0005_lesson_title_position")]
LONG_SCRIPT = "Plants turn light into sugar in their leaves, every single day of the year."


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture(autouse=True)
def back_to_the_latest_migrations():
    """The tests after this one need every migration applied, later ones included."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_existing_items_get_default_titles_and_places_in_creation_order():
    apps = migrate(BEFORE)
    Topic = apps.get_model("topics", "Topic")
    ContentItem = apps.get_model("topics", "ContentItem")
    cells, plants = Topic.objects.create(title="Cells"), Topic.objects.create(title="Plants")
    now = timezone.now()

    def item(topic, minutes_ago: int, data) -> int:
        row = ContentItem.objects.create(topic=topic, content_type="avatar_video",
                                         content_data=data)  # fmt: skip
        ContentItem.objects.filter(pk=row.pk).update(
            created_at=now - timedelta(minutes=minutes_ago)
        )
        return row.pk

    # Created out of id order: the place follows created_at, then id.
    late = item(cells, 1, {"script": "Late lesson."})
    early = item(cells, 30, {"script": LONG_SCRIPT})
    middle = item(cells, 10, {"videoUrl": "https://files2.heygen.ai/legacy.mp4"})
    odd = item(cells, 10, ["not", "a", "dict"])
    only = item(plants, 5, {"script": "שיעור ראשון: מבוא"})

    apps = migrate(AFTER)
    ContentItem = apps.get_model("topics", "ContentItem")
    rows = {row.pk: (row.position, row.title) for row in ContentItem.objects.all()}
    assert rows == {
        early: (1, default_title(LONG_SCRIPT)),
        middle: (2, UNTITLED),
        odd: (3, UNTITLED),
        late: (4, "Late lesson."),
        only: (1, "שיעור ראשון: מבוא"),
    }
    assert default_title(LONG_SCRIPT).endswith("…")
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "topics_contentitem")
    index_names = {name for name, constraint in constraints.items() if constraint["index"]}
    assert "contentitem_topic_lesson" in index_names
    assert "contentitem_topic_newest" not in index_names
