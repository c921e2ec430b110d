# A video is a lesson: a title and a place in its topic.

import topics.validators
from django.db import migrations, models

BATCH = 500


def titles_and_positions(apps, schema_editor):
    """Existing items get the default title from their script and their places in creation
    order, topic by topic (first created, first lesson)."""
    ContentItem = apps.get_model("topics", "ContentItem")
    topic_ids = ContentItem.objects.values_list("topic_id", flat=True).distinct().order_by()
    for topic_id in list(topic_ids):
        items = ContentItem.objects.filter(topic_id=topic_id).order_by("created_at", "id")
        changed = []
        for number, item in enumerate(items.only("id", "content_data").iterator(), start=1):
            data = item.content_data if isinstance(item.content_data, dict) else {}
            item.title = topics.validators.default_title(data.get("script", ""))
            item.position = number
            changed.append(item)
            if len(changed) == BATCH:
                ContentItem.objects.bulk_update(changed, ["title", "position"])
                changed = []
        ContentItem.objects.bulk_update(changed, ["title", "position"])


class Migration(migrations.Migration):

    dependencies = [
        ("topics", "0004_language_tag"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="contentitem",
            options={
                "ordering": ["topic_id", "position", "id"],
                "permissions": [("regenerate_contentitem", "Can regenerate videos and retry storage")],
            },
        ),
        migrations.RemoveIndex(
            model_name="contentitem",
            name="contentitem_topic_newest",
        ),
        migrations.AddField(
            model_name="contentitem",
            name="title",
            field=models.CharField(
                default="", max_length=200, validators=[topics.validators.validate_title]
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="contentitem",
            name="position",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(titles_and_positions, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="contentitem",
            index=models.Index(fields=["topic", "position", "id"], name="contentitem_topic_lesson"),
        ),
    ]
