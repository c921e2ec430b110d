"""Cleaners for `ContentItem.content_data`: keep the documented fields, check their types.

An avatar video's content_data (camelCase keys kept from the original system):
    script, videoUrl, videoId, duration_seconds,
    fileUrl, fileName, fileSize, fileType, storagePath, uploadedAt   (storage metadata)
    storageBucket          (the location: a bucket, or "local"; absent: the configured one)
    checksum, width, height                                          (read from the bytes)
    posterPath, posterUrl, posterSize, ...; captionsPath, ... (topics/objects.py)
    metadata: {heygen_video_url, storage_fallback, storage_problem, offline_preview,
               pending_video_id}
Storage metadata is all or nothing: a row never points at an object it cannot describe.
"""

import re
from datetime import datetime
from typing import Any

from topics.errors import InvalidContentData
from topics.objects import CAPTIONS_FIELDS, CAPTIONS_REQUIRED, POSTER_FIELDS, POSTER_REQUIRED
from videostore.errors import InvalidStoragePath
from videostore.storage import STORAGE_METADATA_FIELDS, validate_storage_path

_NUMBER = (int, float)
#: S3 bucket names: 3 to 63 lowercase letters, digits, dots and hyphens.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
AVATAR_VIDEO_FIELDS: dict[str, tuple[type, ...]] = {
    "script": (str,),
    "videoUrl": (str,),
    "videoId": (str,),
    "duration_seconds": _NUMBER,
    "fileUrl": (str,),
    "fileName": (str,),
    "fileSize": (int,),
    "fileType": (str,),
    "storagePath": (str,),
    "uploadedAt": (str,),
    "storageBucket": (str,),
    "checksum": (str,),
    "width": (int,),
    "height": (int,),
    **POSTER_FIELDS,
    **CAPTIONS_FIELDS,
}
AVATAR_VIDEO_METADATA_FIELDS: dict[str, tuple[type, ...]] = {
    "heygen_video_url": (str,),
    "storage_fallback": (bool,),
    "storage_problem": (str,),
    "offline_preview": (bool,),
    # A regenerate whose copy fell back: the new render waits at the provider (its link in
    # heygen_video_url) while the stored video stays until the new one is copied in.
    "pending_video_id": (str,),
}


def _check_type(name: str, value: Any, types: tuple[type, ...]) -> None:
    # bool is an int subclass: a size of True is a bug, not a number.
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        expected = " or ".join(t.__name__ for t in types)
        raise InvalidContentData(
            f"content_data.{name} must be {expected}, got {type(value).__name__}."
        )


def _pick(data: dict, fields: dict[str, tuple[type, ...]], prefix: str = "") -> dict:
    cleaned = {}
    for name, types in fields.items():
        value = data.get(name)
        if value is None or value == "":
            continue
        _check_type(prefix + name, value, types)
        cleaned[name] = value
    return cleaned


def _check_storage_metadata(cleaned: dict) -> None:
    present = [name for name in STORAGE_METADATA_FIELDS if name in cleaned]
    if not present:
        return
    missing = [name for name in STORAGE_METADATA_FIELDS if name not in cleaned]
    if missing:
        raise InvalidContentData(
            "content_data has incomplete storage metadata: missing " + ", ".join(missing) + "."
        )
    try:
        validate_storage_path(cleaned["storagePath"])
    except InvalidStoragePath as error:
        raise InvalidContentData(
            f"content_data.storagePath must be a path under the video prefix: {error}"
        ) from error
    if "storageBucket" in cleaned and not _BUCKET.match(cleaned["storageBucket"]):
        raise InvalidContentData("content_data.storageBucket must be a bucket name.")
    if cleaned["fileSize"] < 0:
        raise InvalidContentData("content_data.fileSize must not be negative.")
    try:
        datetime.fromisoformat(cleaned["uploadedAt"].replace("Z", "+00:00"))
    except ValueError as error:
        raise InvalidContentData("content_data.uploadedAt must be an ISO 8601 time.") from error


def _check_companion(cleaned: dict, fields: dict, required: tuple[str, ...], what: str) -> None:
    """A poster or captions entry is complete, under the video prefix, and beside a video."""
    present = [name for name in fields if name in cleaned]
    if not present:
        return
    missing = [name for name in required if name not in cleaned]
    if missing:
        raise InvalidContentData(f"content_data has an incomplete {what}: missing "
                                 + ", ".join(missing) + ".")  # fmt: skip
    if "storagePath" not in cleaned:
        raise InvalidContentData(f"content_data has a {what} but no stored video.")
    try:
        validate_storage_path(cleaned[required[0]])
    except InvalidStoragePath as error:
        raise InvalidContentData(
            f"content_data.{required[0]} must be a path under the video prefix: {error}"
        ) from error
    if cleaned[required[2]] < 0:
        raise InvalidContentData(f"content_data.{required[2]} must not be negative.")


def clean_avatar_video_data(data: Any, *, require_video: bool = True) -> dict:
    """Keep exactly the documented avatar video fields; raise InvalidContentData otherwise."""
    if not isinstance(data, dict):
        raise InvalidContentData("content_data for an avatar video must be an object.")
    cleaned = _pick(data, AVATAR_VIDEO_FIELDS)
    # The seed kept the storage metadata nested too; accept it there when the top level lacks it.
    nested = data.get("metadata") or {}
    if not isinstance(nested, dict):
        raise InvalidContentData("content_data.metadata must be an object.")
    storage_metadata = nested.get("storage_metadata")
    if isinstance(storage_metadata, dict) and "storagePath" not in cleaned:
        cleaned.update(_pick(storage_metadata, AVATAR_VIDEO_FIELDS, "metadata.storage_metadata."))
    _check_storage_metadata(cleaned)
    _check_companion(cleaned, POSTER_FIELDS, POSTER_REQUIRED, "poster")
    _check_companion(cleaned, CAPTIONS_FIELDS, CAPTIONS_REQUIRED, "captions")
    if "storagePath" not in cleaned:
        cleaned.pop("storageBucket", None)  # the bucket of no stored object
    if require_video and not cleaned.get("videoUrl") and not cleaned.get("fileUrl"):
        raise InvalidContentData("content_data for an avatar video needs videoUrl or fileUrl.")
    metadata = _pick(nested, AVATAR_VIDEO_METADATA_FIELDS, "metadata.")
    if metadata:
        cleaned["metadata"] = metadata
    return cleaned


def clean_content_data(content_type: str, data: Any, *, require_video: bool = True) -> dict:
    """Clean content_data for its content type (avatar videos strictly; others as objects).
    `require_video=False` for an item that is waiting for a (new) video."""
    if content_type == "avatar_video":
        return clean_avatar_video_data(data, require_video=require_video)
    if not isinstance(data, dict):
        raise InvalidContentData("content_data must be an object.")
    return data
