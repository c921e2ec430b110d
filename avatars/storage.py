"""The avatar video storage service: the one place that writes, reads and deletes videos.

Videos are streamed into the configured storage (Supabase through its S3 endpoint, or local
files) through a reader that verifies them on the way: really an MP4, no larger than the cap,
exactly as long as announced. A failed check raises before the upload completes, so nothing
is stored. Memory stays bounded whatever the size: no whole-file buffer anywhere.
"""

import hashlib
import io
import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, default_storage
from django.utils import timezone

from avatars.errors import AvatarVideoError, InvalidContentData, InvalidVideo, StorageUnavailable
from avatars.mp4 import Mp4Inspector
from topics.cleaners import validate_storage_path

logger = logging.getLogger(__name__)

STORAGE_ERRORS = (BotoCoreError, ClientError, OSError)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_ID_CHARS = 64


@dataclass(frozen=True)
class StoredVideo:
    """What was stored, measured from the bytes themselves."""

    file_url: str
    file_name: str
    file_size: int
    file_type: str
    storage_path: str
    uploaded_at: datetime
    checksum: str
    duration_seconds: float | None
    width: int | None
    height: int | None

    def as_metadata(self) -> dict:
        """The original system's metadata object (camelCase), plus what we read from the file."""
        return {
            "fileUrl": self.file_url,
            "fileName": self.file_name,
            "fileSize": self.file_size,
            "fileType": self.file_type,
            "storagePath": self.storage_path,
            "uploadedAt": self.uploaded_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "checksum": self.checksum,
            "duration_seconds": self.duration_seconds,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True)
class StoredObject:
    """One object found when listing storage."""

    storage_path: str
    size: int
    last_modified: datetime | None


def safe_id(value: str) -> str:
    """A provider id reduced to [A-Za-z0-9_-], bounded, never empty."""
    cleaned = _UNSAFE.sub("_", str(value)).strip("_")[:MAX_ID_CHARS]
    return cleaned or "video"


class VerifyingReader(io.RawIOBase):
    """A read-only, non-seekable stream over chunks that checks the video as it is read."""

    def __init__(self, chunks: Iterable[bytes], *, max_bytes: int, expected_size: int | None):
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self._eof = False
        self.max_bytes = max_bytes
        self.expected_size = expected_size
        self.bytes_read = 0
        self.sha256 = hashlib.sha256()
        self.inspector = Mp4Inspector()
        self.info = None
        if expected_size is not None and expected_size > max_bytes:
            raise InvalidVideo(
                f"The video is {expected_size} bytes; the limit is {max_bytes} bytes."
            )

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def _accept(self, chunk: bytes) -> None:
        self.bytes_read += len(chunk)
        if self.bytes_read > self.max_bytes:
            raise InvalidVideo(f"The video is larger than the limit of {self.max_bytes} bytes.")
        if self.expected_size is not None and self.bytes_read > self.expected_size:
            raise InvalidVideo(
                f"The download sent more bytes than announced ({self.expected_size})."
            )
        self.inspector.feed(chunk)
        self.sha256.update(chunk)
        self._buffer += chunk

    def _finish(self) -> None:
        self._eof = True
        if self.expected_size is not None and self.bytes_read != self.expected_size:
            raise InvalidVideo(
                f"The download was truncated: {self.bytes_read} of {self.expected_size} bytes."
            )
        self.info = self.inspector.finish()

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size is None or size < 0 or len(self._buffer) < size):
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._finish()
                break
            if chunk:
                self._accept(chunk)
        if size is None or size < 0 or size >= len(self._buffer):
            out = bytes(self._buffer)
            self._buffer.clear()
        else:
            out = bytes(self._buffer[:size])
            del self._buffer[:size]
        return out

    def readinto(self, target) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)


def _chunks_of(stream, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    if hasattr(stream, "read"):
        while data := stream.read(chunk_size):
            yield data
    else:
        yield from stream


class VideoStorage:
    """Avatar videos in the configured Django storage (Supabase S3 or local files)."""

    def __init__(self, storage: Storage | None = None):
        self._storage = storage

    @property
    def storage(self) -> Storage:
        return self._storage or default_storage

    def new_storage_path(self, video_id: str) -> str:
        """`avatar_videos/avatar_<id>_<random>.mp4`: sanitised, and never reused."""
        return (
            f"{settings.AVATAR_VIDEO_PREFIX}avatar_{safe_id(video_id)}_{secrets.token_hex(4)}.mp4"
        )

    def upload_video(
        self,
        stream,
        file_name: str,
        content_type: str = "video/mp4",
        *,
        storage_path: str | None = None,
        expected_size: int | None = None,
        max_bytes: int | None = None,
    ) -> StoredVideo:
        """Stream a video into storage, verifying it on the way; returns its metadata."""
        storage_path = storage_path or self.new_storage_path(file_name.rsplit(".", 1)[0])
        try:
            validate_storage_path(storage_path)
        except InvalidContentData as error:
            raise InvalidVideo(f"Refusing to store the video: {error}") from error
        if content_type != "video/mp4":
            raise InvalidVideo(f"Only video/mp4 can be stored, not {content_type!r}.")
        reader = VerifyingReader(
            _chunks_of(stream),
            max_bytes=max_bytes or settings.AVATAR_VIDEO_MAX_BYTES,
            expected_size=expected_size,
        )
        content = File(reader, name=storage_path.rsplit("/", 1)[-1])
        content.content_type = content_type
        try:
            saved_name = self.storage.save(storage_path, content)
            if saved_name != storage_path:
                self._forget(saved_name)
                raise StorageUnavailable(f"Storage renamed {storage_path!r} to {saved_name!r}.")
            stored_size = self.storage.size(storage_path)
        except AvatarVideoError:
            self._forget(storage_path)
            raise
        except STORAGE_ERRORS as error:
            self._forget(storage_path)
            raise StorageUnavailable(f"Storage is unavailable: {_describe(error)}.") from error
        if stored_size != reader.bytes_read:
            self._forget(storage_path)
            raise InvalidVideo(
                f"Storage holds {stored_size} bytes but {reader.bytes_read} were sent."
            )
        info = reader.info
        stored = StoredVideo(
            file_url=self.storage.url(storage_path),
            file_name=storage_path.rsplit("/", 1)[-1],
            file_size=reader.bytes_read,
            file_type=content_type,
            storage_path=storage_path,
            uploaded_at=timezone.now(),
            checksum=reader.sha256.hexdigest(),
            duration_seconds=info.duration_seconds if info else None,
            width=info.width if info else None,
            height=info.height if info else None,
        )
        logger.info("video stored", extra={"storage_path": storage_path, "size": stored.file_size})
        return stored

    def _forget(self, storage_path: str) -> None:
        """Best effort after a failed upload; the caller's ledger entry covers a failure here."""
        try:
            self.storage.delete(storage_path)
        except STORAGE_ERRORS:
            logger.warning("cleanup after a failed upload failed", extra={"path": storage_path})

    def delete_video(self, storage_path: str) -> None:
        """Delete the object; a missing object is fine. StorageUnavailable when unreachable."""
        validate_storage_path(storage_path)
        try:
            self.storage.delete(storage_path)
        except FileNotFoundError:
            return
        except STORAGE_ERRORS as error:
            raise StorageUnavailable(f"Storage is unavailable: {_describe(error)}.") from error

    def exists(self, storage_path: str) -> bool:
        try:
            return self.storage.exists(storage_path)
        except STORAGE_ERRORS as error:
            raise StorageUnavailable(f"Storage is unavailable: {_describe(error)}.") from error

    def signed_url(self, storage_path: str, expires_in: int) -> str:
        """An expiring URL that opens exactly this object (private buckets)."""
        validate_storage_path(storage_path)
        return self.storage.signed_url(storage_path, expire=int(expires_in))

    def public_or_signed_url(self, storage_path: str) -> str:
        """What a player should load: the public URL, or a signed one for a private bucket."""
        if getattr(self.storage, "public_bucket", True):
            return self.storage.url(storage_path)
        return self.signed_url(storage_path, settings.SIGNED_URL_EXPIRES_SECONDS)

    def iter_objects(self, prefix: str | None = None) -> Iterator[StoredObject]:
        """Every object under `prefix`, in binary key order, one page at a time."""
        prefix = settings.AVATAR_VIDEO_PREFIX if prefix is None else prefix
        try:
            if hasattr(self.storage, "bucket_name"):
                yield from self._iter_s3(prefix)
            else:
                yield from self._iter_local(prefix)
        except STORAGE_ERRORS as error:
            raise StorageUnavailable(f"Storage is unavailable: {_describe(error)}.") from error

    def _iter_s3(self, prefix: str) -> Iterator[StoredObject]:
        client = self.storage.connection.meta.client
        paginator = client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.storage.bucket_name, Prefix=prefix, PaginationConfig={"PageSize": 1000}
        )
        for page in pages:
            for entry in page.get("Contents", []):
                yield StoredObject(entry["Key"], entry["Size"], entry.get("LastModified"))

    def _iter_local(self, prefix: str) -> Iterator[StoredObject]:
        root = os.path.join(self.storage.location, prefix)
        if not os.path.isdir(root):
            return

        def walk(directory: str, relative: str) -> Iterator[StoredObject]:
            with os.scandir(directory) as entries:
                ordered = sorted(entries, key=lambda e: e.name + ("/" if e.is_dir() else ""))
            for entry in ordered:
                name = f"{relative}{entry.name}"
                if entry.is_dir():
                    yield from walk(entry.path, name + "/")
                else:
                    stat = entry.stat()
                    modified = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
                    yield StoredObject(name, stat.st_size, modified)

        yield from walk(root, prefix)


def _describe(error: Exception) -> str:
    """One line about a storage error, without credentials or signed query strings."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "error")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        return f"{code} {status}".strip()
    return error.__class__.__name__
