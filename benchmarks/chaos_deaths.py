"""How long a job waits after its worker is killed: from the SIGKILL to the job's next
progress (a state change, or a claim by another holder), read from the job's row every 50 ms
on the database's clock. The target is one lease (what the dead holder's lease had left at
the kill) plus one engine tick; `beyond` is the part of the wait past that lease.
"""

import threading
import time
from dataclasses import dataclass
from datetime import datetime

#: Give up watching a job after this long (it is then measured as stuck by the run).
WATCH_SECONDS = 240


@dataclass(frozen=True)
class Wait:
    job_id: int
    state: str  # the job's state when its holder died
    seconds: float  # from the kill to the job's next progress (inf: none seen)
    lease_left: float  # what the dead holder's lease had left at the kill

    @property
    def beyond(self) -> float:
        return self.seconds - max(self.lease_left, 0.0)


class DeathWatch:
    """Jobs whose holder was killed, watched in a thread until each one moves on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[str, str, datetime, float]] = {}
        self.waits: list[Wait] = []
        self.thread: threading.Thread | None = None

    @staticmethod
    def now() -> datetime:
        from avatars.leases import db_now

        return db_now()

    def killed(self, pids: set[int], killed_at: datetime) -> list[int]:
        """After a kill: watch the active jobs whose lease token names one of `pids`."""
        from avatars.models import VideoJob

        held = (
            VideoJob.objects.filter(state__in=VideoJob.ACTIVE_STATES)
            .exclude(claimed_by="")
            .values_list("pk", "claimed_by", "state", "lease_expires_at")
        )
        watched = []
        with self.lock:
            for pk, token, state, until in held:
                parts = token.rsplit(":", 2)
                if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) in pids:
                    left = (until - killed_at).total_seconds() if until else 0.0
                    self.pending[pk] = (token, state, killed_at, left)
                    watched.append(pk)
            if watched and (self.thread is None or not self.thread.is_alive()):
                self.thread = threading.Thread(target=self._watch, daemon=True)
                self.thread.start()
        return watched

    def _watch(self) -> None:
        from django.db import connection

        from avatars.models import VideoJob

        try:
            while True:
                with self.lock:
                    pending = dict(self.pending)
                if not pending:
                    return
                rows = dict(
                    (pk, (state, holder))
                    for pk, state, holder in VideoJob.objects.filter(pk__in=pending).values_list(
                        "pk", "state", "claimed_by"
                    )
                )  # fmt: skip
                now = self.now()
                for pk, (token, state, killed_at, left) in pending.items():
                    row = rows.get(pk)
                    moved = row is None or row[0] != state or (row[1] and row[1] != token)
                    waited = (now - killed_at).total_seconds()
                    if moved or waited > WATCH_SECONDS:
                        seconds = waited if moved else float("inf")
                        with self.lock:
                            if self.pending.pop(pk, None) is not None:
                                self.waits.append(Wait(pk, state, seconds, left))
                time.sleep(0.05)
        finally:
            connection.close()

    def finish(self, timeout: float = 30) -> list[Wait]:
        """The waits of this run (jobs still unmoved after `timeout` count as infinite)."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
        with self.lock:
            for pk, (_, state, _, left) in self.pending.items():
                self.waits.append(Wait(pk, state, float("inf"), left))
            self.pending.clear()
            waits, self.waits = self.waits, []
        return waits
