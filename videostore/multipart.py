"""Unfinished multipart uploads under the avatar video prefix: listed and aborted.

django-storages sends a large video in multipart parts; a process killed (or a link cut)
mid-upload leaves the parts on the server, invisible to an object listing and billed until
someone aborts them (Supabase aborts after 24 h; moto and plain S3 never do). Local file
storage has no multipart uploads.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import ClientError
from django.conf import settings

from videostore.ledger import upload_lease_is_live
from videostore.s3errors import STORAGE_ERRORS, _unavailable
from videostore.storage import VideoStorage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MultipartUpload:
    """One unfinished multipart upload; `storage_path` is relative to the storage location."""

    storage_path: str
    upload_id: str
    initiated: datetime | None


def upload_state(upload: MultipartUpload, *, cutoff: datetime) -> str:
    """`young` (started after `cutoff`: probably still sending parts), `in_flight` (its
    owner holds a live lease in the upload ledger, whatever its age) or `stale`."""
    if upload.initiated is not None and upload.initiated > cutoff:
        return "young"
    if upload_lease_is_live(upload.storage_path):
        return "in_flight"
    return "stale"


def _bucket_storage(video_storage: VideoStorage | None):
    """The S3 backend behind `video_storage`, or None for storage without buckets."""
    storage = (video_storage or VideoStorage()).storage
    return storage if hasattr(storage, "bucket_name") else None


def _location(storage) -> str:
    return (getattr(storage, "location", "") or "").strip("/")


def iter_multipart_uploads(
    *,
    prefix: str | None = None,
    video_storage: VideoStorage | None = None,
    page_size: int = 1000,
) -> Iterator[MultipartUpload]:
    """Every unfinished multipart upload under `prefix` (the avatar video prefix by default),
    fetched page by page. Raises StorageUnavailable."""
    storage = _bucket_storage(video_storage)
    if storage is None:
        return
    prefix = settings.AVATAR_VIDEO_PREFIX if prefix is None else prefix
    location = _location(storage)
    strip = len(location) + 1 if location else 0
    try:
        paginator = storage.connection.meta.client.get_paginator("list_multipart_uploads")
        pages = paginator.paginate(
            Bucket=storage.bucket_name,
            Prefix=f"{location}/{prefix}" if location else prefix,
            PaginationConfig={"PageSize": page_size},
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                yield MultipartUpload(
                    storage_path=upload["Key"][strip:],
                    upload_id=upload["UploadId"],
                    initiated=upload.get("Initiated"),
                )
    except STORAGE_ERRORS as error:
        raise _unavailable(error) from error


def list_multipart_uploads(
    *, prefix: str | None = None, video_storage: VideoStorage | None = None
) -> list[MultipartUpload]:
    """The unfinished multipart uploads under `prefix`, as a list."""
    return list(iter_multipart_uploads(prefix=prefix, video_storage=video_storage))


def abort_multipart_upload(
    upload: MultipartUpload, *, video_storage: VideoStorage | None = None
) -> bool:
    """Abort the upload and free its parts; False when it had already ended (completed or
    aborted by someone else). Raises StorageUnavailable."""
    storage = _bucket_storage(video_storage)
    if storage is None:
        return False
    location = _location(storage)
    key = f"{location}/{upload.storage_path}" if location else upload.storage_path
    try:
        storage.connection.meta.client.abort_multipart_upload(
            Bucket=storage.bucket_name, Key=key, UploadId=upload.upload_id
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchUpload":
            return False
        raise _unavailable(error) from error
    except STORAGE_ERRORS as error:
        raise _unavailable(error) from error
    logger.info("aborted the unfinished multipart upload of %s", upload.storage_path)
    return True
