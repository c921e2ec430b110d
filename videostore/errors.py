"""Typed errors of the stored-video lifecycle. Each message is one sentence a person can act on."""


class VideoStoreError(Exception):
    """Base class; `str(error)` is shown to people, so it never carries secrets or signed URLs."""

    #: True when trying again later may succeed (storage outage).
    retryable = False


class InvalidVideo(VideoStoreError):
    """The bytes are not an acceptable MP4 (wrong type, truncated, wrong length, too large)."""


class StorageUnavailable(VideoStoreError):
    """Object storage could not be reached or refused the operation."""

    retryable = True


class InvalidStoragePath(ValueError):
    """A storage path outside the avatar video prefix, or one that could escape it."""


class CopyMismatch(VideoStoreError):
    """A copy between storages is not the object its row describes (size or sha256)."""
