"""The upload ledger: durable bookkeeping so no stored object is ever left unaccounted for.

Order of a safe upload: `register_pending_upload` (committed) -> bytes written -> the row that
references the object commits together with `mark_referenced`. A rolled back save calls
`discard_upload`; a delete that fails stays in the ledger and `retry_pending_deletes` (a
scheduled task) finishes it. A crash leaves an `upload` entry that `expire_stale_uploads`
turns into a delete after the grace period.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from avatars.errors import StorageUnavailable
from avatars.models import UploadLedgerEntry
from avatars.storage import VideoStorage

logger = logging.getLogger(__name__)
Intent = UploadLedgerEntry.Intent


def register_pending_upload(storage_path: str, *, reason: str = "") -> None:
    """Commit a record of the object about to be written, before any byte is sent."""
    if transaction.get_connection().in_atomic_block:
        # Inside a transaction the record would vanish with a rollback: refuse loudly.
        raise RuntimeError("register_pending_upload must run outside a database transaction.")
    UploadLedgerEntry.objects.create(
        storage_path=storage_path, intent=Intent.UPLOAD, reason=reason[:255]
    )


def mark_referenced(storage_paths: list[str]) -> None:
    """Inside the save transaction: the objects are now owned by the rows being committed."""
    if storage_paths:
        # Any intent: once the row commits it owns the object, even if a sweeper had given
        # up on the upload in the meantime.
        UploadLedgerEntry.objects.filter(storage_path__in=storage_paths).delete()


def schedule_delete(storage_path: str, *, reason: str) -> None:
    """Inside a transaction: delete the object once (and only if) the transaction commits."""
    UploadLedgerEntry.objects.update_or_create(
        storage_path=storage_path, defaults={"intent": Intent.DELETE, "reason": reason[:255]}
    )
    transaction.on_commit(lambda: delete_now(storage_path))


def delete_now(storage_path: str, *, video_storage: VideoStorage | None = None) -> bool:
    """Delete the object and its ledger entry; on failure keep the entry with the error."""
    try:
        (video_storage or VideoStorage()).delete_video(storage_path)
    except StorageUnavailable as error:
        UploadLedgerEntry.objects.filter(storage_path=storage_path).update(
            intent=Intent.DELETE,
            attempts=F("attempts") + 1,
            last_error=str(error)[:2000],
            updated_at=timezone.now(),
        )
        logger.warning(
            "object delete failed; kept in the ledger for retry",
            extra={"storage_path": storage_path, "error": str(error)},
        )
        return False
    UploadLedgerEntry.objects.filter(storage_path=storage_path).delete()
    return True


def discard_upload(storage_path: str, *, reason: str) -> bool:
    """After a failed or rolled back save: the object must go, now or by a later retry."""
    UploadLedgerEntry.objects.update_or_create(
        storage_path=storage_path, defaults={"intent": Intent.DELETE, "reason": reason[:255]}
    )
    return delete_now(storage_path)


def retry_pending_deletes(*, limit: int = 500) -> dict:
    """Retry the deletes the ledger still holds; returns counts."""
    done = failed = 0
    paths = UploadLedgerEntry.objects.filter(intent=Intent.DELETE).values_list(
        "storage_path", flat=True
    )[:limit]
    video_storage = VideoStorage()
    for storage_path in list(paths):
        if delete_now(storage_path, video_storage=video_storage):
            done += 1
        else:
            failed += 1
    return {"deleted": done, "failed": failed}


def expire_stale_uploads(*, grace_seconds: int) -> int:
    """Uploads still unreferenced after the grace period belonged to a dead process."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    return UploadLedgerEntry.objects.filter(intent=Intent.UPLOAD, created_at__lte=cutoff).update(
        intent=Intent.DELETE, reason="upload never committed (process died)"
    )
