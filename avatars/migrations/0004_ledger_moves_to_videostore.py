# The upload ledger now belongs to the videostore app (same table); the scheduled delete retry
# follows its module.

from django.db import migrations


def rename_schedule(apps, schema_editor, old="avatars.ledger.", new="videostore.ledger."):
    Schedule = apps.get_model("django_q", "Schedule")
    for schedule in Schedule.objects.filter(func__startswith=old):
        schedule.func = new + schedule.func[len(old):]
        schedule.save(update_fields=["func"])


def rename_schedule_back(apps, schema_editor):
    rename_schedule(apps, schema_editor, old="videostore.ledger.", new="avatars.ledger.")


class Migration(migrations.Migration):
    dependencies = [
        ("avatars", "0003_schedules"),
        ("videostore", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="UploadLedgerEntry")],
            database_operations=[],
        ),
        migrations.RunPython(rename_schedule, rename_schedule_back),
    ]
