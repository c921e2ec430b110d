from django.db import migrations

# django-q2's monitor saves results without pruning them (save_limit 0): this schedule keeps
# the newest successes (avatars.task_results).
PRUNE = ("avatars: prune task results", "avatars.task_results.prune_task_results")


def schedule_prune(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=PRUNE[0],
        defaults={"func": PRUNE[1], "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def unschedule_prune(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=PRUNE[0]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("avatars", "0011_rendered_links"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(schedule_prune, unschedule_prune)]
