"""A topic's default avatar and voice, used by its batches unless a request names others."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("topics", "0008_reconcile_moves_to_topics")]

    operations = [
        migrations.AddField(
            model_name="topic",
            name="default_avatar_id",
            field=models.CharField(blank=True, max_length=128),
        ),
        migrations.AddField(
            model_name="topic",
            name="default_voice_id",
            field=models.CharField(blank=True, max_length=128),
        ),
    ]
