"""The avatar video storage service: the one place that writes, lists and deletes videos.

Videos stream into the configured Django storage (Supabase through its S3 endpoint, or local
files) through a reader that verifies them as it goes: an MP4 by its bytes, within the size
cap, exactly as long as announced. A failed check raises inside the backend's read, before
the upload completes, so nothing is stored; memory stays bounded whatever the file size.
"""

import hashlib
import logging
import os
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import BinaryIO
from urllib.parse import quote

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, default_storage
from django.utils import timezone

from videostore.errors import (
    InvalidStoragePath,
    InvalidVideo,
    StorageUnavailable,
)
from videostore.locations import LOCAL, location_storage
from videostore.reader import MP4_TYPE, VerifyingReader
from videostore.s3errors import STORAGE_ERRORS, _describe, _loggable, _unavailable

logger = logging.getLogger(__name__)

#: The storage metadata a row keeps for its object (the original system's camelCase names):
#: all of them or none.
STORAGE_METADATA_FIELDS = ("fileUrl", "fileName", "fileSize", "fileType", "storagePath",
                           "uploadedAt")  # fmt: skip
#: What the bytes themselves told us while they streamed in.
MEASURED_FIELDS = ("checksum", "duration_seconds", "width", "height")
#: How long the signed URL ffmpeg reads a stored video from (for its poster) stays valid.
FRAME_SOURCE_SECONDS = 600
MAX_ID_CHARS = 64
MAX_FILE_NAME_CHARS = 128
MAX_KEY_BYTES = 1024  # S3's limit on key length
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]+")
_UNSAFE_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class StoredVideo:
    """A stored video, measured from the bytes that were sent."""

    file_url: str
    file_name: str
    file_size: int
    file_type: str
    storage_path: str
    uploaded_at: datetime
    checksum: str  # sha256, hex
    duration_seconds: float | None
    width: int | None
    height: int | None
    storage_bucket: str = ""  # the bucket's name, or LOCAL for local files

    def as_metadata(self) -> dict:
        """The original system's metadata (camelCase keys), plus what the file itself says."""
        return {
            "fileUrl": self.file_url,
            "fileName": self.file_name,
            "fileSize": self.file_size,
            "fileType": self.file_type,
            "storagePath": self.storage_path,
            "uploadedAt": self.uploaded_at.astimezone(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "storageBucket": self.storage_bucket,
            "checksum": self.checksum,
            "duration_seconds": self.duration_seconds,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True)
class StoredCompanion:
    """A small file stored beside a video (its poster, its captions), read back and checked."""

    storage_path: str
    file_url: str
    size: int
    sha256: str
    content_type: str
    storage_bucket: str = ""  # "" for local files


@dataclass(frozen=True)
class StoredObject:
    """One object found when listing storage."""

    storage_path: str
    size: int
    last_modified: datetime | None


def _ascii(value: str) -> str:
    return unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")


def safe_video_id(video_id: object) -> str:
    """A provider's video id reduced to [A-Za-z0-9_-], at most 64 characters, never empty."""
    cleaned = _UNSAFE_ID.sub("_", _ascii(str(video_id))).strip("_-")[:MAX_ID_CHARS]
    return cleaned.strip("_-") or "video"


def safe_file_name(file_name: str, fallback: str) -> str:
    """A display file name reduced to [A-Za-z0-9._-], without directories or leading dots."""
    base = re.split(r"[/\\]", str(file_name))[-1]
    cleaned = _UNSAFE_FILE_NAME.sub("_", _ascii(base)).strip("._-")
    if len(cleaned) > MAX_FILE_NAME_CHARS:
        stem, dot, extension = cleaned.rpartition(".")
        if dot and 0 < len(extension) <= 8:
            stem = stem[: MAX_FILE_NAME_CHARS - len(extension) - 1].rstrip("._-")
            cleaned = f"{stem}.{extension}"
        else:
            cleaned = cleaned[:MAX_FILE_NAME_CHARS]
    return cleaned or fallback


#: Characters no file name may hold on the systems people download to, and controls.
_NOT_IN_FILE_NAMES = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')
# The quoted `filename` fallback: plain ASCII that no parser splits or unescapes.
_NOT_IN_ASCII_FALLBACK = re.compile(r"[^A-Za-z0-9 ._()'+&!#$~-]+")
DOWNLOAD_STEM_MAX_CHARS = 120


def download_file_name(title: str, extension: str = ".mp4") -> str:
    """The readable name a download gets from a title: the title itself (any script), without
    the characters file systems refuse, at most DOWNLOAD_STEM_MAX_CHARS before `extension`."""
    stem = " ".join(_NOT_IN_FILE_NAMES.sub(" ", unicodedata.normalize("NFC", title)).split())
    stem = stem[:DOWNLOAD_STEM_MAX_CHARS].strip(" .")
    return f"{stem or 'video'}{extension}"


def attachment_disposition(file_name: str) -> str:
    """`Content-Disposition: attachment` naming `file_name` (RFC 6266): an ASCII fallback for
    old clients in `filename`, the UTF-8 name percent-encoded in `filename*` (RFC 5987)."""
    stem, dot, extension = file_name.rpartition(".")
    if not dot:
        stem, extension = file_name, ""
    ascii_stem = " ".join(_NOT_IN_ASCII_FALLBACK.sub(" ", _ascii(stem)).split()).strip(" .")
    fallback = f"{ascii_stem or 'video'}{dot}{_NOT_IN_ASCII_FALLBACK.sub('', _ascii(extension))}"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


def validate_storage_path(storage_path: str) -> str:
    """Return the path if it is a plain key under the avatar video prefix; else raise."""
    prefix = settings.AVATAR_VIDEO_PREFIX
    if not isinstance(storage_path, str) or not storage_path.startswith(prefix):
        raise InvalidStoragePath(f"A storage path must start with {prefix!r}.")
    parts = storage_path.split("/")
    if (
        PurePosixPath(storage_path).is_absolute()
        or "\\" in storage_path
        or any(ord(char) < 32 or ord(char) == 127 for char in storage_path)
        or any(part in {"", ".", ".."} for part in parts)
        or len(storage_path.encode("utf-8")) > MAX_KEY_BYTES
    ):
        raise InvalidStoragePath(f"{storage_path[:80]!r} is not a plain path under {prefix!r}.")
    return storage_path


def _mp4_type(content_type: str) -> str:
    declared = str(content_type or "").split(";")[0].strip().lower()
    if declared != MP4_TYPE:
        shown = re.sub(r"[^\w/.+-]", "", declared)[:60]
        raise InvalidVideo(f"Only MP4 videos are stored, not {shown or 'untyped'} files.")
    return MP4_TYPE


class VideoStorage:
    """Avatar videos in the configured Django storage: streamed in verified, listed, deleted.

    The only module that touches stored videos; it speaks Django storage and boto3 and
    returns `StoredVideo` / `StoredObject`. Storage failures become StorageUnavailable.
    """

    def __init__(self, storage: Storage | None = None):
        self._storage = storage
        self._other_buckets: dict[str, VideoStorage] = {}

    @property
    def storage(self) -> Storage:
        # Resolved at call time, so settings overrides (tests, management commands) apply.
        return self._storage if self._storage is not None else default_storage

    @property
    def bucket(self) -> str:
        """Where this storage's videos are: its bucket's name, or LOCAL for local files."""
        return getattr(self.storage, "bucket_name", "") or LOCAL

    @property
    def public(self) -> bool:
        """Players get public URLs (True) or signed, expiring ones (False)."""
        return bool(getattr(self.storage, "public_bucket", False))

    def in_bucket(self, bucket: str) -> "VideoStorage":
        """The videos of `bucket`, a row's or a ledger entry's location: a bucket's name or
        LOCAL (files under MEDIA_ROOT). This storage when it is that location or none is
        named (rows from before locations were recorded), else the configured S3 endpoint
        and credentials pointed at `bucket`, or local files."""
        if not bucket or bucket == self.bucket:
            return self
        if bucket not in self._other_buckets:  # e.g. a page of cards: one client per bucket
            self._other_buckets[bucket] = VideoStorage(location_storage(bucket))
        return self._other_buckets[bucket]

    def new_storage_path(self, video_id: str) -> str:
        """A fresh key, `avatar_videos/avatar_<safe id>_<8 hex>.mp4`; keys are never reused."""
        name = f"avatar_{safe_video_id(video_id)}_{secrets.token_hex(4)}.mp4"
        return validate_storage_path(f"{settings.AVATAR_VIDEO_PREFIX}{name}")

    def new_companion_path(self, video_path: str, extension: str) -> str:
        """A fresh key beside the video's: `<video key's stem>_<8 hex>.<extension>` (never
        reused, like every key)."""
        stem = validate_storage_path(video_path).rpartition(".")[0]
        return validate_storage_path(f"{stem}_{secrets.token_hex(4)}.{extension}")

    def upload_bytes(
        self, data: bytes, *, storage_path: str, content_type: str, key_checked: bool = False,
        size_checked_by_caller: bool = False,
    ) -> StoredCompanion:  # fmt: skip
        """Store a small file (a poster, captions) at a fresh key and check what storage holds.
        Raises StorageUnavailable; nothing is left stored, as far as storage allows.

        `key_checked`: the caller found the key unused (`stored_sizes`, one listing for a
        unit's keys) and skips the look-up here; `size_checked_by_caller`: the caller checks
        the stored size (`stored_sizes` after the unit's uploads) instead of a look-up here."""
        validate_storage_path(storage_path)
        if not key_checked and self.exists(storage_path):
            raise InvalidStoragePath(f"{storage_path!r} is taken; storage keys are never reused.")
        content = ContentFile(data, name=storage_path.rsplit("/", 1)[-1])
        content.content_type = content_type
        try:
            stored_name = self.storage.save(storage_path, content)
            stored_size = len(data) if size_checked_by_caller else self.storage.size(storage_path)
        except STORAGE_ERRORS as error:
            reason = _describe(error)
            logger.warning("upload of %s failed: %s", storage_path, reason,
                           extra={"storage_path": storage_path, "error": reason})  # fmt: skip
            self._discard(storage_path)
            raise _unavailable(error) from error
        if stored_name != storage_path or stored_size != len(data):
            self._discard(stored_name)
            raise StorageUnavailable(
                f"Storage holds {stored_size} bytes at {stored_name} but {len(data)} were sent "
                f"to {storage_path}; the copy was removed."
            )
        logger.info("%s stored at %s (%d bytes)", content_type, storage_path, len(data),
                    extra={"storage_path": storage_path, "size": len(data)})  # fmt: skip
        return StoredCompanion(
            storage_path=storage_path,
            file_url=self.public_or_signed_url(storage_path),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content_type=content_type,
            storage_bucket=self.bucket,
        )

    def read_bytes(self, storage_path: str, *, max_bytes: int) -> bytes:
        """A small stored object's bytes (captions); more than `max_bytes` is refused."""
        validate_storage_path(storage_path)
        try:
            with self.storage.open(storage_path, "rb") as handle:
                data = handle.read(max_bytes + 1)
        except FileNotFoundError:
            raise
        except STORAGE_ERRORS as error:
            raise _unavailable(error) from error
        if len(data) > max_bytes:
            raise InvalidVideo(f"{storage_path} is larger than {max_bytes} bytes.")
        return data

    def frame_source(self, storage_path: str) -> str:
        """Where ffmpeg reads the stored video: the local file, or a short-lived signed URL
        (never logged: it carries its signature)."""
        validate_storage_path(storage_path)
        if not hasattr(self.storage, "bucket_name"):
            return self.storage.path(storage_path)
        return self.signed_url(storage_path, FRAME_SOURCE_SECONDS)

    def upload_video(
        self,
        stream: Iterable[bytes] | BinaryIO,
        file_name: str,
        content_type: str = MP4_TYPE,
        *,
        storage_path: str | None = None,
        expected_size: int | None = None,
        max_bytes: int | None = None,
        on_bytes: Callable[[int], None] | None = None,
        key_checked: bool = False,
        size_checked_by_caller: bool = False,
    ) -> StoredVideo:
        """Stream a video (chunks or a binary file) into storage, verifying it on the way.

        Raises InvalidVideo (not an MP4, too large, truncated, length mismatch) or
        StorageUnavailable; in both cases nothing is left stored, as far as storage allows.
        `key_checked`: the caller found `storage_path` unused (`stored_sizes`);
        `size_checked_by_caller`: the caller checks the stored size (`stored_sizes`, with the
        rest of its unit) instead of a look-up here.
        """
        storage_path = validate_storage_path(
            storage_path or self.new_storage_path(PurePosixPath(str(file_name)).stem)
        )
        file_type = _mp4_type(content_type)
        limit = settings.AVATAR_VIDEO_MAX_BYTES if max_bytes is None else max_bytes
        if expected_size is not None and expected_size > limit:
            raise InvalidVideo(f"The video is {expected_size} bytes; the limit is {limit}.")
        if not key_checked and self.exists(storage_path):
            raise InvalidStoragePath(f"{storage_path!r} is taken; storage keys are never reused.")
        base_name = storage_path.rsplit("/", 1)[-1]
        reader = VerifyingReader(
            stream,
            name=base_name,
            max_bytes=limit,
            expected_size=expected_size,
            on_bytes=on_bytes,
        )
        stored_name = storage_path
        try:
            stored_name = self.storage.save(storage_path, reader)
            if stored_name != storage_path:
                raise StorageUnavailable("Storage saved the video under another name.")
            if reader.info is None:
                raise StorageUnavailable("Storage stopped reading the video before its end.")
            stored_size = (reader.bytes_read if size_checked_by_caller
                           else self.storage.size(storage_path))  # fmt: skip
        except BaseException as error:
            # A check that failed while the client was sending reaches us wrapped in the
            # client's own error (a streamed PUT): the reader's failure is the cause.
            cause = reader.failure if reader.failure is not None else error
            reason = _loggable(cause)
            logger.warning(
                "upload of %s failed: %s",
                storage_path,
                reason,
                extra={"storage_path": storage_path, "error": reason},
            )
            self._discard(stored_name)
            if cause is not error:
                raise cause from error
            if error is reader.failure or not isinstance(error, STORAGE_ERRORS):
                raise
            raise _unavailable(error) from error
        if stored_size != reader.bytes_read:
            self._discard(storage_path)
            raise InvalidVideo(
                f"Storage holds {stored_size} bytes but {reader.bytes_read} were sent; "
                "the copy was removed."
            )
        stored = StoredVideo(
            file_url=self.public_or_signed_url(storage_path),
            file_name=safe_file_name(file_name, base_name),
            file_size=reader.bytes_read,
            file_type=file_type,
            storage_path=storage_path,
            uploaded_at=timezone.now(),
            checksum=reader.sha256.hexdigest(),
            duration_seconds=reader.info.duration_seconds,
            width=reader.info.width,
            height=reader.info.height,
            storage_bucket=self.bucket,
        )
        logger.info(
            "video stored at %s (%d bytes)",
            storage_path,
            stored.file_size,
            extra={"storage_path": storage_path, "size": stored.file_size},
        )
        return stored

    def _discard(self, storage_path: str) -> None:
        """Best effort after a failed upload; the caller's upload ledger covers a failure here."""
        try:
            self.storage.delete(storage_path)
        except STORAGE_ERRORS as error:
            reason = _describe(error)
            logger.warning(
                "cleanup of %s after a failed upload failed; the ledger will retry: %s",
                storage_path,
                reason,
                extra={"storage_path": storage_path, "error": reason},
            )

    def delete_video(self, storage_path: str) -> None:
        """Delete the object; deleting a missing object is fine (idempotent)."""
        validate_storage_path(storage_path)
        try:
            self.storage.delete(storage_path)
        except FileNotFoundError:
            return
        except STORAGE_ERRORS as error:
            raise _unavailable(error) from error

    def exists(self, storage_path: str) -> bool:
        """True when an object is stored at this path."""
        validate_storage_path(storage_path)
        try:
            return self.storage.exists(storage_path)
        except STORAGE_ERRORS as error:
            raise _unavailable(error) from error

    def stored_sizes(self, storage_paths: list[str]) -> dict[str, int]:
        """The size of each of `storage_paths` that storage holds (absent keys are left out):
        in a bucket one listing of the keys' common prefix (a unit's keys share their video's
        stem), for local files one look-up each."""
        for storage_path in storage_paths:
            validate_storage_path(storage_path)
        if not hasattr(self.storage, "bucket_name"):
            sizes = {path: self.size(path) for path in storage_paths}
            return {path: size for path, size in sizes.items() if size is not None}
        wanted = set(storage_paths)
        prefix = os.path.commonprefix(storage_paths)
        return {
            found.storage_path: found.size
            for found in self.iter_objects(prefix)
            if found.storage_path in wanted
        }

    def size(self, storage_path: str) -> int | None:
        """The stored object's size in bytes, or None when there is no such object."""
        validate_storage_path(storage_path)
        try:
            return self.storage.size(storage_path)
        except FileNotFoundError:
            return None
        except STORAGE_ERRORS as error:
            raise _unavailable(error) from error

    def signed_url(self, storage_path: str, expires_in: int) -> str:
        """An expiring URL that opens exactly this object, for `expires_in` seconds."""
        validate_storage_path(storage_path)
        if int(expires_in) < 1:
            raise ValueError("A signed URL must be valid for at least one second.")
        try:
            return self.storage.signed_url(storage_path, expire=int(expires_in))
        except STORAGE_ERRORS as error:
            raise _unavailable(error) from error

    def download_url(self, storage_path: str, file_name: str, expires_in: int | None = None) -> str:
        """A signed URL (public buckets too) whose response is an attachment named
        `file_name`: `response-content-disposition` on S3, the signed media view locally."""
        validate_storage_path(storage_path)
        expires_in = int(expires_in or settings.SIGNED_URL_EXPIRES_SECONDS)
        try:
            disposition = attachment_disposition(file_name)
            return self.storage.signed_url(
                storage_path, expire=expires_in, content_disposition=disposition
            )
        except STORAGE_ERRORS as error:
            raise _unavailable(error) from error

    def public_or_signed_url(self, storage_path: str) -> str:
        """What a player loads: the public URL, or a signed one when the bucket is private."""
        validate_storage_path(storage_path)
        if self.public:
            return self.storage.url(storage_path)
        return self.signed_url(storage_path, settings.SIGNED_URL_EXPIRES_SECONDS)

    def iter_objects(
        self, prefix: str | None = None, *, page_size: int = 1000
    ) -> Iterator[StoredObject]:
        """Every object under `prefix` in key order, fetched page by page (bounded memory)."""
        prefix = settings.AVATAR_VIDEO_PREFIX if prefix is None else prefix
        try:
            if hasattr(self.storage, "bucket_name"):
                yield from self._iter_bucket(prefix, page_size)
            else:
                yield from self._iter_directory(prefix)
        except STORAGE_ERRORS as error:
            raise _unavailable(error) from error

    def _iter_bucket(self, prefix: str, page_size: int) -> Iterator[StoredObject]:
        location = (getattr(self.storage, "location", "") or "").strip("/")
        strip = len(location) + 1 if location else 0
        paginator = self.storage.connection.meta.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.storage.bucket_name,
            Prefix=f"{location}/{prefix}" if location else prefix,
            PaginationConfig={"PageSize": page_size},
        )
        for page in pages:
            for entry in page.get("Contents", []):
                yield StoredObject(entry["Key"][strip:], entry["Size"], entry.get("LastModified"))

    def _iter_directory(self, prefix: str) -> Iterator[StoredObject]:
        # S3 lists keys in binary order; sorting each directory with "/" after a directory's
        # name gives the same order, holding one directory's names at a time.
        base = prefix.rpartition("/")[0]
        root = self.storage.path(base) if base else self.storage.location
        yield from self._walk(root, f"{base}/" if base else "", prefix)

    def _walk(self, directory: str, relative: str, prefix: str) -> Iterator[StoredObject]:
        try:
            with os.scandir(directory) as scan:
                entries = sorted(
                    ((entry.name + ("/" if entry.is_dir() else ""), entry) for entry in scan),
                    key=lambda pair: pair[0],
                )
        except FileNotFoundError:
            return
        for key_name, entry in entries:
            key = relative + key_name
            if key_name.endswith("/"):
                if key.startswith(prefix) or prefix.startswith(key):
                    yield from self._walk(entry.path, key, prefix)
            elif key.startswith(prefix):
                stat = entry.stat()
                modified = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
                yield StoredObject(key, stat.st_size, modified)
