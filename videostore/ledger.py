"""The upload ledger: durable bookkeeping so no stored object is ever left unaccounted for.

Order of a safe upload: `register_pending_upload` (committed, with the owner's lease) -> bytes
written (the owner renews its lease as they flow) -> the row that references the object
commits together with `mark_referenced`, which locks the entry and checks that it is still
a pending upload of that owner. A rolled back save calls `discard_upload`; a delete that fails
stays in the ledger and `retry_pending_deletes` (a scheduled task) finishes it.

Locks, not clocks: the sweeper (`expire_dead_uploads`) turns a pending upload into a delete
only under a row lock it can take (SKIP LOCKED: a save holding the row is never waited on nor
overtaken) and only when the owner's lease has expired. A save that finds its entry gone or
turned into a delete fails cleanly (`UploadLost`) and the object is copied again.
"""

import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from videostore.clock import db_now, db_now_plus
from videostore.errors import StorageUnavailable, VideoStoreError
from videostore.models import UploadLedgerEntry
from videostore.storage import VideoStorage

logger = logging.getLogger(__name__)
Intent = UploadLedgerEntry.Intent


class UploadLost(VideoStoreError):
    """The pending upload a save wanted to commit was given up (its lease had expired)."""

    retryable = True


def register_pending_upload(
    storage_path: str, *, reason: str = "", owner: str = "", lease_seconds: float | None = None,
    bucket: str | None = None,
) -> None:  # fmt: skip
    """Commit a record of the object about to be written, before any byte is sent.

    `owner` and `lease_seconds`: the live process that will reference it; without a lease the
    entry is swept only by an explicit grace period (`expire_stale_uploads`). `bucket`: where
    it is written (default: the configured bucket, recorded now so that a later change of the
    setting still cleans up the right one)."""
    register_pending_uploads({storage_path: reason}, owner=owner, lease_seconds=lease_seconds,
                             bucket=bucket)  # fmt: skip


def register_pending_uploads(
    reasons: dict[str, str], *, owner: str = "", lease_seconds: float | None = None,
    bucket: str | None = None,
) -> None:  # fmt: skip
    """`register_pending_upload` for the objects of one unit (a video, its poster and its
    captions; `reasons` by storage path): committed together, under one lease that ends
    read from the database's clock in the one statement that writes them."""
    if transaction.get_connection().in_atomic_block:
        # Inside a transaction the record would vanish with a rollback: refuse loudly.
        raise RuntimeError("register_pending_upload must run outside a database transaction.")
    # The lease's end on the database's clock, computed inside the INSERT.
    lease = db_now_plus(lease_seconds) if lease_seconds else None
    bucket = VideoStorage().bucket if bucket is None else bucket
    UploadLedgerEntry.objects.bulk_create(
        UploadLedgerEntry(storage_path=storage_path, bucket=bucket, intent=Intent.UPLOAD,
                          reason=reason[:255], owner=owner[:64], lease_expires_at=lease)
        for storage_path, reason in reasons.items()
    )  # fmt: skip


def renew_upload_lease(storage_path: str, *, owner: str, lease_seconds: float) -> bool:
    """Extend the owner's lease on its pending upload; False when it is no longer its own."""
    return renew_upload_leases([storage_path], owner=owner, lease_seconds=lease_seconds) == 1


def renew_upload_leases(storage_paths: list[str], *, owner: str, lease_seconds: float) -> int:
    """Extend the owner's leases on its pending uploads (a video and its poster and captions)
    in one statement; returns how many are still its own."""
    return UploadLedgerEntry.objects.filter(
        storage_path__in=storage_paths, intent=Intent.UPLOAD, owner=owner
    ).update(lease_expires_at=db_now_plus(lease_seconds))


def register_pending_copy(
    storage_path: str, *, bucket: str, owner: str, lease_seconds: float, reason: str
) -> bool:
    """`register_pending_upload` for a copy of an existing object into another location under
    the same key. An upload of the key into the same bucket whose owner's lease ended (a
    killed copy) is taken over: its object is overwritten. Any other entry on the key (a live
    upload, a delete still to do) makes this return False: the key is busy until its owner
    or the sweep finishes it, and nothing here deletes what another process may reuse."""
    with contextlib.suppress(IntegrityError):  # an entry on the key: maybe a killed copy's
        register_pending_upload(storage_path, reason=reason, owner=owner,
                                lease_seconds=lease_seconds, bucket=bucket)  # fmt: skip
        return True
    now = db_now()
    # One UPDATE: it waits for a sweeper holding the entry, then sees what the sweeper left.
    return bool(
        UploadLedgerEntry.objects.filter(
            storage_path=storage_path, intent=Intent.UPLOAD, bucket=bucket,
            lease_expires_at__lt=now,
        ).update(owner=owner[:64], reason=reason[:255], updated_at=timezone.now(),
                 lease_expires_at=now + timedelta(seconds=lease_seconds))
    )  # fmt: skip


def discard_copy(storage_path: str, *, bucket: str, reason: str) -> bool:
    """A copy in `bucket` that no row will reference must go, now or by a later retry. Another
    location's delete still recorded on the key is finished first (one entry per key); when
    it cannot be, the copy is left to reconcile and False is returned."""
    entry = UploadLedgerEntry.objects.filter(storage_path=storage_path).first()
    if entry is not None and entry.intent == Intent.DELETE and entry.bucket != bucket:
        if not delete_now(storage_path):
            return False
    UploadLedgerEntry.objects.update_or_create(
        storage_path=storage_path,
        defaults={"intent": Intent.DELETE, "reason": reason[:255], "lease_expires_at": None,
                  "bucket": bucket},
    )  # fmt: skip
    return delete_now(storage_path)


def mark_referenced(storage_paths: list[str], *, owner: str | None = None) -> None:
    """Inside the save transaction: the objects are now owned by the rows being committed.

    Locks each entry and requires it to be a pending upload (of `owner`, when given); a
    sweeper that gave up on it first makes this raise UploadLost, so the save rolls back
    instead of committing a row that points at an object about to be deleted."""
    if not storage_paths:
        return
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("mark_referenced must run inside the save's transaction.")
    # One statement: the DELETE locks each entry it matches and matches only pending uploads
    # (of `owner`); an entry a sweeper turned into a delete first is not matched (PostgreSQL
    # re-reads a row it waited for). Fewer rows than paths: the save rolls back.
    pending = UploadLedgerEntry.objects.filter(storage_path__in=storage_paths, intent=Intent.UPLOAD)
    if owner is not None:
        pending = pending.filter(owner=owner)
    deleted, _ = pending.delete()
    if deleted != len(set(storage_paths)):
        raise UploadLost(
            f"The upload of {', '.join(storage_paths)} was given up before the save or belongs "
            "to another worker; copying again."
        )


def schedule_delete(storage_path: str, *, reason: str, bucket: str = "") -> None:
    """Inside a transaction: delete the object (of `bucket`; "" the configured one) once, and
    only if, the transaction commits."""
    UploadLedgerEntry.objects.update_or_create(
        storage_path=storage_path,
        defaults={"intent": Intent.DELETE, "reason": reason[:255], "lease_expires_at": None,
                  "bucket": bucket},
    )  # fmt: skip
    transaction.on_commit(lambda: delete_now(storage_path))


def delete_now(storage_path: str, *, video_storage: VideoStorage | None = None) -> bool:
    """Delete the object, in the bucket its entry names, and the entry; on failure keep the
    entry with the error. No entry: someone else finished it (a sweep between a commit and
    its on-commit call), and nothing is deleted: the same key may hold another location's
    live copy (a library moved between storages keeps its keys)."""
    entry_bucket = (
        UploadLedgerEntry.objects.filter(storage_path=storage_path)
        .values_list("bucket", flat=True)
        .first()
    )
    if entry_bucket is None:
        return True
    try:
        (video_storage or VideoStorage()).in_bucket(entry_bucket or "").delete_video(storage_path)
    except StorageUnavailable as error:
        UploadLedgerEntry.objects.filter(storage_path=storage_path).update(
            intent=Intent.DELETE,
            attempts=F("attempts") + 1,
            last_error=str(error)[:2000],
            updated_at=timezone.now(),
        )
        logger.warning(
            "delete of %s failed; kept in the ledger for retry: %s",
            storage_path,
            error,
            extra={"storage_path": storage_path, "error": str(error)},
        )
        return False
    UploadLedgerEntry.objects.filter(storage_path=storage_path, intent=Intent.DELETE).delete()
    return True


def discard_upload(
    storage_path: str, *, reason: str, video_storage: VideoStorage | None = None
) -> bool:
    """After a failed or rolled back save (or an orphan found): the object must go, now or
    by a later retry."""
    UploadLedgerEntry.objects.update_or_create(
        storage_path=storage_path,
        defaults={"intent": Intent.DELETE, "reason": reason[:255], "lease_expires_at": None},
    )
    return delete_now(storage_path, video_storage=video_storage)


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


def claim_orphan(storage_path: str, *, bucket: str, is_referenced: Callable[[str], bool]) -> bool:
    """Under the entry's lock: the object is still nobody's (no pending upload and, by
    `is_referenced`, no row pointing at it), and a delete entry now records that it must go.
    False when a save holds the entry, an upload is pending or a row references it."""
    with transaction.atomic():
        entry = (
            UploadLedgerEntry.objects.select_for_update(skip_locked=True)
            .filter(storage_path=storage_path)
            .first()
        )
        if entry is None and UploadLedgerEntry.objects.filter(storage_path=storage_path).exists():
            return False  # locked by a save in progress
        if entry is not None and entry.intent == Intent.UPLOAD:
            return False
        if is_referenced(storage_path):
            return False
        UploadLedgerEntry.objects.update_or_create(
            storage_path=storage_path,
            defaults={"intent": Intent.DELETE, "reason": "orphan found by reconcile",
                      "lease_expires_at": None, "bucket": bucket},
        )  # fmt: skip
    return True


def _give_up(entries_filter: Q, reason: str, *, limit: int = 1000) -> int:
    """Turn the matching pending uploads into deletes, each under a lock we can take now."""
    with transaction.atomic():
        paths = list(
            UploadLedgerEntry.objects.select_for_update(skip_locked=True)
            .filter(entries_filter, intent=Intent.UPLOAD)
            .values_list("storage_path", flat=True)[:limit]
        )
        UploadLedgerEntry.objects.filter(storage_path__in=paths).update(
            intent=Intent.DELETE, reason=reason, updated_at=timezone.now()
        )
    if paths:
        logger.warning("gave up %d pending upload(s) (%s): %s", len(paths), reason, paths[:10])
    return len(paths)


def expire_dead_uploads() -> int:
    """Pending uploads whose owner's lease expired belonged to a dead process."""
    return _give_up(Q(lease_expires_at__lt=db_now()), "upload never committed (its worker died)")


def expire_stale_uploads(*, grace_seconds: int) -> int:
    """Pending uploads without an owner's lease (an unleased caller) after the grace period;
    leased uploads are only ever given up by `expire_dead_uploads`."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    return (
        _give_up(
            Q(lease_expires_at__isnull=True, created_at__lte=cutoff),
            "upload never committed (process died)",
        )
        + expire_dead_uploads()
    )


def _abandoned_uploads(*, grace_seconds: int) -> Q:
    """The pending uploads `expire_stale_uploads(grace_seconds=...)` gives up: the owner's lease
    has ended, or (unleased) the entry is older than the grace period."""
    now = db_now()
    return Q(intent=Intent.UPLOAD) & (
        Q(lease_expires_at__lt=now)
        | Q(lease_expires_at__isnull=True, created_at__lte=now - timedelta(seconds=grace_seconds))
    )


def intents_after_expiry(*, grace_seconds: int) -> dict[str, str]:
    """Every entry's intent by storage path, as `expire_stale_uploads` would leave it (an
    abandoned upload is a delete). A read: a check reports what a fix would find."""
    entries = UploadLedgerEntry.objects.annotate(
        effective=Case(
            When(_abandoned_uploads(grace_seconds=grace_seconds), then=Value(Intent.DELETE)),
            default=F("intent"),
        )
    )
    return dict(entries.values_list("storage_path", "effective"))


def upload_lease_is_live(storage_path: str) -> bool:
    """True while a live owner holds the pending upload of this path."""
    return UploadLedgerEntry.objects.filter(
        storage_path=storage_path, intent=Intent.UPLOAD, lease_expires_at__gt=db_now()
    ).exists()
