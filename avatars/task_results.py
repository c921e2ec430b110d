"""django-q2's saved task results, kept to the newest few off the hot path.

django-q2 can prune them itself (`save_limit` > 0), but it does so in each cluster's monitor
for every task it records: it reads every saved success `FOR UPDATE` (locking them against
every other cluster's monitor) to delete the oldest one. With 500 kept, a result cost 13 to
14 ms of the monitor's CPU and 17 ms of its time, against 0.7 ms and 1.2 ms unpruned. So
the monitor saves without pruning (`save_limit` 0) and the schedule prunes every minute:
two statements, whatever the number of clusters."""

import logging

from django.conf import settings
from django_q.models import Success

logger = logging.getLogger(__name__)


def prune_task_results() -> int:
    """Delete the successful task results older than the newest Q_SUCCESS_KEPT; failures are
    kept for an operator to read. Returns how many were deleted."""
    keep = settings.Q_SUCCESS_KEPT
    newest_gone = (
        Success.objects.order_by("-stopped").values_list("stopped", flat=True)[keep : keep + 1]
    ).first()
    if newest_gone is None:
        return 0
    # Results that ended at the same instant as the first one beyond `keep` go with it.
    deleted, _ = Success.objects.filter(stopped__lte=newest_gone).delete()
    logger.info("task results pruned: %d successes older than the newest %d deleted",
                deleted, keep)  # fmt: skip
    return deleted
