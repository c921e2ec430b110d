"""Moving a video library between storages (`migrate_storage`): local files to a bucket, a
bucket to another, a public bucket to a private one, and back.

Per item, every stored object (`topics.objects.stored_objects`) is copied to the target under
the same key, each registered first in the upload ledger (target location, this process's
lease), streamed and hashed on the way, and verified against the row (size and sha256).
Only then, in one transaction, the row is locked and re-read: still pointing at the same
objects in the same location, it switches to the target (its `fileUrl` too) and the copies
become referenced; otherwise the copies are discarded and the item reported "changed". The
row points at a complete copy at every moment. Killed anywhere, the copies are pending
uploads whose lease ends: the sweep deletes them, and a rerun skips the items already moved.
The source objects go only with `delete_source`, after the switch commits (ledger deletes);
without it they stay, and reconcile reports them as copies a move kept.
"""

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from topics.cleaners import clean_content_data
from topics.errors import InvalidContentData
from topics.models import ContentItem
from topics.objects import StoredFile, stored_objects
from videostore import ledger
from videostore.copies import copy_object
from videostore.errors import CopyMismatch, InvalidStoragePath, StorageUnavailable
from videostore.locations import LOCAL, configured_location
from videostore.storage import VideoStorage

logger = logging.getLogger(__name__)

MOVED, ALREADY_THERE, CHANGED, FAILED, WOULD_MOVE = (
    "moved", "already there", "changed, skipped", "failed", "would move",
)  # fmt: skip
#: What may end one item's move without ending the run.
_COPY_ERRORS = (FileNotFoundError, CopyMismatch, StorageUnavailable, ledger.UploadLost,
                InvalidContentData, InvalidStoragePath)  # fmt: skip


@dataclass(frozen=True)
class ItemOutcome:
    """What happened to one item: an outcome above, why (failures, skips), bytes copied."""

    item_id: int
    outcome: str
    source: str = ""
    reason: str = ""
    bytes_copied: int = 0


@dataclass
class MigrationReport:
    """The run's totals; `failures` lists (item id, reason)."""

    target: str
    target_public: bool
    dry_run: bool
    delete_source: bool
    moved: int = 0
    already_there: int = 0
    changed: int = 0
    would_move: int = 0
    bytes_copied: int = 0
    sources_deleted: int = 0
    sources_kept: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)

    def add(self, outcome: ItemOutcome, objects: int) -> None:
        if outcome.outcome == MOVED:
            self.moved += 1
            self.bytes_copied += outcome.bytes_copied
            if self.delete_source:
                self.sources_deleted += objects
            else:
                self.sources_kept += objects
        elif outcome.outcome == ALREADY_THERE:
            self.already_there += 1
        elif outcome.outcome == CHANGED:
            self.changed += 1
        elif outcome.outcome == WOULD_MOVE:
            self.would_move += 1
            self.bytes_copied += outcome.bytes_copied
        else:
            self.failures.append((outcome.item_id, outcome.reason))


def items_to_check(*, source: str = "") -> list[int]:
    """The ids of the items with stored objects (of location `source`, when named), in id
    order: what a run walks through."""
    items = ContentItem.objects.exclude(storage_path="")
    if source:
        in_source = {"storage_bucket__in": [source, ""]} if source == configured_location() else {
            "storage_bucket": source}  # fmt: skip
        items = items.filter(**in_source)
    return list(items.order_by("pk").values_list("pk", flat=True))


def location_of(item: ContentItem) -> str:
    """Where the item's objects are (rows from before locations were recorded: configured)."""
    return item.storage_bucket or configured_location()


class _Mover:
    """One run's state: the target, this process's lease owner name, the storages."""

    def __init__(self, target: VideoStorage, *, delete_source: bool, dry_run: bool):
        self.base = VideoStorage()
        self.target = target
        self.delete_source = delete_source
        self.dry_run = dry_run
        self.owner = f"migrate-{socket.gethostname()[:24]}-{os.getpid()}-{secrets.token_hex(3)}"
        self.lease_seconds = float(settings.VIDEO_JOB_LEASE_SECONDS)
        self._renewed_at = 0.0

    def move(self, item_id: int) -> tuple[ItemOutcome, int]:
        """Move one item; returns its outcome and how many objects it has."""
        item = ContentItem.objects.filter(pk=item_id).first()
        if item is None or not item.storage_path:
            return ItemOutcome(item_id, CHANGED, reason="deleted or emptied since listed"), 0
        source = location_of(item)
        files = stored_objects(item)
        if source == self.target.bucket:
            return ItemOutcome(item_id, ALREADY_THERE, source), len(files)
        if self.dry_run:
            size = sum(stored.size or 0 for stored in files)
            return ItemOutcome(item_id, WOULD_MOVE, source, bytes_copied=size), len(files)
        registered: list[str] = []
        try:
            checksums, copied = self._copy(item, self.base.in_bucket(source), files, registered)
            if not self._switch(item, source, files, checksums):
                self._discard(registered, "the item changed during its move")
                return ItemOutcome(item_id, CHANGED, source, "changed during the move"), 0
        except _COPY_ERRORS as error:
            self._discard(registered, f"move failed: {error}")
            if self._changed(item, source):
                return ItemOutcome(item_id, CHANGED, source, "changed during the move"), 0
            return ItemOutcome(item_id, FAILED, source, _reason(error)), 0
        except BaseException:
            self._discard(registered, "move interrupted")
            raise
        return ItemOutcome(item_id, MOVED, source, bytes_copied=copied), len(files)

    def _copy(
        self, item: ContentItem, source: VideoStorage, files: list[StoredFile],
        registered: list[str],
    ) -> tuple[dict[str, str], int]:  # fmt: skip
        """Copy and verify every object; returns the sha256 of each key and the bytes."""
        checksums, copied = {}, 0
        for stored in files:
            size = stored.size if stored.size is not None else source.size(stored.storage_path)
            if size is None:
                raise FileNotFoundError(f"{stored.storage_path} is missing from {source.bucket}")
            if not ledger.register_pending_copy(
                stored.storage_path, bucket=self.target.bucket, owner=self.owner,
                lease_seconds=self.lease_seconds, reason=f"move of item {item.pk}",
            ):  # fmt: skip
                raise ledger.UploadLost(
                    f"The ledger holds another upload or a pending delete of "
                    f"{stored.storage_path}; run again once it ends (reconcile_storage --fix)."
                )
            registered.append(stored.storage_path)
            sha256 = copy_object(
                source, self.target, stored.storage_path, size=size,
                content_type=stored.content_type, on_bytes=lambda _: self._renew(registered),
            )  # fmt: skip
            if stored.sha256 and sha256 != stored.sha256:
                raise CopyMismatch(f"The copy of {stored.storage_path} has another sha256 "
                                   "than its row records.")  # fmt: skip
            checksums[stored.storage_path] = sha256
            copied += size
        self._renew(registered, force=True)
        return checksums, copied

    def _renew(self, registered: list[str], *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._renewed_at > self.lease_seconds / 3:
            kept = ledger.renew_upload_leases(registered, owner=self.owner,
                                              lease_seconds=self.lease_seconds)  # fmt: skip
            if kept < len(registered):  # a sweeper gave one up: stop writing
                raise ledger.UploadLost(f"An upload of {registered} was given up; stopping.")
            self._renewed_at = now

    def _switch(
        self, item: ContentItem, source: str, files: list[StoredFile], checksums: dict[str, str]
    ) -> bool:
        """Under the row's lock, re-read: still the same objects in `source`, the row points at
        the verified copies from now on. False (nothing written) when the row changed."""
        paths = [stored.storage_path for stored in files]
        with transaction.atomic(durable=True):
            row = ContentItem.objects.select_for_update().filter(pk=item.pk).first()
            if row is None or location_of(row) != source:
                return False
            if [stored.storage_path for stored in stored_objects(row)] != paths:
                return False
            ledger.mark_referenced(paths, owner=self.owner)
            self._check_copies(files)
            # Cleaned first: a seed row's nested storage metadata comes to the top level,
            # where the new location and URL are written.
            data = clean_content_data(row.content_type, row.content_data)
            url = self.target.public_or_signed_url(row.storage_path)
            if data.get("videoUrl") and data.get("videoUrl") == data.get("fileUrl"):
                data["videoUrl"] = url  # the stored video's link, not a provider's
            data.update(fileUrl=url, storageBucket=self.target.bucket)
            for key, path_key in (("posterUrl", "posterPath"), ("captionsUrl", "captionsPath")):
                if data.get(path_key):  # the poster's and captions' links follow them too
                    data[key] = self.target.public_or_signed_url(data[path_key])
            data.setdefault("checksum", checksums.get(row.storage_path))
            row.content_data = clean_content_data(row.content_type, data)
            row.storage_bucket = self.target.bucket
            row.save(update_fields=["content_data", "storage_bucket", "updated_at"])
            if self.delete_source:
                for path in paths:  # after commit, through the ledger (retried if it fails)
                    ledger.schedule_delete(path, reason=f"moved to {self.target.bucket} with "
                                           f"item {row.pk}", bucket=source)  # fmt: skip
        logger.info("item %s moved from %s to %s: %s", item.pk, source, self.target.bucket, paths)
        return True

    def _check_copies(self, files: list[StoredFile]) -> None:
        """Under the locks, the copies are still there at their size (nothing swept them
        since they were verified); CopyMismatch rolls the switch back."""
        for stored in files:
            size = self.target.size(stored.storage_path)
            if size is None or (stored.size is not None and size != stored.size):
                raise CopyMismatch(f"The copy of {stored.storage_path} changed before the switch.")

    def _changed(self, item: ContentItem, source: str) -> bool:
        row = ContentItem.objects.filter(pk=item.pk).first()
        return row is None or row.storage_path != item.storage_path or location_of(row) != source

    def _discard(self, registered: list[str], reason: str) -> None:
        for path in registered:
            ledger.discard_copy(path, bucket=self.target.bucket, reason=reason)
        registered.clear()


def _reason(error: BaseException) -> str:
    if isinstance(error, FileNotFoundError):
        return f"a source object is missing ({error})"
    return str(error)


def validate_target(target: str) -> VideoStorage:
    """The storage of a target location (a bucket's name, or "local"); StorageUnavailable
    when it cannot be reached (listed) or named."""
    target = (target or "").strip()
    if not target:
        raise StorageUnavailable("Name a target: a bucket, or 'local'.")
    storage = VideoStorage().in_bucket(target)
    if target != LOCAL:
        next(storage.iter_objects(page_size=1), None)  # the bucket exists and answers
    return storage


def migrate_storage(
    *, target: str, source: str = "", dry_run: bool = False, delete_source: bool = False,
    pause_seconds: float = 0.0, on_item: Callable[[ItemOutcome], None] | None = None,
) -> MigrationReport:  # fmt: skip
    """Move every item with stored objects (of `source`, when named) to `target`; the report
    counts each outcome. `dry_run`: what would move, nothing written. `pause_seconds`: a
    pause after each item, to spare a busy storage."""
    storage = validate_target(target)
    mover = _Mover(storage, delete_source=delete_source, dry_run=dry_run)
    report = MigrationReport(target=storage.bucket, target_public=storage.public,
                             dry_run=dry_run, delete_source=delete_source)  # fmt: skip
    for item_id in items_to_check(source=source):
        outcome, objects = mover.move(item_id)
        report.add(outcome, objects)
        if outcome.outcome == FAILED:
            logger.warning("item %s was not moved to %s: %s", item_id, storage.bucket,
                           outcome.reason)  # fmt: skip
        if on_item is not None:
            on_item(outcome)
        if pause_seconds and outcome.outcome in (MOVED, WOULD_MOVE):
            time.sleep(pause_seconds)
    return report
