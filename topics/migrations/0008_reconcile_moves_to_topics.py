# Reconciliation compares storage with topics' rows and needs nothing of avatars: it now lives
# in topics (topics/reconcile.py); its periodic task follows the module.

from django.db import migrations

OLD, NEW = "avatars.reconcile.scheduled_reconcile", "topics.reconcile.scheduled_reconcile"


def rename_schedule(apps, schema_editor, old=OLD, new=NEW):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(func=old).update(func=new)


def rename_schedule_back(apps, schema_editor):
    rename_schedule(apps, schema_editor, old=NEW, new=OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("topics", "0007_storage_bucket"),
        ("avatars", "0003_schedules"),
    ]

    operations = [migrations.RunPython(rename_schedule, rename_schedule_back)]
