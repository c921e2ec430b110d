"""Health for operators: live checks of what the studio depends on, and the storage figures
behind the admin's "Storage health" page.

Checks say only ok / not ok, how long they took and one sentence of why; never an endpoint,
a key or a host name (a probe's answer may be public).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, OuterRef, Subquery
from django.utils import timezone
from django_q.brokers import get_broker

from avatars import leases
from avatars.models import VideoJob
from topics.models import ContentItem
from videostore.errors import StorageUnavailable
from videostore.models import ReconcileRun, UploadLedgerEntry
from videostore.multipart import iter_multipart_uploads, upload_state
from videostore.runs import last_reconcile_run
from videostore.storage import VideoStorage

logger = logging.getLogger(__name__)

#: Sample rows listed on the health page per figure.
SAMPLE_LIMIT = 10


@dataclass(frozen=True)
class CheckResult:
    """One dependency's answer: `error` is one sentence without secrets."""

    name: str
    ok: bool
    latency_ms: float
    error: str = ""

    def as_dict(self) -> dict:
        data = {"ok": self.ok, "latency_ms": self.latency_ms}
        return {**data, "error": self.error} if self.error else data


def _timed(name: str, check: Callable[[], None]) -> CheckResult:
    started = time.monotonic()
    error = ""
    try:
        check()
    except StorageUnavailable as failure:
        error = str(failure)  # written for people, without credentials or URLs
    except Exception as failure:  # any failure is the answer; its text may name hosts
        error = f"{name} check failed ({failure.__class__.__name__})."
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    if error:
        logger.warning("health check %s failed after %.0f ms: %s", name, latency_ms, error)
    return CheckResult(name=name, ok=not error, latency_ms=latency_ms, error=error)


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):
            raise RuntimeError("SELECT 1 gave another answer")


def _check_storage() -> None:
    # One page of at most one key under the video prefix: cheap, and it needs the bucket.
    next(VideoStorage().iter_objects(page_size=1), None)


def _check_broker() -> None:
    broker = get_broker()
    # The ORM broker's ping() is always True: counting its queue reads the real table.
    if broker.ping() is False:
        raise RuntimeError("the broker did not answer the ping")
    broker.queue_size()


CHECKS: dict[str, Callable[[], None]] = {
    "database": _check_database,
    "storage": _check_storage,
    "broker": _check_broker,
}


def run_health_checks() -> list[CheckResult]:
    """Every check, in order; each one runs even when another failed."""
    return [_timed(name, check) for name, check in CHECKS.items()]


@dataclass
class StorageHealth:
    """The figures on the admin's storage health page."""

    now: datetime
    pending_uploads: int = 0
    oldest_pending_upload: datetime | None = None
    pending_deletes: int = 0
    oldest_pending_delete: datetime | None = None
    failing_deletes: list = field(default_factory=list)
    fallbacks_waiting: int = 0
    fallback_nearest_expiry: datetime | None = None
    fallbacks_expired: int = 0
    jobs_per_state: list[tuple[str, str, int]] = field(default_factory=list)
    stalled_jobs: int = 0
    wakeups_not_taken: int = 0
    oldest_wakeup_seconds: float | None = None
    stalled_job_samples: list = field(default_factory=list)
    last_run: ReconcileRun | None = None
    stale_multipart_uploads: int | None = None
    stale_multipart_samples: list = field(default_factory=list)
    multipart_error: str = ""


def _ledger_figures(health: StorageHealth) -> None:
    by_intent = {
        row["intent"]: row
        for row in UploadLedgerEntry.objects.values("intent").annotate(
            count=Count("id"), oldest=Min("created_at")
        )
    }
    uploads = by_intent.get(UploadLedgerEntry.Intent.UPLOAD, {})
    deletes = by_intent.get(UploadLedgerEntry.Intent.DELETE, {})
    health.pending_uploads = uploads.get("count", 0)
    health.oldest_pending_upload = uploads.get("oldest")
    health.pending_deletes = deletes.get("count", 0)
    health.oldest_pending_delete = deletes.get("oldest")
    health.failing_deletes = list(
        UploadLedgerEntry.objects.filter(intent=UploadLedgerEntry.Intent.DELETE, attempts__gt=0)
        .order_by("created_at")
        .values("storage_path", "attempts", "last_error", "created_at")[:SAMPLE_LIMIT]
    )


def _fallback_figures(health: StorageHealth) -> None:
    latest_expiry = (
        VideoJob.objects.filter(content_item=OuterRef("pk"))
        .order_by("-queued_at", "-id")
        .values("provider_url_expires_at")[:1]
    )
    waiting = ContentItem.objects.filter(status=ContentItem.Status.NEEDS_STORAGE).annotate(
        url_expires_at=Subquery(latest_expiry)
    )
    health.fallbacks_waiting = waiting.count()
    health.fallback_nearest_expiry = waiting.aggregate(nearest=Min("url_expires_at"))["nearest"]
    health.fallbacks_expired = waiting.filter(url_expires_at__lte=health.now).count()


def _job_figures(health: StorageHealth) -> None:
    counts = dict(VideoJob.objects.values_list("state").annotate(count=Count("id")))
    health.jobs_per_state = [
        (state.value, state.label, counts.get(state.value, 0)) for state in VideoJob.State
    ]
    stalled = VideoJob.objects.filter(
        state__in=VideoJob.ACTIVE_STATES, lease_expires_at__lt=health.now
    )
    health.stalled_jobs = stalled.count()
    figures = leases.stalled_figures()
    health.wakeups_not_taken = figures["wakeups_not_taken"]
    health.oldest_wakeup_seconds = figures["oldest_wakeup_seconds"]
    health.stalled_job_samples = list(
        stalled.order_by("lease_expires_at").values(
            "id", "state", "content_item_id", "claimed_by", "lease_expires_at"
        )[:SAMPLE_LIMIT]
    )


def _multipart_figures(health: StorageHealth, grace_seconds: int) -> None:
    cutoff = health.now - timedelta(seconds=grace_seconds)
    count, samples = 0, []
    try:
        for upload in iter_multipart_uploads():
            if upload_state(upload, cutoff=cutoff) != "stale":
                continue
            count += 1
            if len(samples) < SAMPLE_LIMIT:
                samples.append(upload)
    except StorageUnavailable as error:
        health.multipart_error = str(error)
        return
    health.stale_multipart_uploads = count
    health.stale_multipart_samples = samples


def storage_health(*, grace_seconds: int | None = None) -> StorageHealth:
    """The ledger backlog, fallbacks waiting for storage, jobs, the last reconcile run and
    the unfinished multipart uploads older than the grace period (listed live)."""
    grace = settings.RECONCILE_GRACE_SECONDS if grace_seconds is None else grace_seconds
    health = StorageHealth(now=timezone.now())
    _ledger_figures(health)
    _fallback_figures(health)
    _job_figures(health)
    health.last_run = last_reconcile_run()
    _multipart_figures(health, grace)
    return health
