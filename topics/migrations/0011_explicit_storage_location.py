"""Every stored video names its location: rows stored before locations were recorded (an
empty `storage_bucket`) are in the location configured when this migration runs (the
configured bucket, or "local" for files under MEDIA_ROOT). Run it before changing storage
settings; afterwards an empty location means "no stored object"."""

from django.conf import settings
from django.db import migrations


def _configured_location() -> str:
    # As videostore.locations.configured_location() says today; copied, as migrations are.
    return settings.STORAGES["default"].get("OPTIONS", {}).get("bucket_name") or "local"


def record_locations(apps, schema_editor):
    ContentItem = apps.get_model("topics", "ContentItem")
    location = _configured_location()
    legacy = ContentItem.objects.filter(storage_bucket="").exclude(storage_path="")
    batch = []
    for item in legacy.only("pk", "content_data").iterator(chunk_size=500):
        item.storage_bucket = location
        if isinstance(item.content_data, dict) and item.content_data.get("storagePath"):
            item.content_data = {**item.content_data, "storageBucket": location}
        batch.append(item)
        if len(batch) == 500:
            ContentItem.objects.bulk_update(batch, ["storage_bucket", "content_data"])
            batch = []
    ContentItem.objects.bulk_update(batch, ["storage_bucket", "content_data"])


class Migration(migrations.Migration):
    # After 0010 (posters and captions) once both are merged.
    dependencies = [("topics", "0010_poster_and_captions")]

    operations = [migrations.RunPython(record_locations, migrations.RunPython.noop)]
