"""Storage against database: find orphans, dangling rows, pending ledger entries and
unfinished multipart uploads.

Both sides are streamed in the same order and merge-joined, so memory stays bounded
however many objects there are: the listing comes page by page from storage (keys in
binary order), the rows come from the database ordered by a binary collation. Every run is
recorded (videostore.runs) for the admin's storage health page.
"""

import heapq
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Q
from django.db.models.functions import Collate
from django.utils import timezone

from topics.models import ContentItem
from topics.objects import CAPTIONS, PATH_COLUMNS, POSTER, VIDEO
from topics.services import (
    content_item_forget_missing_object,
    content_item_mark_needs_regeneration,
    referenced_paths,
)
from videostore import ledger
from videostore.errors import StorageUnavailable
from videostore.locations import configured_location
from videostore.models import UploadLedgerEntry
from videostore.multipart import (
    MultipartUpload,
    abort_multipart_upload,
    iter_multipart_uploads,
    upload_state,
)
from videostore.runs import record_reconcile_run
from videostore.storage import StoredObject, VideoStorage

logger = logging.getLogger(__name__)

SAMPLE_LIMIT = 50


@dataclass
class ReconcileReport:
    """What a reconciliation found and, with --fix, did. Samples are capped; counts are not."""

    objects_listed: int = 0
    rows_checked: int = 0
    orphans: int = 0
    orphans_in_grace: int = 0
    dangling_missing: int = 0
    dangling_size: int = 0
    pending_uploads: int = 0
    pending_deletes: int = 0
    deleted_orphans: int = 0
    marked_for_regeneration: int = 0
    #: Rows whose missing poster or captions were forgotten (the backfill makes new ones).
    marked_for_backfill: int = 0
    #: Stored videos without a poster or captions yet (not a problem: the backfill's work).
    without_poster_or_captions: int = 0
    failed_deletes: int = 0
    stale_multipart_uploads: int = 0
    multipart_uploads_in_flight: int = 0
    aborted_multipart_uploads: int = 0
    #: Objects whose key a row references in another location: the source copies a move
    #: (`migrate_storage` without --delete-source) left on purpose. Reported, never deleted.
    kept_copies: int = 0
    deleted_kept_copies: int = 0
    #: Rows whose video is in another bucket (a changed setting, a shared database): checked
    #: by a run against that bucket, never here; counted by bucket, untouched.
    other_buckets: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list] = field(
        default_factory=lambda: {
            "orphans": [],
            "dangling": [],
            "stale_multipart": [],
            "kept_copies": [],
        }  # fmt: skip
    )

    @property
    def problems(self) -> int:
        """What is still wrong after this run (in-grace objects are not yet wrong)."""
        return (
            self.orphans
            - self.deleted_orphans
            + self.dangling_missing
            + self.dangling_size
            - self.marked_for_regeneration
            - self.marked_for_backfill
            + self.failed_deletes
            + self.stale_multipart_uploads
            - self.aborted_multipart_uploads
        )

    @property
    def consistent(self) -> bool:
        return self.problems == 0

    def as_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "samples"}
        return {**data, "problems": self.problems, "consistent": self.consistent,
                "samples": self.samples}  # fmt: skip


def _binary_order(field_name: str):
    collation = "C" if connection.vendor == "postgresql" else "BINARY"
    return Collate(F(field_name), collation)


def _in_bucket(bucket: str) -> Q:
    """Rows whose video is in `bucket` (a location: a bucket's name or "local"): those naming
    it, and for the configured location those naming none (stored before locations were
    recorded)."""
    if bucket == configured_location():
        return Q(storage_bucket="") | Q(storage_bucket=bucket)
    return Q(storage_bucket=bucket)


#: The content_data key of each kind's expected size.
_SIZE_KEYS = {VIDEO: "fileSize", POSTER: "posterSize", CAPTIONS: "captionsSize"}


def _rows_of(kind: str, prefix: str, bucket: str) -> Iterator[tuple[str, int, int | None, str]]:
    column = PATH_COLUMNS[kind]
    rows = (
        ContentItem.objects.filter(_in_bucket(bucket), **{f"{column}__startswith": prefix})
        .annotate(path_binary=_binary_order(column))
        .order_by("path_binary")
        .values_list(column, "id", f"content_data__{_SIZE_KEYS[kind]}")
    )
    return ((path, item_id, size, kind) for path, item_id, size in rows.iterator(chunk_size=2000))


def _rows(prefix: str, bucket: str) -> Iterator[tuple[int, str, int | None, str]]:
    """Every stored object the rows point at (videos, posters, captions: topics/objects.py)
    as (item id, path, expected size, kind), in binary key order: three ordered streams
    merged, memory bounded."""
    merged = heapq.merge(*(_rows_of(kind, prefix, bucket) for kind in PATH_COLUMNS))
    return ((item_id, path, size, kind) for path, item_id, size, kind in merged)


def _is_referenced(storage_path: str) -> bool:
    return bool(referenced_paths([storage_path]))


def _any_path(storage_path: str) -> Q:
    """Rows that reference the key as their video, poster or captions."""
    any_column = Q()
    for column in PATH_COLUMNS.values():
        any_column |= Q(**{column: storage_path})
    return any_column


def _moved_away(storage_path: str, bucket: str) -> bool:
    """A row references this key in another location: the object here is a copy a move
    kept (keys are never shared between rows)."""
    return ContentItem.objects.filter(_any_path(storage_path)).exclude(_in_bucket(bucket)).exists()


def _sample(report: ReconcileReport, kind: str, entry: dict) -> None:
    if len(report.samples[kind]) < SAMPLE_LIMIT:
        report.samples[kind].append(entry)


def _handle_orphan(
    report: ReconcileReport, obj: StoredObject, *, cutoff: datetime, fix: bool,
    ledger_paths: dict[str, str], video_storage: VideoStorage, delete_kept_copies: bool = False,
) -> None:  # fmt: skip
    intent = ledger_paths.get(obj.storage_path)
    in_grace = obj.last_modified is not None and obj.last_modified > cutoff
    if intent == UploadLedgerEntry.Intent.UPLOAD:
        # A pending upload whose owner is alive (dead owners were expired under lock before
        # the listing): it may still commit. Never an orphan, whatever its age.
        report.orphans_in_grace += 1
        return
    if in_grace and intent is None:
        report.orphans_in_grace += 1
        return
    if intent is None and _moved_away(obj.storage_path, video_storage.bucket):
        report.kept_copies += 1
        _sample(report, "kept_copies", {"storage_path": obj.storage_path, "size": obj.size})
        if fix and delete_kept_copies:
            _delete_kept_copy(report, obj.storage_path, video_storage)
        return
    if fix and not ledger.claim_orphan(
        obj.storage_path, bucket=video_storage.bucket, is_referenced=_is_referenced
    ):
        report.orphans_in_grace += 1  # registered or referenced since the listing began
        return
    report.orphans += 1
    _sample(report, "orphans", {"storage_path": obj.storage_path, "size": obj.size})
    if not fix:
        return
    if ledger.delete_now(obj.storage_path, video_storage=video_storage):
        report.deleted_orphans += 1


def _points_at(item_id: int, path: str, kind: str, bucket: str) -> bool:
    return ContentItem.objects.filter(
        _in_bucket(bucket), pk=item_id, **{PATH_COLUMNS[kind]: path}
    ).exists()


def _points_at_here(storage_path: str, bucket: str) -> bool:
    """A row of this location references the key (as its video, poster or captions)."""
    return ContentItem.objects.filter(_in_bucket(bucket)).filter(_any_path(storage_path)).exists()


def _delete_kept_copy(report: ReconcileReport, path: str, video_storage: VideoStorage) -> None:
    """Asked for: a copy a move kept goes, claimed under the ledger entry's lock, only while
    no row references its key here (a move back registers the key first)."""
    bucket = video_storage.bucket

    def referenced_here(storage_path: str) -> bool:
        return _points_at_here(storage_path, bucket)

    if ledger.claim_orphan(path, bucket=bucket, is_referenced=referenced_here) and (
        ledger.delete_now(path, video_storage=video_storage)
    ):
        report.deleted_kept_copies += 1


def _still_dangling(item_id: int, path: str, reason: str, expected_size, video_storage,
                    kind: str = VIDEO) -> bool:  # fmt: skip
    """The listing and the rows are two moments: before calling a row dangling, ask again.
    The row must still point at the object, and the object must still be missing (keys are
    never reused, so a missing object never comes back) or still of the wrong size."""
    if not _points_at(item_id, path, kind, video_storage.bucket):
        return False  # deleted, regenerated, replaced or moved since the rows were read
    size = video_storage.size(path)
    if reason == "missing":
        return size is None
    return size is not None and expected_size is not None and int(expected_size) != size


def _handle_dangling(
    report: ReconcileReport, item_id: int, path: str, reason: str, fix: bool, *,
    expected_size=None, video_storage: VideoStorage, kind: str = VIDEO,
) -> None:  # fmt: skip
    if not _still_dangling(item_id, path, reason, expected_size, video_storage, kind):
        return
    if reason == "missing":
        report.dangling_missing += 1
    else:
        report.dangling_size += 1
    _sample(report, "dangling", {"item_id": item_id, "storage_path": path, "reason": reason,
                                 "kind": kind})  # fmt: skip
    if not fix:
        return
    if kind != VIDEO:
        # The video still plays: the row forgets the broken poster or captions, the
        # backfill makes new ones (the wrong-sized object becomes an orphan, deleted later).
        if content_item_forget_missing_object(content_item_id=item_id, storage_path=path):
            report.marked_for_backfill += 1
        return
    if content_item_mark_needs_regeneration(
        content_item_id=item_id, reason=reason, expected_storage_path=path,
        expected_location=video_storage.bucket,
    ):  # fmt: skip
        report.marked_for_regeneration += 1


def _handle_multipart(
    report: ReconcileReport, upload: MultipartUpload, *, cutoff: datetime, fix: bool,
    video_storage: VideoStorage,
) -> None:  # fmt: skip
    state = upload_state(upload, cutoff=cutoff)
    if state == "young":
        return
    if state == "in_flight":
        report.multipart_uploads_in_flight += 1
        return
    report.stale_multipart_uploads += 1
    initiated = upload.initiated.isoformat() if upload.initiated else None
    _sample(report, "stale_multipart", {"storage_path": upload.storage_path,
                                        "initiated": initiated})  # fmt: skip
    if not fix:
        return
    try:
        abort_multipart_upload(upload, video_storage=video_storage)
    except StorageUnavailable as error:
        logger.warning("abort of the multipart upload of %s failed: %s",
                       upload.storage_path, error)  # fmt: skip
        return
    # Aborted now, or already ended since the listing: either way its parts are gone.
    report.aborted_multipart_uploads += 1


def reconcile_storage(
    *,
    fix: bool = False,
    grace_seconds: int | None = None,
    video_storage: VideoStorage | None = None,
    delete_kept_copies: bool = False,
) -> ReconcileReport:
    """Compare the avatar video prefix in storage with the rows, the upload ledger and the
    unfinished multipart uploads; every run, finished or not, is recorded. `video_storage`:
    the location to check (default: the configured one; `.in_bucket(...)` for another).
    `delete_kept_copies` (with `fix`): the copies a move left here go too."""
    started_at = timezone.now()
    try:
        report = _reconcile(fix=fix, grace_seconds=grace_seconds, video_storage=video_storage,
                            delete_kept_copies=delete_kept_copies)  # fmt: skip
    except StorageUnavailable as error:
        record_reconcile_run(started_at=started_at, fix=fix, consistent=False, problems=0,
                             report={}, error=str(error))  # fmt: skip
        raise
    record_reconcile_run(started_at=started_at, fix=fix, consistent=report.consistent,
                         problems=report.problems, report=report.as_dict())  # fmt: skip
    return report


def _reconcile(
    *, fix: bool, grace_seconds: int | None, video_storage: VideoStorage | None,
    delete_kept_copies: bool = False,
) -> ReconcileReport:  # fmt: skip
    video_storage = video_storage or VideoStorage()
    grace = settings.RECONCILE_GRACE_SECONDS if grace_seconds is None else grace_seconds
    cutoff = timezone.now() - timedelta(seconds=grace)
    prefix = settings.AVATAR_VIDEO_PREFIX
    report = ReconcileReport()
    if fix:
        ledger.expire_stale_uploads(grace_seconds=grace)
    # Without --fix, the uploads the fix would give up are already seen as deletes: a check
    # reports exactly what a fix changes (an upload whose owner's lease ended is an orphan).
    ledger_paths = ledger.intents_after_expiry(grace_seconds=grace)

    report.other_buckets = dict(
        ContentItem.objects.filter(storage_path__startswith=prefix)
        .exclude(_in_bucket(video_storage.bucket))
        .values_list("storage_bucket")
        .annotate(rows=Count("id"))
        .order_by("storage_bucket")
    )
    objects = video_storage.iter_objects(prefix)
    rows = _rows(prefix, video_storage.bucket)
    obj = next(objects, None)
    row = next(rows, None)
    while obj is not None or row is not None:
        if row is None or (obj is not None and obj.storage_path < row[1]):
            report.objects_listed += 1
            _handle_orphan(report, obj, cutoff=cutoff, fix=fix, ledger_paths=ledger_paths,
                           video_storage=video_storage,
                           delete_kept_copies=delete_kept_copies)  # fmt: skip
            obj = next(objects, None)
        elif obj is None or row[1] < obj.storage_path:
            report.rows_checked += 1
            _handle_dangling(report, row[0], row[1], "missing", fix, video_storage=video_storage,
                             kind=row[3])  # fmt: skip
            row = next(rows, None)
        else:
            report.objects_listed += 1
            report.rows_checked += 1
            expected_size = row[2]
            if expected_size is not None and int(expected_size) != obj.size:
                _handle_dangling(
                    report, row[0], row[1], "size differs", fix,
                    expected_size=expected_size, video_storage=video_storage, kind=row[3],
                )  # fmt: skip
            obj = next(objects, None)
            row = next(rows, None)

    report.without_poster_or_captions = (
        ContentItem.objects.filter(_in_bucket(video_storage.bucket))
        .filter(storage_path__startswith=prefix)
        .filter(Q(poster_path="") | Q(captions_path=""))
        .count()
    )
    for upload in iter_multipart_uploads(prefix=prefix, video_storage=video_storage):
        _handle_multipart(report, upload, cutoff=cutoff, fix=fix, video_storage=video_storage)

    if fix:
        report.failed_deletes = ledger.retry_pending_deletes()["failed"]
    pending = Counter(ledger.intents_after_expiry(grace_seconds=grace).values())
    report.pending_uploads = pending[UploadLedgerEntry.Intent.UPLOAD]
    report.pending_deletes = pending[UploadLedgerEntry.Intent.DELETE]
    logger.info(
        "storage reconciled: %d problem(s) in %d object(s) and %d row(s); orphans %d (%d in "
        "grace, %d deleted) e.g. %s; dangling %d missing, %d wrong size (%d marked for "
        "regeneration, %d for backfill) e.g. %s; %d video(s) without poster or captions; "
        "ledger %d upload(s), %d delete(s) pending, %d failed; stale "
        "multipart uploads %d (%d aborted)",
        report.problems, report.objects_listed, report.rows_checked, report.orphans,
        report.orphans_in_grace, report.deleted_orphans,
        [sample["storage_path"] for sample in report.samples["orphans"][:3]],
        report.dangling_missing, report.dangling_size, report.marked_for_regeneration,
        report.marked_for_backfill,
        [sample["storage_path"] for sample in report.samples["dangling"][:3]],
        report.without_poster_or_captions,
        report.pending_uploads, report.pending_deletes, report.failed_deletes,
        report.stale_multipart_uploads, report.aborted_multipart_uploads,
        extra=report.as_dict(),
    )  # fmt: skip
    return report


def scheduled_reconcile() -> dict:
    """The periodic task: fix with the configured grace period."""
    return reconcile_storage(fix=True).as_dict()
