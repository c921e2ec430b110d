"""Copies of stored objects between locations (a bucket to another, local files to a bucket
and back): streamed, counted and hashed on the way, through the same upload path as new
videos (one streamed PUT or parts), so memory stays bounded whatever the size."""

import logging
from collections.abc import Callable, Iterator
from contextlib import closing

from botocore.exceptions import ClientError
from storages.utils import clean_name

from videostore.errors import CopyMismatch, StorageUnavailable
from videostore.reader import READ_SIZE, CopyReader
from videostore.s3errors import STORAGE_ERRORS, _loggable, _unavailable
from videostore.storage import VideoStorage, validate_storage_path

logger = logging.getLogger(__name__)


def read_chunks(video_storage: VideoStorage, storage_path: str) -> Iterator[bytes]:
    """The stored object's bytes, 1 MiB at a time (never spooled whole, as django-storages'
    `open` would). Raises FileNotFoundError when there is no such object, else
    StorageUnavailable."""
    validate_storage_path(storage_path)
    storage = video_storage.storage
    try:
        if hasattr(storage, "bucket_name"):
            key = storage._normalize_name(clean_name(storage_path))
            try:
                answer = storage.connection.meta.client.get_object(
                    Bucket=storage.bucket_name, Key=key
                )
            except ClientError as error:
                if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                    raise FileNotFoundError(storage_path) from error
                raise
            with closing(answer["Body"]) as body:
                yield from body.iter_chunks(READ_SIZE)
        else:
            with storage.open(storage_path, "rb") as file:
                while data := file.read(READ_SIZE):
                    yield data
    except FileNotFoundError:
        raise
    except STORAGE_ERRORS as error:
        raise _unavailable(error) from error


def copy_object(
    source: VideoStorage, target: VideoStorage, storage_path: str, *, size: int,
    content_type: str, on_bytes: Callable[[int], None] | None = None,
) -> str:  # fmt: skip
    """Copy one object to `target` under the same key and return the sha256 of the bytes
    sent, which are exactly `size` bytes long and stored at that length (else CopyMismatch).

    The caller holds the key's upload ledger entry in `target`, so whatever is already there
    is an earlier, unfinished copy: it is replaced. Raises FileNotFoundError (no source
    object), CopyMismatch or StorageUnavailable; a failed copy is removed as far as storage
    allows, and the ledger entry covers the rest."""
    validate_storage_path(storage_path)
    name = storage_path.rsplit("/", 1)[-1]
    reader = CopyReader(read_chunks(source, storage_path), name=name, size=size,
                        content_type=content_type, on_bytes=on_bytes)  # fmt: skip
    storage = target.storage
    try:
        if storage.exists(storage_path):
            storage.delete(storage_path)  # local files would be saved under another name
        stored_name = storage.save(storage_path, reader)
        if stored_name != storage_path:
            _remove(target, stored_name)
            raise StorageUnavailable("Storage saved the copy under another name.")
        if not reader.complete:
            raise StorageUnavailable("Storage stopped reading the copy before its end.")
        stored_size = storage.size(storage_path)
    except BaseException as error:
        # A failure of the source or of a check while the client was sending reaches us
        # wrapped in the client's own error: the reader's failure is the cause.
        cause = reader.failure if reader.failure is not None else error
        logger.warning("copy of %s to %s failed: %s", storage_path, target.bucket,
                       _loggable(cause), extra={"storage_path": storage_path})  # fmt: skip
        _remove(target, storage_path)
        if isinstance(cause, STORAGE_ERRORS) and not isinstance(cause, FileNotFoundError):
            raise _unavailable(cause) from cause
        if cause is error:
            raise
        raise cause from error  # a missing source, a mismatch, a lost lease (`on_bytes`)
    if stored_size != size:
        _remove(target, storage_path)
        raise CopyMismatch(f"Storage holds {stored_size} bytes of {storage_path}, not {size}.")
    return reader.sha256.hexdigest()


def _remove(video_storage: VideoStorage, storage_path: str) -> None:
    """Best effort after a failed copy; the caller's upload ledger entry covers a failure."""
    try:
        video_storage.storage.delete(storage_path)
    except STORAGE_ERRORS as error:
        logger.warning("cleanup of the copy %s in %s failed; the ledger will retry: %s",
                       storage_path, video_storage.bucket, _loggable(error))  # fmt: skip
