"""Signs of life of the background processes, for /healthz: the engine records one every
sweep; the job workers one when they start and one per minute from django-q2's schedule
(the scheduled task only runs when a qcluster's scheduler and a worker are both up)."""

import logging
import os
import socket
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Max
from django.db.models.functions import Now

from avatars import leases
from avatars.models import ProcessHeartbeat

logger = logging.getLogger(__name__)

Kind = ProcessHeartbeat.Kind
#: Rows of processes gone for this long are pruned when a new process records its first one.
PRUNE_AFTER = timedelta(days=1)


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


def record_heartbeat(kind: str, *, name: str | None = None) -> None:
    """This process is alive now (the database's clock)."""
    name = name or process_name()
    if ProcessHeartbeat.objects.filter(kind=kind, name=name).update(seen_at=Now()):
        return
    try:
        with transaction.atomic():
            ProcessHeartbeat.objects.create(kind=kind, name=name, seen_at=Now())
    except IntegrityError:  # a twin row created meanwhile: it is ours, refresh it
        ProcessHeartbeat.objects.filter(kind=kind, name=name).update(seen_at=Now())
    ProcessHeartbeat.objects.filter(kind=kind, seen_at__lt=Now() - PRUNE_AFTER).delete()


def record_workers_heartbeat() -> None:
    """django-q2's schedule runs this every minute on some worker."""
    record_heartbeat(Kind.WORKERS)


def workers_spawned(sender, proc_name: str, **kwargs) -> None:
    """django-q2's post_spawn: a qcluster worker has just started. A database blip here must
    not stop the worker (the scheduled heartbeat records it a minute later)."""
    try:
        record_heartbeat(Kind.WORKERS)
    except DatabaseError as error:
        logger.warning("worker %s: heartbeat not recorded: %s", proc_name, error)


@dataclass(frozen=True)
class Liveness:
    """Whether a kind of process showed a sign of life recently enough; `error` is one
    sentence for operators (no host names: /healthz is public)."""

    name: str
    ok: bool
    seconds_since: float | None
    error: str = ""

    def as_dict(self) -> dict:
        data = {"ok": self.ok, "seconds_since_last_seen": self.seconds_since}
        return {**data, "error": self.error} if self.error else data


def _seconds_since_last(kind: str) -> float | None:
    age = ProcessHeartbeat.objects.filter(kind=kind).aggregate(age=Now() - Max("seen_at"))["age"]
    return None if age is None else max(0.0, round(age.total_seconds(), 1))


#: name, kind, the setting of its staleness limit, what its absence means.
PROCESSES = (
    ("engine", Kind.ENGINE, "VIDEO_ENGINE_STALE_SECONDS", "No engine sweep"),
    ("workers", Kind.WORKERS, "Q_WORKERS_STALE_SECONDS", "No qcluster: no worker heartbeat"),
)


def _jobs_liveness() -> Liveness:
    """Jobs past their lease, and copy wake-ups no worker took within a lease: a cluster
    that is up but takes no tasks (its heartbeat may still be fresh)."""
    figures = leases.stalled_figures()
    problems = []
    if figures["wakeups_not_taken"]:
        problems.append(f"{figures['wakeups_not_taken']} copies waited over "
                        f"{settings.VIDEO_JOB_LEASE_SECONDS} s for a job worker (oldest "
                        f"{figures['oldest_wakeup_seconds']:.0f} s): the workers are stalled "
                        "or not running; the engine runs them meanwhile.")  # fmt: skip
    if figures["past_lease"]:
        problems.append(f"{figures['past_lease']} jobs are past their lease (their worker "
                        "died; they are taken over on the next sweep).")  # fmt: skip
    error = " ".join(problems)
    if error:
        logger.warning("health: jobs: %s", error)
    return Liveness("jobs", ok=not error, seconds_since=figures["oldest_wakeup_seconds"],
                    error=error)  # fmt: skip


def process_liveness() -> list[Liveness]:
    """The engine and the job workers: ok when their newest heartbeat is recent enough, and
    when no job waits past its lease or for a wake-up nobody takes."""
    found = []
    for name, kind, stale_setting, missing in PROCESSES:
        try:
            seconds = _seconds_since_last(kind)
        except DatabaseError:  # the database check already names the failure
            found.append(Liveness(name, False, None, "Unknown: the database did not answer."))
            continue
        if seconds is None:
            error = f"{missing} recorded yet."
        elif seconds > getattr(settings, stale_setting):
            error = f"{missing} for {seconds:.0f} s."
        else:
            error = ""
        if error:
            logger.warning("health: %s: %s", name, error)
        found.append(Liveness(name=name, ok=not error, seconds_since=seconds, error=error))
    try:
        found.append(_jobs_liveness())
    except DatabaseError:
        found.append(Liveness("jobs", False, None, "Unknown: the database did not answer."))
    return found
