# The upload ledger moved here from the avatars app; its table (avatars_uploadledgerentry)
# already exists, so this migration only records the model in this app's state.

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("avatars", "0003_schedules")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="UploadLedgerEntry",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("storage_path", models.CharField(max_length=512, unique=True)),
                        ("intent", models.CharField(choices=[("upload", "Upload in flight"), ("delete", "Delete pending")], default="upload", max_length=16)),
                        ("reason", models.CharField(blank=True, max_length=255)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("last_error", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        "verbose_name": "upload ledger entry",
                        "verbose_name_plural": "upload ledger",
                        "ordering": ["created_at"],
                        "db_table": "avatars_uploadledgerentry",
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
