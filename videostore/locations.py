"""Where a stored object can be: a bucket of the configured S3 endpoint, or local files.

A row records its location (`storage_bucket`): a bucket's name, or LOCAL for files under
MEDIA_ROOT. Every location can be opened whatever storage is configured, so a row is read,
served and deleted where it is, and a library can move between locations (topics.migration).
"""

from django.conf import settings
from django.core.files.storage import Storage, storages

from videostore.errors import StorageUnavailable

#: The location of local files (MEDIA_ROOT), beside bucket names; no bucket may be named so.
LOCAL = "local"
LOCAL_BACKEND = "contentstudio.storage.LocalMediaStorage"


def configured_location() -> str:
    """The location new videos are stored in: the configured bucket, or LOCAL."""
    return settings.STORAGES["default"].get("OPTIONS", {}).get("bucket_name") or LOCAL


def bucket_is_public(bucket: str) -> bool:
    """Whether a bucket serves public URLs: the configured bucket by SUPABASE_BUCKET_PUBLIC,
    others by SUPABASE_PUBLIC_BUCKETS / SUPABASE_PRIVATE_BUCKETS, else like the configured."""
    if bucket in settings.SUPABASE_PRIVATE_BUCKETS:
        return False
    if bucket in settings.SUPABASE_PUBLIC_BUCKETS:
        return True
    return bool(settings.SUPABASE_BUCKET_PUBLIC)


def location_storage(location: str) -> Storage:
    """A Django storage for a location that is not the configured one."""
    config = settings.STORAGES["default"]
    if location == LOCAL:
        # Local files beside a bucket: served by the signed-media view (public URLs under
        # /media/ exist only while local files are the configured storage).
        return storages.create_storage({"BACKEND": LOCAL_BACKEND, "OPTIONS": {"public": False}})
    if "bucket_name" not in config.get("OPTIONS", {}):
        raise StorageUnavailable(f"Bucket {location!r} cannot be reached with local storage.")
    options = {**config["OPTIONS"], "bucket_name": location,
               "public_bucket": bucket_is_public(location)}  # fmt: skip
    return storages.create_storage({**config, "OPTIONS": options})
