"""Storage errors in the project's words: what botocore, boto3 and s3transfer raise, described
in one line without credentials, signatures or URLs, and mapped to StorageUnavailable by HTTP
status as well as by code (Supabase's endpoint wraps its errors so botocore reads no code)."""

import re

from boto3.exceptions import Boto3Error
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from s3transfer.exceptions import RetriesExceededError, S3UploadFailedError

from videostore.errors import StorageUnavailable, VideoStoreError

#: What the storage backends raise when storage is unreachable or refuses.
STORAGE_ERRORS = (BotoCoreError, ClientError, Boto3Error, RetriesExceededError,
                  S3UploadFailedError, OSError)  # fmt: skip

#: What an S3 error means by its HTTP status: Supabase's server wraps errors in a namespaced
#: XML document that botocore reads as an empty code, so the status is the sure fact.
_STATUS_MEANINGS = {
    400: "it refused the request",
    401: "it denied access",
    403: "it denied access",
    404: "it found no such object or bucket",
    409: "it reported a conflict",
    412: "a precondition failed",
}
_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _client_error_facts(error: ClientError) -> tuple[int | None, str]:
    """(HTTP status, "(Code, HTTP n)") of a ClientError; the code only when it is a name."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(error.response.get("Error", {}).get("Code") or "")
    if not _SAFE_CODE.match(code) or code == str(status):  # HEAD errors: the code is the status
        code = ""
    facts = ", ".join(part for part in (code, f"HTTP {status}" if status else "") if part)
    return status, f"({facts or 'no details'})"


def _client_error(error: BaseException) -> ClientError | None:
    """The ClientError behind a storage error (s3transfer wraps it and keeps only a message)."""
    if isinstance(error, S3UploadFailedError):
        error = error.__context__
    return error if isinstance(error, ClientError) else None


def _describe(error: BaseException) -> str:
    """One line about a storage error, with no credentials, signatures or URLs."""
    client_error = _client_error(error)
    if client_error is not None:
        status, facts = _client_error_facts(client_error)
        meaning = _STATUS_MEANINGS.get(status or 0)
        if meaning is None:
            meaning = "it is failing" if (status or 0) >= 500 else "it answered an error"
        return f"{meaning} {facts}"
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError):
        return "could not connect"
    if isinstance(error, ConnectionClosedError):
        return "the connection was closed"
    if isinstance(error, ReadTimeoutError):
        return "it did not answer in time"
    if isinstance(error, FileNotFoundError):
        return "the object is missing"
    if isinstance(error, OSError) and error.strerror:
        return f"{error.__class__.__name__} ({error.strerror})"
    return error.__class__.__name__


def _loggable(error: BaseException) -> str:
    """What a log line may say about any error: storage errors described without their
    details (URLs, signatures); the project's own typed errors by their message."""
    if isinstance(error, STORAGE_ERRORS):
        return _describe(error)
    if isinstance(error, VideoStoreError):
        return str(error) or error.__class__.__name__
    return error.__class__.__name__


def _unavailable(error: BaseException) -> StorageUnavailable:
    """The StorageUnavailable for a storage error, in a sentence that says what it means."""
    client_error = _client_error(error)
    if client_error is not None:
        status, facts = _client_error_facts(client_error)
        if status in (401, 403):
            return StorageUnavailable(
                f"Storage refused access {facts}; check the S3 keys and the bucket's policy."
            )
        if status == 404:
            return StorageUnavailable(
                f"Storage has no such bucket or object {facts}; check the bucket name."
            )
    return StorageUnavailable(f"Storage is unavailable: {_describe(error)}.")
