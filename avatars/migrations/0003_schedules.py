"""The periodic tasks that keep storage and database in agreement."""

from django.db import migrations

SCHEDULES = [
    # name, func, schedule_type, minutes
    ("avatars: recover stalled video jobs", "avatars.jobs.recover_stalled_jobs", "I", 1),
    ("avatars: retry pending object deletes", "avatars.ledger.retry_pending_deletes", "I", 5),
    ("avatars: promote fallback videos to storage", "avatars.promotion.promote_fallbacks", "I", 15),
    ("avatars: reconcile storage", "avatars.reconcile.scheduled_reconcile", "H", None),
]


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func, schedule_type, minutes in SCHEDULES:
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": schedule_type,
                "minutes": minutes,
                "repeats": -1,
            },
        )


def remove_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name__in=[row[0] for row in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("avatars", "0002_webhook_event"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
