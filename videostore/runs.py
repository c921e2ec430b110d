"""The record of reconciliation runs: the last ones are kept for operators (admin, health)."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from videostore.models import ReconcileRun

#: How many runs are kept; older ones are deleted as new ones are recorded.
KEEP_RUNS = 100


def record_reconcile_run(
    *,
    started_at: datetime,
    fix: bool,
    consistent: bool,
    problems: int,
    report: dict,
    error: str = "",
    finished_at: datetime | None = None,
) -> ReconcileRun:
    """Save one run and drop all but the newest KEEP_RUNS."""
    with transaction.atomic():
        run = ReconcileRun.objects.create(
            started_at=started_at,
            finished_at=finished_at or timezone.now(),
            fix=fix,
            consistent=consistent,
            problems=max(int(problems), 0),
            report=report,
            error=error[:2000],
        )
        oldest_kept = list(
            ReconcileRun.objects.order_by("-pk").values_list("pk", flat=True)[
                KEEP_RUNS - 1 : KEEP_RUNS
            ]
        )
        if oldest_kept:
            ReconcileRun.objects.filter(pk__lt=oldest_kept[0]).delete()
    return run


def last_reconcile_run() -> ReconcileRun | None:
    """The most recent run, or None before the first one."""
    return ReconcileRun.objects.order_by("-finished_at", "-pk").first()
